"""Where behavioural cloning's batches come from: demonstration sources, in memory or streamed from disk.

A *source* (:class:`DemoSource`) holds the encoded steps of a set of trajectory files as the policy sees
them (the loader re-applies the wrappers settings stored in the files): per step an image (uint8), a
float32 vector, the target action as head indices, the episode id (for splitting by episode) and a
weight. Training asks a source for rows by index (:meth:`DemoSource.gather`), so the training loop
never knows where they live:

* :class:`Demonstrations` keeps everything in memory (small datasets, tests, hand-made data);
* :class:`StreamingDemonstrations` keeps the vectors, targets and ids in memory (a few bytes a step)
  and the images in one file of fixed-size rows, read per batch with ``preadv``: the frames stay in
  the OS page cache, not in the process, so memory stays flat however many steps there are.

Both are filled by one pass of :func:`load_demonstrations` through
:class:`~trajarena.replay.imitation.ImitationLearning` and give bit-identical batches for the same
indices. :func:`epoch_batches` is the batch order of an epoch (shuffled with a torch generator, split
across ``world`` ranks): the seam for weighting, filtering and data-parallel training.

The target of a step is ``info["expert_action"]`` when the file records one (DAgger's labels: the
expert's choice in the state the learner visited), else the recorded action.

>>> import numpy as np
>>> from gymnasium import spaces
>>> src = Demonstrations.from_steps([np.full(2, i, np.float32) for i in range(4)], [0, 1, 1, 0], [0, 0, 1, 1],
...                                 spaces.Box(0, 4, (2,), np.float32), spaces.Discrete(2))
>>> src.gather(np.array([1, 3])).actions.ravel().tolist()
[1, 0]
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
from abc import ABC, abstractmethod
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
from gymnasium import spaces

from trajarena.errors import DataNotFoundError, MismatchError
from trajarena.learn.network import ObsEncoder, action_heads, stack_obs

__all__ = ["LABEL_KEY", "Batch", "DemoSource", "Demonstrations", "StreamingDemonstrations", "concat_sources",
           "epoch_batches", "file_digest", "load_demonstrations", "trajectory_files"]

#: The info key of a step's expert label (DAgger); the target of that step when present.
LABEL_KEY = "expert_action"
_BLOCK = 2048  # steps encoded at a time


class Batch(NamedTuple):
    """Rows of a source: ``image`` (B, H, W, C) uint8 or None, ``vector`` (B, D) float32,
    ``actions`` (B, heads) int64, ``weight`` (B,) float32."""

    image: np.ndarray | None
    vector: np.ndarray
    actions: np.ndarray
    weight: np.ndarray

    def __repr__(self) -> str:
        img = None if self.image is None else f"uint8{list(self.image.shape)}"
        return f"Batch(image={img}, vector=float32{list(self.vector.shape)}, actions=int64{list(self.actions.shape)})"


class DemoSource(ABC):
    """Encoded demonstration steps; subclasses say where the images live.

    Attributes:
        vector, actions, episode, weight: per-step arrays, in memory.
        observation_space, action_space: the (wrapped) spaces the policy sees and acts in.
        meta: env id, env settings, wrappers settings, source files.
    """

    vector: np.ndarray
    actions: np.ndarray
    episode: np.ndarray
    weight: np.ndarray
    observation_space: spaces.Space
    action_space: spaces.Space
    meta: dict[str, Any]

    def __len__(self) -> int:
        return len(self.actions)

    @property
    def n_episodes(self) -> int:
        return int(len(np.unique(self.episode)))

    def gather(self, idx: np.ndarray) -> Batch:
        """The rows ``idx`` (sorted indices read fastest) as a :class:`Batch`."""
        idx = np.asarray(idx, np.int64)
        return Batch(self._images(idx), self.vector[idx], self.actions[idx], self.weight[idx])

    @abstractmethod
    def _images(self, idx: np.ndarray) -> np.ndarray | None:
        """The images of rows ``idx`` (None when the observation has no image)."""

    def close(self) -> None:
        """Release what the source holds on disk (nothing for an in-memory one)."""

    def __enter__(self) -> DemoSource:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def __repr__(self) -> str:
        img = getattr(self, "image_shape", None)
        return (f"{type(self).__name__}(steps={len(self)}, episodes={self.n_episodes}, image={img}, "
                f"vector={self.vector.shape})")


class Demonstrations(DemoSource):
    """Encoded demonstrations held in memory.

    Args:
        image: frames (N, H, W, C) uint8, or None for observations without an image.
        vector: the other observation parts, encoded (N, D) float32.
        actions: the target actions as head indices (N, n_heads) int64.
        episode: the episode id of each step (N,), for splitting by episode.
        observation_space, action_space: the (wrapped) spaces the policy will see and act in.
        meta: env id, env settings, wrappers settings and the source files.
        weight: per-step loss weights (N,); None: all 1.
    """

    def __init__(self, image: np.ndarray | None, vector: np.ndarray, actions: np.ndarray, episode: np.ndarray,
                 observation_space: spaces.Space, action_space: spaces.Space, meta: Mapping[str, Any] | None = None,
                 weight: np.ndarray | None = None) -> None:
        self.image, self.vector, self.actions, self.episode = image, vector, actions, np.asarray(episode, np.int64)
        self.observation_space, self.action_space, self.meta = observation_space, action_space, dict(meta or {})
        self.weight = np.ones(len(actions), np.float32) if weight is None else np.asarray(weight, np.float32)
        self.image_shape = None if image is None else tuple(image.shape[1:])

    def _images(self, idx: np.ndarray) -> np.ndarray | None:
        return None if self.image is None else self.image[idx]

    @classmethod
    def from_steps(cls, observations: Sequence[Any], actions: Sequence[Any], episode: Sequence[int],
                   observation_space: spaces.Space, action_space: spaces.Space,
                   meta: Mapping[str, Any] | None = None) -> Demonstrations:
        """Encode lists of (unbatched) observations and env-format actions."""
        encoder = ObsEncoder.from_space(observation_space)
        _, start = action_heads(action_space)
        images, vectors = [], []
        for i in range(0, len(observations), _BLOCK):
            img, vec = encoder.encode(stack_obs(observations[i:i + _BLOCK]))
            images.append(img)
            vectors.append(vec)
        acts = np.asarray(actions, np.int64).reshape(len(actions), -1) - np.asarray(start, np.int64)
        return cls(None if encoder.image_path is None else np.concatenate(images), np.concatenate(vectors), acts,
                   np.asarray(episode, np.int64), observation_space, action_space, meta)


class StreamingDemonstrations(DemoSource):
    """Encoded demonstrations whose images live in a file of fixed-size rows, read per batch.

    Built by :func:`load_demonstrations` (``stream=True``). The image file goes in ``cache_dir`` (a
    temporary folder by default, removed by :meth:`close`); reads use ``os.preadv`` into the batch
    array, so the frames occupy the OS page cache, never the process's own memory.
    """

    def __init__(self, image_shape: tuple[int, ...] | None, vector: np.ndarray, actions: np.ndarray,
                 episode: np.ndarray, observation_space: spaces.Space, action_space: spaces.Space,
                 meta: Mapping[str, Any], path: Path | None, owned_dir: Path | None,
                 weight: np.ndarray | None = None) -> None:
        self.image_shape, self.vector, self.actions = image_shape, vector, actions
        self.episode = np.asarray(episode, np.int64)
        self.observation_space, self.action_space, self.meta = observation_space, action_space, dict(meta)
        self.weight = np.ones(len(actions), np.float32) if weight is None else np.asarray(weight, np.float32)
        self.path, self._owned = path, owned_dir
        self._row_bytes = 0 if image_shape is None else int(np.prod(image_shape))
        self._fd = None if path is None else os.open(path, os.O_RDONLY)

    def _images(self, idx: np.ndarray) -> np.ndarray | None:
        if self.image_shape is None:
            return None
        if self._fd is None:
            raise ValueError("this StreamingDemonstrations is closed.")
        out = np.empty((len(idx), *self.image_shape), np.uint8)
        if not len(idx):
            return out
        flat = out.reshape(len(idx), -1)
        runs = np.flatnonzero(np.diff(idx) != 1) + 1  # consecutive rows are read in one call
        for lo, hi in zip(np.r_[0, runs], np.r_[runs, len(idx)], strict=True):
            want = (hi - lo) * self._row_bytes
            got = os.preadv(self._fd, [memoryview(flat[lo:hi]).cast("B")], int(idx[lo]) * self._row_bytes)
            if got != want:
                raise OSError(f"short read from {self.path}: {got} of {want} bytes (was the file changed?)")
        return out

    def close(self) -> None:
        """Close the image file and delete the temporary folder it was made in."""
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
        if self._owned is not None:
            shutil.rmtree(self._owned, ignore_errors=True)
            self._owned = None


def epoch_batches(n_or_idx: int | np.ndarray, batch_size: int, gen: Any = None, rank: int = 0,
                  world: int = 1) -> Iterator[np.ndarray]:
    """The batches of one epoch: the indices shuffled by ``gen`` (a torch generator; None keeps their
    order), cut into ``batch_size`` slices, each sorted (rows read in file order).

    With ``world > 1`` rank ``rank`` gets every ``world``-th batch (the last ones are dropped so every
    rank takes as many gradient steps): the split a data-parallel trainer needs.

    >>> [b.tolist() for b in epoch_batches(np.array([5, 6, 7, 8, 9]), 2)]
    [[5, 6], [7, 8], [9]]
    """
    idx = np.arange(n_or_idx) if np.isscalar(n_or_idx) else np.asarray(n_or_idx, np.int64)
    if gen is not None:
        from trajarena.learn.network import _torch

        idx = idx[_torch().randperm(len(idx), generator=gen).numpy()]
    starts = list(range(0, len(idx), batch_size))
    if world > 1:
        starts = starts[: len(starts) - len(starts) % world][rank::world]
    for i in starts:
        yield np.sort(idx[i:i + batch_size])


# ----------------------------------------------------------------------------- loading


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
                        cache_dir: str | Path | None = None, episode_offset: int = 0) -> DemoSource:
    """Replay trajectory files through :class:`trajarena.ImitationLearning` and encode every step.

    Args:
        data: a folder of trajectory files, one file, or a list of files.
        wrappers_settings: None re-applies the wrappers settings stored in the files (the default).
        max_steps: stop after this many steps (None: all of them).
        stream: keep the images in a file read per batch (:class:`StreamingDemonstrations`) instead of memory.
        cache_dir: where that file goes (default: a temporary folder removed by ``close()``).
        episode_offset: added to the episode ids (to append sources without mixing their episodes).

    Raises:
        DataNotFoundError: the files hold no step to learn from.
    """
    from trajarena.replay.imitation import ImitationLearning

    files = trajectory_files(data)
    kwargs: dict[str, Any] = {"traj_files_list": [str(f) for f in files], "total_cpus": 1, "rank": 0}
    if wrappers_settings is not None:
        kwargs["wrappers_settings"] = wrappers_settings
    env = ImitationLearning(**kwargs)
    sink = _Sink(stream, cache_dir)
    try:
        encoder = ObsEncoder.from_space(env.observation_space)
        _, start = action_heads(env.action_space)
        pending: list[Any] = []
        actions: list[Any] = []
        episode: list[int] = []
        keys: list[str] = []
        labelled = [0, 0]  # steps with an expert label, and those where the action played was the label

        def flush() -> None:  # encode in blocks: memory holds encoded arrays, not observation dicts
            if pending:
                sink.add(*encoder.encode(stack_obs(pending)))
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
        if labelled[0]:
            meta["labelled"] = {"steps": labelled[0], "agreement": labelled[1] / labelled[0]}
        acts = np.asarray(actions, np.int64).reshape(len(actions), -1) - np.asarray(start, np.int64)
        ids = _episode_ids(keys, episode) + episode_offset
        vector = np.concatenate(sink.vectors)
        if sink.file is None:
            image = None if encoder.image_path is None else np.concatenate(sink.images)
            return Demonstrations(image, vector, acts, ids, env.observation_space, env.action_space, meta)
        sink.file.close()
        return StreamingDemonstrations(encoder.image_shape, vector, acts, ids, env.observation_space,
                                       env.action_space, meta, sink.path, sink.owned)
    except BaseException:
        sink.abort()
        raise
    finally:
        env.close()


def concat_sources(first: DemoSource, more: DemoSource) -> DemoSource:
    """One source with the steps of both (DAgger's aggregation); ``first`` and ``more`` stay usable.

    Raises:
        MismatchError: the two were encoded from different observation or action spaces.
    """
    if first.observation_space != more.observation_space or first.action_space != more.action_space:
        raise MismatchError(f"cannot aggregate demonstrations of different spaces: {first.observation_space} / "
                            f"{first.action_space} and {more.observation_space} / {more.action_space}.")
    return _Concat(first, more)


class _Concat(DemoSource):
    def __init__(self, a: DemoSource, b: DemoSource) -> None:
        self.parts = (a, b)
        self.n_first = len(a)
        self.vector = np.concatenate([a.vector, b.vector])
        self.actions = np.concatenate([a.actions, b.actions])
        self.episode = np.concatenate([a.episode, b.episode])
        self.weight = np.concatenate([a.weight, b.weight])
        self.observation_space, self.action_space = a.observation_space, a.action_space
        self.meta = {**a.meta, "files": list(a.meta.get("files", [])) + list(b.meta.get("files", []))}
        self.image_shape = getattr(a, "image_shape", None)

    def _images(self, idx: np.ndarray) -> np.ndarray | None:
        a, b = self.parts
        cut = int(np.searchsorted(idx, self.n_first)) if np.all(idx[:-1] <= idx[1:]) else None
        if cut is not None:
            ia, ib = a._images(idx[:cut]), b._images(idx[cut:] - self.n_first)
            return None if ia is None else np.concatenate([ia, ib])
        order = np.argsort(idx, kind="stable")
        images = self._images(idx[order])
        return None if images is None else images[np.argsort(order)]

    def close(self) -> None:
        for p in self.parts:
            p.close()


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
