"""DIAMBRA Arena 2.2 ``.diambra`` files (``EpisodeRecorder``, diambra-arena 2.2.0-2.2.7) read into a Recording.

The file's pickle is ``{"episode_summary": {"steps", "username", "env_settings"}, "data": [step, ...]}``,
each step ``{"obs", "action", "reward", "terminated", "truncated", "info"}`` where ``obs`` is the
observation *before* the action; the recorder sits below DIAMBRA's wrappers, so this is the raw env
stream (and no wrappers settings are stored). What becomes of it:

* **Spaces** come from the settings (``EnvSettings``: game, frame shape, players, each agent's
  action space and role) and DIAMBRA's game table (:mod:`~trajarena.interop.diambra.games`): the
  spaces of DIAMBRA's live env, so imported files and files recorded from a live DIAMBRA game
  (:mod:`trajarena.envs.diambra`) replay together. Values are checked against them.
* **Frames** are JPEG bytes made by OpenCV (quality 80, red and blue swapped, as OpenCV takes the RGB
  frame for BGR); they are decoded with Pillow to exactly what DIAMBRA's loader returns (checked
  bit for bit on DIAMBRA's fixtures), with the channel axis the live env has: grey frames are
  ``(H, W, 1)``. JPEG is lossy: the file's metadata says so.
* **The final observation** is not in the file (the recorder drops it): the last stored
  observation is repeated as the episode's final one, and the metadata says so.
* **Two players**: ``Dict(agent_0, agent_1)`` actions, each agent's role from the settings
  (``agent_0`` may play P2); rewards are agent_0's.

>>> describe_frames((48, 64, 0))
'JPEG (OpenCV, quality 80) 48x64 RGB'
"""

from __future__ import annotations

import io
from collections.abc import Iterator, Mapping
from typing import Any

import numpy as np
from gymnasium import spaces

from trajarena.errors import FormatError, require
from trajarena.interop.diambra.games import game_facts
from trajarena.interop.diambra.protobuf import decode_env_settings
from trajarena.interop.diambra.source import Recording, Step, as_action, as_bool, as_reward, require_keys
from trajarena.interop.diambra.unpickle import ProtobufBytes

__all__ = ["FLAGS", "canonical_settings", "decode_jpeg", "describe_frames", "read_v22"]

#: The info flags of a DIAMBRA step.
FLAGS = ("round_done", "stage_done", "game_done", "episode_done", "env_done")
_MAX_SIDE = 4096
_SPACES = {"DISCRETE": "discrete", "MULTI_DISCRETE": "multi_discrete"}


def describe_frames(frame_shape: tuple[int, int, int]) -> str:
    """How the frames of a recording were encoded, for the metadata."""
    h, w, c = frame_shape
    size = f"{h}x{w}" if h and w else "native-size"
    return f"JPEG (OpenCV, quality 80) {size} {'grey' if c == 1 else 'RGB'}"


def decode_jpeg(where: str, buf: Any, shape: tuple[int, int, int] | None) -> np.ndarray:
    """One recorded frame, decoded as DIAMBRA's ``cv2.imdecode(..., IMREAD_UNCHANGED)`` does, as ``(H, W, C)``.

    Args:
        where: the file and step, for messages.
        buf: the stored bytes (a uint8 array, any shape, or bytes).
        shape: the expected ``(H, W, C)``; None accepts any size (checked against the first frame).
    """
    image_module = require("PIL.Image", "diambra", "Decoding the JPEG frames of DIAMBRA 2.2 recordings")
    if isinstance(buf, np.ndarray) and buf.dtype == np.uint8:
        data = buf.tobytes()
    elif isinstance(buf, bytes | bytearray):
        data = bytes(buf)
    else:
        raise FormatError(f"{where}: the frame is {type(buf).__name__} {getattr(buf, 'dtype', '')}, not JPEG bytes")
    try:
        with image_module.open(io.BytesIO(data), formats=["JPEG"]) as im:
            w, h = im.size
            mode = im.mode
            if not (0 < h <= _MAX_SIDE and 0 < w <= _MAX_SIDE) or mode not in ("L", "RGB"):
                raise FormatError(f"{where}: the frame is a {w}x{h} {mode} JPEG; DIAMBRA frames are grey or RGB "
                                  f"and at most {_MAX_SIDE} pixels a side")
            if shape is not None and (h, w, 1 if mode == "L" else 3) != shape:
                raise FormatError(f"{where}: the frame is {h}x{w} {mode}, but the recording's frames are {shape}")
            pixels = np.asarray(im)
    except (OSError, SyntaxError, ValueError) as exc:  # Pillow's errors for data that is not a JPEG
        raise FormatError(f"{where}: the frame is not a readable JPEG ({exc})") from exc
    if pixels.ndim == 2:
        return pixels[:, :, None].copy()
    return pixels[:, :, ::-1].copy()  # the JPEG holds the RGB frame as OpenCV's BGR: swap back


