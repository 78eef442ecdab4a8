"""DIAMBRA Arena 2.1 trajectory files (``TrajectoryRecorder`` and its hardcore variant) read into a Recording.

A 2.1 file (``mod_False_P1_diff3_rew19.288_<date>``, ``HC_mod...`` for hardcore) is one episode:
the frames as 2-D planes, the RAM states of every observation (the final one included), rewards,
actions, done flags, the observation spaces (gym 0.21) and a few settings. The 2.1 recorder sat
*above* DIAMBRA's wrappers, so the file holds wrapped data. What can be undone is, what cannot is
kept as recorded and said so in the metadata (``source``):

* **Frame stacking is undone**: the recorder kept, per step, only the newest plane (plus copies where
  a round, stage or game ended), so the file's frames become one frame per observation and the
  stack depth goes into the stored wrappers settings (``stack_frames``): replayed with them, the
  observations equal those of DIAMBRA's own loader.
* **RGB**: the 2.1 recorder kept only the last colour channel of each frame after the first
  observation (its loader then mixes planes of consecutive steps as colours); the importer keeps
  that channel, ``(H, W, 1)``, for every observation.
* **Kept as recorded**: scaling (float frames, one-hot and ``[0, 1]`` RAM states), the stack of last
  actions in ``P1.actions``, normalised rewards and the own/opp RAM-state names: the spaces stored
  in the file describe them. Actions are the raw agent actions (two-player files: ``agent_0`` = P1,
  ``agent_1`` = P2).

>>> frame_layout([np.zeros((2, 2))] * 4, 4)
(4, 1)
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import numpy as np
from gymnasium import spaces

from trajarena.errors import FormatError
from trajarena.interop.diambra.games import guess_game
from trajarena.interop.diambra.source import Recording, Step, as_action, as_bool, as_reward, require_keys
from trajarena.interop.diambra.unpickle import SpaceRecord

__all__ = ["frame_layout", "read_v21", "space_from_record"]

_COMMON = ("username", "player_side", "action_space", "n_actions", "frame_shp", "ignore_p2", "ep_len",
           "frames", "rewards", "actions", "done_flags")
_MAX_ELEMENTS = 1 << 26


def space_from_record(where: str, value: Any) -> spaces.Space:
    """A Gymnasium space from a stored gym 0.21 space (:class:`SpaceRecord`) or a dict of them."""
    if isinstance(value, Mapping):
        return spaces.Dict({str(k): space_from_record(f"{where}.{k}", v) for k, v in value.items()})
    if not isinstance(value, SpaceRecord):
        raise FormatError(f"{where} is {type(value).__name__}, not a gym space")
    f = value.fields
    try:
        if value.kind == "Discrete":
            return spaces.Discrete(int(f["n"]))
        if value.kind == "MultiBinary":
            n = f["n"]
            return spaces.MultiBinary(int(n) if np.ndim(n) == 0 else [int(x) for x in np.asarray(n).reshape(-1)])
        if value.kind == "MultiDiscrete":
            return spaces.MultiDiscrete(np.asarray(f["nvec"], dtype=np.int64))
        if value.kind == "Box":
            shape = tuple(int(n) for n in f["_shape"])
            if int(np.prod(shape, dtype=np.int64)) > _MAX_ELEMENTS:
                raise ValueError(f"shape {shape} is too large")
            low, high = np.asarray(f["low"]), np.asarray(f["high"])
            return spaces.Box(low.reshape(shape), high.reshape(shape), shape, np.dtype(f["dtype"]))
        if value.kind == "Dict":
            return space_from_record(where, dict(f["spaces"]))
    except (KeyError, TypeError, ValueError, IndexError, AttributeError) as exc:
        raise FormatError(f"{where}: the stored gym {value.kind} space is not laid out as gym 0.21's: {exc!r}") from exc
    raise FormatError(f"{where}: a gym {value.kind} space, which DIAMBRA 2.1 recordings do not hold")


def frame_layout(frames: Sequence[np.ndarray], channels: int) -> tuple[int, int]:
    """``(stack depth, colour channels)`` of a 2.1 file's frames from the planes of its first observation.

    A frame stack is filled with copies of the first frame, so equal first planes mean a stack of
    grey frames; otherwise the planes are colour channels (RGB, possibly stacked).
    """
    first = frames[:channels]
    if all(np.array_equal(first[0], p) for p in first[1:]):
        return channels, 1
    if channels % 3 == 0:
        return channels // 3, 3
    raise FormatError(f"the first observation's {channels} frame planes are neither a stack of one grey frame nor "
                      "RGB frames")


def _fit(where: str, value: Any, space: spaces.Space) -> Any:
    """A recorded value as a value of ``space`` (numbers cast only when nothing is lost)."""
    if isinstance(space, spaces.Dict):
        if not isinstance(value, Mapping) or set(value) != set(space.spaces):
            found = sorted(value) if isinstance(value, Mapping) else type(value).__name__
            raise FormatError(f"{where} has the keys {found}, but its stored space has {sorted(space.spaces)}")
        return {k: _fit(f"{where}.{k}", value[k], s) for k, s in space.spaces.items()}
    arr = np.asarray(value)
    if arr.dtype.kind not in "biuf" or arr.size != int(np.prod(space.shape, dtype=np.int64)):
        raise FormatError(f"{where} is {value!r}, which does not fit its stored space {space}")
    if isinstance(space, spaces.Discrete):
        v = int(arr.reshape(()).item())
        if not space.contains(np.int64(v)):
            raise FormatError(f"{where} is {v}, outside its stored space {space}")
        return np.int64(v)
    out = arr.reshape(space.shape).astype(space.dtype)
    if arr.dtype.kind in "biu" and not np.array_equal(out, arr.reshape(space.shape)):
        raise FormatError(f"{where} is {value!r}, which does not fit {space.dtype}")
    return out


def _agent_spaces(where: str, d: Mapping[str, Any]) -> spaces.Space:
    n = d["n_actions"]
    if not (isinstance(n, list | tuple) and len(n) == 2 and all(isinstance(x, int) and 0 < x <= 256 for x in n)):
        raise FormatError(f"{where}: n_actions is {n!r}, not [moves, attacks]")
    if d["action_space"] == "discrete":
        return spaces.Discrete(n[0] + n[1] - 1)
    if d["action_space"] == "multi_discrete":
        return spaces.MultiDiscrete(list(n))
    raise FormatError(f"{where}: action_space is {d['action_space']!r}, not 'discrete' or 'multi_discrete'")


def _split_action(where: str, value: Any, one: spaces.Space) -> dict[str, Any]:
    """2.1 two-player actions are one flat list: [move1, attack1, move2, attack2] or [action1, action2]."""
    flat = np.asarray(value)
    width = 1 if isinstance(one, spaces.Discrete) else 2
    if flat.dtype.kind not in "iu" or flat.size != 2 * width:
        raise FormatError(f"{where}: a two-player action is {value!r}, not {2 * width} integers")
    flat = flat.reshape(-1)
    return {"agent_0": as_action(f"{where} (P1)", flat[:width], one),
            "agent_1": as_action(f"{where} (P2)", flat[width:], one)}


def read_v21(data: Any, name: str, game: str | None = None, games: Any = None) -> Recording:
    """Turn the unpickled content of a 2.1 trajectory file into a :class:`Recording`.

    Args:
        data: what :func:`~trajarena.interop.diambra.unpickle.load_bz2_pickle` returned.
        name: the file's name, for messages and the metadata.
        game: the DIAMBRA game id (2.1 files do not store it); None guesses it from the character
            list with DIAMBRA's game table when diambra-arena is installed.
        games: path of DIAMBRA's game table, for that guess.

    Raises:
        FormatError: the content is not laid out as DIAMBRA 2.1 writes it (the message says where).
    """
    require_keys(name, data, _COMMON, "the recording")
    hardcore = "obs_space_bounds" in data
    if not hardcore:
        require_keys(name, data, ("ram_states", "observation_space_dict"), "the recording")
    side, n_steps = data["player_side"], data["ep_len"]
    if side not in ("P1", "P2", "P1P2"):
        raise FormatError(f"{name}: player_side is {side!r}, not 'P1', 'P2' or 'P1P2'")
    if not isinstance(n_steps, int) or n_steps < 1:
        raise FormatError(f"{name}: ep_len is {n_steps!r}, not a number of steps")
    for key, length in (("rewards", n_steps), ("actions", n_steps), ("done_flags", n_steps),
                        *(() if hardcore else (("ram_states", n_steps + 1),))):
        if not isinstance(data[key], list) or len(data[key]) != length:
            raise FormatError(f"{name}: {key} holds {len(data[key]) if isinstance(data[key], list) else data[key]!r} "
                              f"entries, but ep_len={n_steps} needs {length}")
    shp = data["frame_shp"]
    if not (isinstance(shp, tuple | list) and len(shp) == 3 and all(isinstance(x, int) and x > 0 for x in shp)):
        raise FormatError(f"{name}: frame_shp is {shp!r}, not (height, width, channels)")
    h, w, c = shp
    frames = data["frames"]
    flags = [[as_bool(f"{name}: done_flags[{i}]", f) for f in row] if isinstance(row, list | tuple) and len(row) == 4
             else _bad(f"{name}: done_flags[{i}] is {row!r}, not 4 flags") for i, row in enumerate(data["done_flags"])]
    between = [i for i in range(n_steps - 1) if any(flags[i][:3])]  # round/stage/game ends before the last step
    if not isinstance(frames, list) or len(frames) != c + n_steps + (c - 1) * len(between):
        raise FormatError(f"{name}: {len(frames) if isinstance(frames, list) else type(frames).__name__} frame "
                          f"planes, but {c} channels, {n_steps} steps and {len(between)} round end(s) make "
                          f"{c + n_steps + (c - 1) * len(between)}")
    for i, plane in enumerate(frames):
        if not (isinstance(plane, np.ndarray) and plane.shape == (h, w) and plane.dtype == frames[0].dtype):
            raise FormatError(f"{name}: frame plane {i} is {getattr(plane, 'shape', type(plane).__name__)} "
                              f"{getattr(plane, 'dtype', '')}, not ({h}, {w}) {frames[0].dtype}")
    stack, colours = frame_layout(frames, c)
    # the plane of each observation: the reset's last plane, then one per step, skipping the refill copies
    index, p = [c - 1], c - 1
    for i in range(n_steps):
        p += 1
        index.append(p)
        if i in between:
            p += c - 1
    one = _agent_spaces(name, data)
    two = side == "P1P2"
    act_space = spaces.Dict(agent_0=one, agent_1=one) if two else one
    if hardcore:
        low, high = (np.asarray(b).reshape(()).item() for b in data["obs_space_bounds"])
        obs_space: spaces.Space = spaces.Box(low, high, (h, w, 1), frames[0].dtype)
        ram_space = None
    else:
        stored = space_from_record(f"{name}: observation_space_dict", data["observation_space_dict"])
        box = stored["frame"]
        if not isinstance(box, spaces.Box) or box.shape != (h, w, c):
            raise FormatError(f"{name}: the stored frame space is {box}, but frame_shp is {shp}")
        ram_space = spaces.Dict({k: s for k, s in stored.spaces.items() if k != "frame"})
        obs_space = spaces.Dict({"frame": spaces.Box(box.low[..., :1], box.high[..., :1], (h, w, 1), box.dtype),
                                 **ram_space.spaces})

    def observation(t: int) -> Any:
        frame = np.asarray(frames[index[t]])[:, :, None]
        if ram_space is None:
            return frame
        return {"frame": frame, **_fit(f"{name}: ram_states[{t}]", data["ram_states"][t], ram_space)}

    def action(i: int) -> Any:
        where = f"{name}: actions[{i}]"
        return _split_action(where, data["actions"][i], one) if two else as_action(where, data["actions"][i], one)

    def produce() -> Iterator[Step]:
        for i in range(n_steps):
            info = dict(zip(("round_done", "stage_done", "game_done", "episode_done"), flags[i], strict=True))
            yield Step(action(i), observation(i + 1), as_reward(f"{name}: rewards[{i}]", data["rewards"][i]),
                       i == n_steps - 1, False, info)

    game_id = game or guess_game(data.get("char_names"), games)
    applied = {"frame_stack": stack, "frame_dtype": str(frames[0].dtype),
               "attack_button_combinations": bool(data.get("attack_but_comb", True)),
               "actions_stack_in_observation":
                   None if ram_space is None else _actions_stack(ram_space, data["n_actions"][0]),
               "rewards": "as recorded (normalised when they are fractions)"}
    source = {
        "format": f"diambra-arena 2.1 trajectory file ({'hardcore ' if hardcore else ''}TrajectoryRecorder)",
        "frames": (f"the frame stack of {stack} undone (re-applied by stack_frames); " if stack > 1 else "")
        + ("RGB: DIAMBRA 2.1 kept only the last colour channel after the first observation; that channel is "
           "imported" if colours == 3 else "greyscale planes as recorded"),
        "as_recorded": "frame scaling, RAM-state scaling and one-hot encoding, the last-actions stack and reward "
                       "normalisation were applied by DIAMBRA's wrappers before recording and are kept",
        "applied_by_diambra": applied,
        "game": "given" if game else "guessed from the character list" if game_id else "unknown",
        "difficulty": data.get("difficulty"),
        "characters": [str(c) for c in data["char_names"]] if isinstance(data.get("char_names"), list) else None,
    }
    role: Any = ("P1", "P2") if two else side
    settings = {"n_players": 2 if two else 1, "role": role,
                "action_space": (data["action_space"],) * 2 if two else data["action_space"]}
    if not two and isinstance(data.get("difficulty"), int):
        settings["difficulty"] = data["difficulty"]
    return Recording(path=name, version="2.1 hardcore" if hardcore else "2.1", env_id=game_id or "diambra-unknown",
                     env_settings=settings, wrappers_settings={"stack_frames": stack} if stack > 1 else {},
                     username=str(data["username"]), ignore_p2=int(bool(data["ignore_p2"])),
                     observation_space=obs_space, action_space=act_space, reset_obs=observation(0), steps=produce,
                     n_steps=n_steps, source=source)


def _actions_stack(ram_space: spaces.Dict, n_moves: int) -> int | None:
    """The depth of the last-actions stack in the observation (the file's n_actions_stack is unreliable)."""
    try:
        move = ram_space["P1"]["actions"]["move"]
    except KeyError:
        return None
    if isinstance(move, spaces.MultiBinary):
        return int(np.prod(move.shape)) // n_moves  # one-hot (scaled)
    return len(move.nvec) if isinstance(move, spaces.MultiDiscrete) else 1


def _bad(message: str) -> Any:
    raise FormatError(message)
