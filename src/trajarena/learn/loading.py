"""Loading demonstrations: one pass of the loader over trajectory files, encoded into a source.

:func:`load_demonstrations` replays the files through :class:`~trajarena.replay.imitation.ImitationLearning`
(the wrappers settings stored in the files re-applied), encodes observations in blocks with the policy's
:class:`~trajarena.learn.network.ObsEncoder`, and returns a :class:`~trajarena.learn.data.Demonstrations`
(in memory) or a :class:`~trajarena.learn.data.StreamingDemonstrations` (frames appended to a file of
fixed-size rows as they are encoded, so memory never holds the whole dataset). Episode ids follow the
recorded seeds, so the split does not depend on the order of the files; a step's target is its
``info["expert_action"]`` when the file records one (DAgger), else the recorded action.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from trajarena.errors import DataNotFoundError
from trajarena.learn.data import LABEL_KEY, DemoSource, Demonstrations, StreamingDemonstrations
from trajarena.learn.network import ObsEncoder, action_heads, stack_obs
from trajarena.learn.progress import CountBar
from trajarena.learn.selection import loader_view

__all__ = ["file_digest", "load_demonstrations", "trajectory_files"]

_BLOCK = 2048  # steps encoded at a time


def trajectory_files(data: str | Path | Sequence[str | Path]) -> list[Path]:
    """The trajectory files of a folder, a file or a list of them."""
    from trajarena.replay.dataset import list_trajectory_files

    return [Path(f) for f in list_trajectory_files(data)]


def file_digest(paths: Sequence[Path]) -> list[dict[str, Any]]:
    """Name, size and sha256 of each file (what a policy was trained on)."""
    out = []
    for p in paths:
        h = hashlib.sha256()
        with open(p, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                h.update(block)
        out.append({"name": p.name, "bytes": p.stat().st_size, "sha256": h.hexdigest()})
    return out


class _Sink:
    """Collects encoded blocks: images in memory or appended to a row file."""

    def __init__(self, stream: bool, cache_dir: str | Path | None) -> None:
        self.images: list[np.ndarray] = []
        self.vectors: list[np.ndarray] = []
        self.file = self.path = self.owned = None
        if stream:
            if cache_dir is None:
                self.owned = Path(tempfile.mkdtemp(prefix="trajarena-bc-"))
                folder = self.owned
            else:
                folder = Path(cache_dir)
                folder.mkdir(parents=True, exist_ok=True)
            fd, name = tempfile.mkstemp(prefix="images-", suffix=".u8", dir=folder)
            self.path, self.file = Path(name), os.fdopen(fd, "wb")

    def add(self, image: np.ndarray | None, vector: np.ndarray) -> None:
        self.vectors.append(vector)
        if image is not None:
            if self.file is not None:
                self.file.write(np.ascontiguousarray(image).data)
            else:
                self.images.append(image)

    def abort(self) -> None:
        if self.file is not None:
            self.file.close()
            self.path.unlink(missing_ok=True)
            if self.owned is not None:
                shutil.rmtree(self.owned, ignore_errors=True)


def load_demonstrations(data: str | Path | Sequence[str | Path], wrappers_settings: Any = None,
                        max_steps: int | None = None, stream: bool = False,
                        cache_dir: str | Path | None = None, episode_offset: int = 0,
                        progress: bool = False, loader_options: Mapping[str, Any] | None = None) -> DemoSource:
    """Replay trajectory files through :class:`trajarena.ImitationLearning` and encode every step.

    Args:
        data: a folder of trajectory files, one file, or a list of files.
        wrappers_settings: None re-applies the wrappers settings stored in the files (the default).
        max_steps: stop after this many steps (None: all of them).
        stream: keep the images in a file read per batch (:class:`StreamingDemonstrations`) instead of memory.
        cache_dir: where that file goes (default: a temporary folder removed by ``close()``).
        episode_offset: added to the episode ids (to append sources without mixing their episodes).
        progress: show a progress bar (steps encoded, steps/s, ETA).
        loader_options: more keyword arguments of the loader, e.g. ``{"perspective": "both", "mirror": True}``
            (:func:`trajarena.learn.selection.loader_view` checks them).

    Raises:
        DataNotFoundError: the files hold no step to learn from.
    """
    from trajarena.replay.imitation import ImitationLearning

    files = trajectory_files(data)
    kwargs: dict[str, Any] = {**loader_view(loader_options), "traj_files_list": [str(f) for f in files],
                              "total_cpus": 1, "rank": 0}
    if wrappers_settings is not None:
        kwargs["wrappers_settings"] = wrappers_settings
    env = ImitationLearning(**kwargs)
    sink = _Sink(stream, cache_dir)
    total = getattr(getattr(env.replay, "dataset", None), "total_steps", None)
    bar = CountBar("load", "steps", max_steps if max_steps is not None and total is not None and max_steps < total
                   else total, progress).start()
    try:
        encoder = ObsEncoder.from_space(env.observation_space)
        _, start = action_heads(env.action_space)
        pending: list[Any] = []
        actions: list[Any] = []
        episode: list[int] = []
        keys: list[str] = []
        intervention: list[bool] = []  # where a human had taken over from the agent (trajarena play)
        labelled = [0, 0]  # steps with an expert label, and those where the action played was the label

        def flush() -> None:  # encode in blocks: memory holds encoded arrays, not observation dicts
            if pending:
                sink.add(*encoder.encode(stack_obs(pending)))
                bar.advance(len(pending))
                pending.clear()

        full = False
        ignored = env.action_space.sample()  # the loader ignores the action: one is enough
        obs, info = env.reset()
        keys.append(_episode_key(env, info))
        while not env.exhausted and not full:
            done = False
            while not done and not full:
                obs_next, _, terminated, truncated, info = env.step(ignored)
                pending.append(obs)
                label = info.get(LABEL_KEY)
                if label is not None:
                    labelled[0] += 1
                    labelled[1] += bool(np.array_equal(label, info["action"]))
                actions.append(np.asarray(info["action"] if label is None else label))
                intervention.append(bool(info.get("is_intervention", False)))
                episode.append(len(keys) - 1)
                if len(pending) >= _BLOCK:
                    flush()
                obs, done = obs_next, terminated or truncated
                full = max_steps is not None and len(actions) >= max_steps
            if not full:
                obs, info = env.reset()
                if not env.exhausted:
                    keys.append(_episode_key(env, info))
        flush()
        if not actions:
            raise DataNotFoundError(f"the trajectory files {[str(f) for f in files]} hold no steps to learn from.")
        meta = _loader_meta(env)
        meta["files"] = file_digest(files)
        meta["loader_options"] = loader_view(loader_options)
        meta["mirror"] = bool(meta["loader_options"].get("mirror", False))
        if labelled[0]:
            meta["labelled"] = {"steps": labelled[0], "agreement": labelled[1] / labelled[0]}
        acts = np.asarray(actions, np.int64).reshape(len(actions), -1) - np.asarray(start, np.int64)
        ids = _episode_ids(keys, episode) + episode_offset
        vector = np.concatenate(sink.vectors)
        if sink.file is None:
            image = None if encoder.image_path is None else np.concatenate(sink.images)
            source: DemoSource = Demonstrations(image, vector, acts, ids, env.observation_space, env.action_space,
                                                meta)
        else:
            sink.file.close()
            source = StreamingDemonstrations(encoder.image_shape, vector, acts, ids, env.observation_space,
                                             env.action_space, meta, sink.path, sink.owned)
        source.intervention = np.asarray(intervention, bool)
        return source
    except BaseException:
        sink.abort()
        raise
    finally:
        bar.close()
        env.close()
        del env
        _trim_memory()


def _trim_memory() -> None:
    """Hand the memory the loader freed back to the OS (glibc keeps it in the arenas of the loader's
    decoding threads: a few hundred MB after a pass over a large dataset). A no-op elsewhere."""
    try:
        import ctypes

        ctypes.CDLL(None).malloc_trim(0)
    except (OSError, AttributeError):
        pass


def _episode_ids(keys: list[str], episode: list[int]) -> np.ndarray:
    """Per-step episode ids numbered in sorted key order (the same ids for the same data in any file order)."""
    _, inverse = np.unique(np.asarray(keys), return_inverse=True)
    return inverse.astype(np.int64)[np.asarray(episode, np.int64)]


def _loader_meta(env: Any) -> dict[str, Any]:
    """Env id, env settings and the wrappers settings the loader applied."""
    first = env.file_metadata[0] if env.file_metadata else {}
    return {"env_id": env.env_id, "env_settings": env.env_settings, "wrappers_settings": env.wrappers_settings.to_dict(),
            "username": first.get("username"), "format_version": first.get("format_version")}


def _episode_key(env: Any, info: Mapping[str, Any]) -> str:
    """A key that names a replayed episode whatever the file order: its recorded seed, else file + index.

    Both sides of a two-player episode share the key, so they land on the same side of the split.
    """
    data = env.replay.dataset
    idx = info.get("episode")
    if data is None or idx is None:
        return f"order:{idx}"
    e = data.episodes[int(idx)]
    seed = (e.meta or {}).get("seed")
    return f"seed:{seed:012d}" if isinstance(seed, int) else f"file:{Path(e.file).name}:{e.episode:09d}"