def canonical_settings(fields: Mapping[str, Any], where: str) -> dict[str, Any]:
    """The decoded ``EnvSettings`` in trajarena's names (what make() stores for a DIAMBRA game)."""
    n = fields["n_players"]
    players = fields["episode_settings"]["player_settings"]
    kinds = fields["action_spaces"]
    if n not in (1, 2) or len(players) != n or len(kinds) != n:
        raise FormatError(f"{where}: the settings say {n} player(s) with {len(players)} player setting(s) and "
                          f"{len(kinds)} action space(s); DIAMBRA 2.2 records 1 or 2 players with one of each")
    for kind in kinds:
        if kind not in _SPACES:
            raise FormatError(f"{where}: an action space of type {kind!r}; DIAMBRA agents act DISCRETE or "
                              "MULTI_DISCRETE")
    roles = [p["role"] for p in players]
    if any(r not in ("P1", "P2") for r in roles) or len(set(roles)) != n:
        raise FormatError(f"{where}: the players' roles are {roles}; each player is P1 or P2, and not both the same")
    frame = fields["frame_shape"]
    episode = fields["episode_settings"]

    def per_player(values: list[Any]) -> Any:
        return values[0] if n == 1 else tuple(values)

    def chars(p: Mapping[str, Any]) -> Any:
        return p["characters"][0] if len(p["characters"]) == 1 else tuple(p["characters"]) or None

    return {
        "n_players": n, "frame_shape": (frame["h"], frame["w"], frame["c"]), "step_ratio": fields["step_ratio"],
        "difficulty": episode["difficulty"] or None, "continue_game": episode["continue_game"],
        "role": per_player(roles), "characters": per_player([chars(p) for p in players]),
        "outfits": per_player([p["outfits"] for p in players]),
        "action_space": per_player([_SPACES[k] for k in kinds]), "seed": episode["random_seed"],
        "show_final": episode["show_final"], "tower": episode["tower"],
        "super_art": per_player([p["super_art"] for p in players]),
        "fighting_style": per_player([p["fighting_style"] for p in players]),
        "ultimate_style": per_player([(p["ultimate_style"]["dash"], p["ultimate_style"]["evade"],
                                       p["ultimate_style"]["bar"]) for p in players]),
        "speed_mode": per_player([p["speed_mode"] for p in players]),
    }


def _ram_value(where: str, value: Any, space: spaces.Space) -> Any:
    if isinstance(space, spaces.Discrete):
        if isinstance(value, np.ndarray) and value.size == 1:
            value = value.reshape(()).item()
        if not isinstance(value, int | np.integer) or isinstance(value, bool) or not 0 <= int(value) < space.n:
            raise FormatError(f"{where} is {value!r}, outside {space}")
        return np.int64(value)
    arr = np.asarray(value)
    if arr.dtype.kind not in "iu" or arr.size != 1:
        raise FormatError(f"{where} is {value!r}, not one integer as {space} holds")
    v = int(arr.reshape(()).item())
    if not np.iinfo(space.dtype).min <= v <= np.iinfo(space.dtype).max:
        raise FormatError(f"{where} is {v}, which does not fit {space.dtype}")
    return np.full(space.shape, v, space.dtype)


def _observation(where: str, obs: Any, space: spaces.Dict, frame_shape: tuple[int, int, int] | None) -> dict:
    if not isinstance(obs, Mapping) or set(obs) != set(space.spaces):
        found = sorted(obs) if isinstance(obs, Mapping) else type(obs).__name__
        raise FormatError(f"{where}: the observation has the keys {found}, but this game's are "
                          f"{sorted(space.spaces)} (recorded with another diambra-arena version?)")
    out: dict[str, Any] = {"frame": decode_jpeg(where, obs["frame"], frame_shape)}
    for key, sub in space.spaces.items():
        if key == "frame":
            continue
        if isinstance(sub, spaces.Dict):
            value = obs[key]
            if not isinstance(value, Mapping) or set(value) != set(sub.spaces):
                found = sorted(value) if isinstance(value, Mapping) else type(value).__name__
                raise FormatError(f"{where}: {key} has the keys {found}, but this game's are {sorted(sub.spaces)}")
            out[key] = {k: _ram_value(f"{where}: {key}.{k}", value[k], s) for k, s in sub.spaces.items()}
        else:
            out[key] = _ram_value(f"{where}: {key}", obs[key], sub)
    return out


