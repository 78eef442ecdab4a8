#!/usr/bin/env python
"""Dump the reference values that DIAMBRA's OWN loaders return for each fixture.

Not part of trajarena's test suite: run it inside the DIAMBRA venvs used by
generate_v22.py / generate_v21.py (it imports diambra, cv2, gym/gymnasium).

    # 2.2 `.diambra` files, loaded with diambra.arena.utils.diambra_data_loader.DiambraDataLoader
    /work/scratch/diambra/v227/bin/python    tests/data/diambra/dump_expected.py v22
    # 2.1 trajectory files, replayed with diambra.arena.ImitationLearning / ImitationLearningHardcore
    /work/scratch/diambra/v213/bin/python    tests/data/diambra/dump_expected.py v21

Any 2.2.7 venv gives the same values for every v22 fixture (checked for the numpy 1 and
cv2 5 venvs too), and any 2.1.3 venv for every v21 fixture.

For every fixture file ``<set>/<fixture>/<file>`` it writes
``expected/<set>/<fixture>/<file>.json`` plus ``.frame0.npy`` (first decoded frame, as
DIAMBRA's loader decodes it) and, for v21, ``.obs0_frame.npy`` (observation frame of the
loader's first reset).

JSON value encoding (so types survive): JSON bool/int/float/str/null/list are Python
values of that type; tagged objects:
  {"__ndarray__": nested list, "dtype": "uint8", "shape": [...]}
  {"__npscalar__": value, "dtype": "int64"}
  {"__tuple__": [...]}, {"__ordereddict__": {...}}, {"__bytes_hex__": "..."}
  {"__protobuf__": "interface.EnvSettings", "serialized_hex": "...", "fields": {...}}
  {"__space__": "gym.spaces.box.Box", ...}  (constant low/high arrays of a space are
   written {"__ndarray_fill__": value, "dtype", "shape"})
Frames are not inlined: {"dtype", "shape", "sha256"} of arr.tobytes() (C order).
"""
import bz2
import collections
import hashlib
import importlib.metadata as md
import json
import os
import pickle
import pickletools
import shutil
import sys
import tempfile
import unittest.mock

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))


def sha(b):
    return hashlib.sha256(b).hexdigest()


def frame_info(a):
    a = np.ascontiguousarray(a)
    return {"dtype": str(a.dtype), "shape": list(a.shape), "sha256": sha(a.tobytes())}


def enc(v):
    if isinstance(v, bool) or v is None or isinstance(v, str):
        return v
    if isinstance(v, (int, float)) and type(v) in (int, float):
        return v
    if isinstance(v, np.ndarray):
        return {"__ndarray__": v.tolist(), "dtype": str(v.dtype), "shape": list(v.shape)}
    if isinstance(v, np.generic):
        return {"__npscalar__": v.item(), "dtype": str(v.dtype)}
    if isinstance(v, bytes):
        return {"__bytes_hex__": v.hex()}
    if isinstance(v, tuple):
        return {"__tuple__": [enc(x) for x in v]}
    if isinstance(v, list):
        return [enc(x) for x in v]
    if isinstance(v, collections.OrderedDict):
        return {"__ordereddict__": {str(k): enc(x) for k, x in v.items()}}
    if isinstance(v, dict):
        if all(isinstance(k, str) for k in v):
            return {k: enc(x) for k, x in v.items()}
        return {"__dict_items__": [[enc(k), enc(x)] for k, x in v.items()]}
    if hasattr(v, "SerializePartialToString") and hasattr(v, "DESCRIPTOR"):
        from google.protobuf.json_format import MessageToDict
        return {"__protobuf__": v.DESCRIPTOR.full_name,
                "serialized_hex": v.SerializePartialToString().hex(),
                "fields": MessageToDict(v, preserving_proto_field_name=True,
                                        including_default_value_fields=True)}
    mod = type(v).__module__
    if mod.startswith("gym"):
        out = {"__space__": mod + "." + type(v).__name__, "repr": repr(v)}
        for attr in ("n", "nvec", "shape", "dtype", "low", "high", "bounded_below", "bounded_above"):
            if hasattr(v, attr):
                val = getattr(v, attr)
                if attr == "dtype":
                    out[attr] = str(val)
                elif isinstance(val, np.ndarray) and val.size > 1 and (val == val.flat[0]).all():
                    out[attr] = {"__ndarray_fill__": enc(val.flat[0]), "dtype": str(val.dtype),
                                 "shape": list(val.shape)}
                else:
                    out[attr] = enc(val)
        if hasattr(v, "spaces"):
            out["spaces"] = {k: enc(s) for k, s in v.spaces.items()}
        out["state_keys"] = sorted(vars(v).keys())
        return out
    raise TypeError("cannot encode {!r} ({})".format(v, type(v)))


