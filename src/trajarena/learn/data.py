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

Both are filled by one pass of :func:`~trajarena.learn.loading.load_demonstrations` through
:class:`~trajarena.replay.imitation.ImitationLearning` and give bit-identical batches for the same
indices. :func:`epoch_batches` is the batch order of an epoch (shuffled with a torch generator); with
the sources' per-step ``weight`` it is the seam for weighting and filtering.

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

import os
import shutil
from abc import ABC, abstractmethod
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
from gymnasium import spaces

from trajarena.errors import MismatchError
from trajarena.learn.network import ObsEncoder, action_heads, stack_obs

__all__ = ["LABEL_KEY", "Batch", "DemoSource", "Demonstrations", "StreamingDemonstrations", "concat_sources",
           "epoch_batches"]

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
    #: per step, True where a human had taken over from the agent (None: not recorded)
    intervention: np.ndarray | None = None

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

    Built by :func:`~trajarena.learn.loading.load_demonstrations` (``stream=True``). The image file goes in ``cache_dir`` (a
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


def epoch_batches(n_or_idx: int | np.ndarray, batch_size: int, gen: Any = None) -> Iterator[np.ndarray]:
    """The batches of one epoch: the indices shuffled by ``gen`` (a torch generator; None keeps their
    order), cut into ``batch_size`` slices, each sorted (rows read in file order).

    >>> [b.tolist() for b in epoch_batches(np.array([5, 6, 7, 8, 9]), 2)]
    [[5, 6], [7, 8], [9]]
    """
    idx = np.arange(n_or_idx) if np.isscalar(n_or_idx) else np.asarray(n_or_idx, np.int64)
    if gen is not None:
        from trajarena.learn.network import _torch

        idx = idx[_torch().randperm(len(idx), generator=gen).numpy()]
    for i in range(0, len(idx), batch_size):
        yield np.sort(idx[i:i + batch_size])


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
        if a.intervention is not None and b.intervention is not None:
            self.intervention = np.concatenate([a.intervention, b.intervention])
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