def _action(where: str, value: Any, space: spaces.Space) -> Any:
    if not isinstance(space, spaces.Dict):
        return as_action(where, value, space)
    if not isinstance(value, Mapping) or set(value) != set(space.spaces):
        raise FormatError(f"{where}: a two-player action is {value!r}, not a dict of agent_0's and agent_1's")
    return {a: as_action(f"{where} ({a})", value[a], s) for a, s in space.spaces.items()}


def read_v22(data: Any, name: str, games: Any = None) -> Recording:
    """Turn the unpickled content of a ``.diambra`` file into a :class:`Recording`.

    Args:
        data: what :func:`~trajarena.interop.diambra.unpickle.load_bz2_pickle` returned.
        name: the file's name, for messages and the metadata.
        games: path of DIAMBRA's game table; None reads the installed diambra-arena's.

    Raises:
        FormatError: the content is not laid out as DIAMBRA 2.2 writes it (the message says where).
        MissingDependencyError: no game table (diambra-arena not installed, no ``games`` path).
    """
    require_keys(name, data, ("episode_summary", "data"), "the recording")
    summary, steps = data["episode_summary"], data["data"]
    require_keys(name, summary, ("steps", "username", "env_settings"), "episode_summary")
    if not isinstance(summary["env_settings"], ProtobufBytes):
        raise FormatError(f"{name}: episode_summary.env_settings is {type(summary['env_settings']).__name__}, "
                          "not DIAMBRA's EnvSettings message")
    fields = decode_env_settings(summary["env_settings"].serialized)
    settings = canonical_settings(fields, name)
    if not isinstance(steps, list) or not steps or summary["steps"] != len(steps):
        raise FormatError(f"{name}: episode_summary.steps is {summary['steps']!r} but the file holds "
                          f"{len(steps) if isinstance(steps, list) else type(steps).__name__} step(s)")
    for i, step in enumerate(steps):
        require_keys(f"{name}: step {i}", step, ("obs", "action", "reward", "terminated", "truncated", "info"), "the step")
    username = summary["username"]
    if not isinstance(username, str):
        raise FormatError(f"{name}: the username is {username!r}, not a string")
    facts = game_facts(fields["game_id"], games)
    h, w, c = settings["frame_shape"]
    first = decode_jpeg(f"{name}: step 0", steps[0]["obs"].get("frame") if isinstance(steps[0]["obs"], Mapping)
                        else None, None)
    expected = (h or first.shape[0], w or first.shape[1], 1 if c == 1 else 3)
    if first.shape != expected:
        raise FormatError(f"{name}: the first frame is {first.shape}, but the settings ask for {expected}")
    obs_space = facts.observation_space(expected)
    kinds = settings["action_space"] if settings["n_players"] == 2 else (settings["action_space"],)
    agent_spaces = [facts.action_space(k) for k in kinds]
    act_space = agent_spaces[0] if len(agent_spaces) == 1 else spaces.Dict(agent_0=agent_spaces[0],
                                                                             agent_1=agent_spaces[1])
    reset_obs = _observation(f"{name}: step 0", steps[0]["obs"], obs_space, expected)

    def produce() -> Iterator[Step]:
        previous = reset_obs
        for i, step in enumerate(steps):
            where = f"{name}: step {i}"
            nxt = _observation(f"{name}: step {i + 1}", steps[i + 1]["obs"], obs_space, expected) \
                if i + 1 < len(steps) else previous  # the final observation is not recorded: repeat the last one
            info = step["info"] if isinstance(step["info"], Mapping) else {}
            flags = {f: as_bool(f"{where}: info.{f}", info[f]) for f in FLAGS if f in info}
            yield Step(_action(where, step["action"], act_space), nxt, as_reward(where, step["reward"]),
                       as_bool(f"{where}: terminated", step["terminated"]),
                       as_bool(f"{where}: truncated", step["truncated"]), flags)
            previous = nxt

    source = {
        "format": "diambra-arena 2.2 .diambra (EpisodeRecorder)",
        "frames": describe_frames(settings["frame_shape"]) + ", decoded as DIAMBRA's loader decodes them",
        "final_observation": "not recorded by DIAMBRA 2.2; the last recorded observation is repeated",
        "spaces": "from the recording's settings and diambra-arena's game table",
        "characters": list(facts.characters),
        "env_settings_fields": fields,
    }
    return Recording(path=name, version="2.2", env_id=fields["game_id"], env_settings=settings,
                     wrappers_settings={}, username=username, ignore_p2=0, observation_space=obs_space,
                     action_space=act_space, reset_obs=reset_obs, steps=produce, n_steps=len(steps),
                     seed=fields["episode_settings"]["random_seed"], source=source)