def pickle_globals(raw):
    """(module, name) pairs the pickle asks find_class for, collected two ways."""
    seen = set()

    class Rec(pickle.Unpickler):
        def find_class(self, module, name):
            seen.add((module, name))
            return super().find_class(module, name)

    import io
    Rec(io.BytesIO(raw)).load()
    # cross-check with pickletools: GLOBAL args and STACK_GLOBAL operands
    ops = collections.Counter(op.name for op, _, _ in pickletools.genops(raw))
    static = set()
    memo, stack = {}, []
    for op, arg, _ in pickletools.genops(raw):
        n = op.name
        if n in ("SHORT_BINUNICODE", "BINUNICODE", "UNICODE", "BINUNICODE8"):
            stack.append(arg)
        elif n == "MEMOIZE":
            memo[len(memo)] = stack[-1] if stack else None
        elif n in ("BINPUT", "LONG_BINPUT", "PUT"):
            memo[int(arg)] = stack[-1] if stack else None
        elif n in ("BINGET", "LONG_BINGET", "GET"):
            stack.append(memo.get(int(arg)))
        elif n == "STACK_GLOBAL":
            static.add((stack[-2], stack[-1]))
            stack = stack[:-2] + [None]
        elif n == "GLOBAL":
            static.add(tuple(arg.split(" ", 1)))
            stack.append(None)
        else:
            stack.append(None)
    assert static == seen, (static, seen)
    return sorted([list(x) for x in seen]), dict(sorted(ops.items()))


def versions():
    import cv2
    out = {"python": sys.version.split()[0], "numpy": np.__version__, "opencv": cv2.__version__,
           "diambra-arena": md.version("diambra-arena"), "protobuf": md.version("protobuf")}
    for pkg in ("gymnasium", "gym", "diambra-engine"):
        try:
            out[pkg] = md.version(pkg)
        except md.PackageNotFoundError:
            pass
    return out


def common_header(path, rel):
    data = open(path, "rb").read()
    raw = bz2.decompress(data)
    globs, ops = pickle_globals(raw)
    return raw, {
        "file": rel,
        "file_size": len(data),
        "file_sha256": sha(data),
        "pickle_size": len(raw),
        "pickle_sha256": sha(raw),
        "pickle_protocol": next(pickletools.genops(raw))[1],
        "pickle_globals": globs,
        "pickle_opcodes": ops,
        "dumped_with": versions(),
    }


# ---------------------------------------------------------------- 2.2 (.diambra)
def dump_v22(path, rel):
    import cv2
    from diambra.arena.utils.diambra_data_loader import DiambraDataLoader
    from diambra.arena import Roles

    raw, out = common_header(path, rel)
    out["format"] = "diambra-arena 2.2 .diambra episode (EpisodeRecorder)"
    tmp = tempfile.mkdtemp()
    try:
        os.symlink(os.path.abspath(path), os.path.join(tmp, os.path.basename(path)))
        loader = DiambraDataLoader(tmp)
        out["loader_reset_return_n_loops"] = loader.reset()
        episode = loader.episode
        summary = episode["episode_summary"]
        es = summary["env_settings"]
        out["top_level_keys"] = list(episode.keys())
        out["episode_summary"] = enc(summary)
        out["n_steps"] = summary["steps"]
        out["len_data"] = len(loader.episode_data)
        out["username"] = summary["username"]
        out["n_players"] = es.n_players
        out["game_id"] = es.game_id
        out["action_spaces"] = [int(a) for a in es.action_spaces]
        out["roles"] = [Roles.Name(p.role) for p in es.episode_settings.player_settings]
        out["step_keys"] = list(loader.episode_data[0].keys())
        encoded = []
        for st in loader.episode_data:
            f = st["obs"]["frame"]
            encoded.append({"type": type(f).__module__ + "." + type(f).__name__, "dtype": str(f.dtype),
                            "shape": list(f.shape), "n_bytes": int(f.nbytes), "sha256": sha(f.tobytes())})
        steps = []
        first = None
        for i in range(len(loader.episode_data)):
            obs, action, reward, terminated, truncated, info = loader.step()
            frame = obs["frame"]
            if first is None:
                first = frame.copy()
            rest = {k: v for k, v in obs.items() if k != "frame"}
            inf = {k: v for k, v in info.items() if k != "settings"}
            steps.append({
                "action": enc(action),
                "reward": enc(reward),
                "terminated": enc(terminated),
                "truncated": enc(truncated),
                "info": enc(inf),
                "info_keys": list(info.keys()),
                "info_settings_is_summary_env_settings": info.get("settings") is es,
                "info_settings_serialized_equal": (info["settings"].SerializePartialToString()
                                                   == es.SerializePartialToString()),
                "obs": enc(rest),
                "obs_keys": list(obs.keys()),
                "frame_encoded": encoded[i],
                "frame_decoded": frame_info(frame),
                "sides": {p: int(obs[p]["side"]) for p in ("P1", "P2") if p in obs},
            })
        out["steps"] = steps
        out["actions"] = [s["action"] for s in steps]
        out["rewards"] = [s["reward"] for s in steps]
        out["terminated"] = [s["terminated"] for s in steps]
        out["truncated"] = [s["truncated"] for s in steps]
        out["frame_decode"] = "cv2.imdecode(np.frombuffer(obs['frame'], np.uint8), cv2.IMREAD_UNCHANGED)"
        return out, first
    finally:
        shutil.rmtree(tmp)


# ---------------------------------------------------------------- 2.1 (trajectory files)
def dump_v21(path, rel):
    import diambra.arena.arena_imitation_learning_gym as ilg

    raw, out = common_header(path, rel)
    d = pickle.loads(raw)
    hardcore = "obs_space_bounds" in d
    out["format"] = "diambra-arena 2.1 trajectory file ({}TrajectoryRecorder)".format(
        "hardcore " if hardcore else "")
    out["hardcore"] = hardcore
    out["top_level_keys"] = list(d.keys())
    out["raw"] = {}
    for k, v in d.items():
        if k == "frames":
            out["raw"]["frames"] = [frame_info(f) for f in v]
        else:
            out["raw"][k] = enc(v)
    raw_first = d["frames"][0]

    cls = ilg.ImitationLearningHardcore if hardcore else ilg.ImitationLearning
    out["loader"] = {"class": "diambra.arena." + cls.__name__,
                     "note": "SplashScreen (tk window) patched to a no-op to run headless"}
    with unittest.mock.patch.object(ilg, "SplashScreen", lambda *a, **k: None):
        il = cls(traj_files_list=[path], rank=0, total_cpus=1)
    out["loader"]["action_space"] = enc(il.action_space)
    out["loader"]["observation_space"] = enc(il.observation_space)
    obs0_frame = None
    replays = []
    for _ in range(4):
        obs = il.reset()
        if il.exhausted:
            fr = obs["frame"] if isinstance(obs, dict) else obs
            out["loader"]["exhausted_reset_obs_frame"] = frame_info(fr)
            break

        def split(o):
            if isinstance(o, dict):
                return frame_info(o["frame"]), enc({k: v for k, v in o.items() if k != "frame"})
            return frame_info(o), None

        f0, r0 = split(obs)
        if obs0_frame is None:
            obs0_frame = (obs["frame"] if isinstance(obs, dict) else obs).copy()
        rep = {"player_side": il.player_side, "reset_obs_frame": f0, "reset_obs": r0, "steps": []}
        done = False
        n = 0
        while not done:
            obs, reward, done, info = il.step(0)
            f, r = split(obs)
            rep["steps"].append({"reward": enc(reward), "done": enc(done), "info": enc(info),
                                 "obs_frame": f, "obs": r})
            n += 1
            assert n < 10000
        rep["n_steps"] = n
        replays.append(rep)
    out["loader"]["replays"] = replays
    out["loader"]["n_replays"] = len(replays)
    return out, raw_first, obs0_frame


def main():
    which = sys.argv[1]
    base = os.path.join(HERE, which)
    only = set(sys.argv[2:])
    ver = md.version("diambra-arena")
    assert ver.startswith("2.2." if which == "v22" else "2.1."), ver
    for fixture in sorted(os.listdir(base)):
        if only and fixture not in only:
            continue
        for fn in sorted(os.listdir(os.path.join(base, fixture))):
            path = os.path.join(base, fixture, fn)
            rel = "{}/{}/{}".format(which, fixture, fn)
            dst = os.path.join(HERE, "expected", which, fixture)
            os.makedirs(dst, exist_ok=True)
            stem = os.path.join(dst, fn)
            if which == "v22":
                out, first = dump_v22(path, rel)
                np.save(stem + ".frame0.npy", first, allow_pickle=False)
            else:
                out, first, obs0 = dump_v21(path, rel)
                np.save(stem + ".frame0.npy", first, allow_pickle=False)
                np.save(stem + ".obs0_frame.npy", obs0, allow_pickle=False)
            with open(stem + ".json", "w") as fh:
                json.dump(out, fh, separators=(",", ":"), allow_nan=False)
                fh.write("\n")
            print("wrote", stem + ".json", file=sys.stderr)


if __name__ == "__main__":
    main()
