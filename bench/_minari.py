"""Minari baselines: record with ``minari.DataCollector``, replay and sample with ``MinariDataset``.

Minari (0.5.x) is the reference trajarena is compared with. We record with the HDF5 backend
(``data_format="hdf5"``): Minari's Arrow backend slows down as the dataset grows, so HDF5 is
its fastest and fairest configuration. Minari stores image observations as JPEG by default
(lossy, ``jpeg_encoding=True``); :func:`record` can turn that off for a lossless comparison.

Everything Minari writes goes under a temporary ``MINARI_DATASETS_PATH`` (see
:func:`datasets_path`), never under ``~/.minari``.

Needs ``minari[create]`` (it pulls jax) and Pillow: ``pip install -r bench/requirements.txt``.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
import time
import uuid
import warnings
from collections.abc import Iterator
from typing import Any

import numpy as np

from _common import RecordResult, RssSampler, dir_size, pause_stats
from _envs import EnvFactory, random_policy, run_loop


def available() -> tuple[bool, str]:
    """Return ``(True, "")`` when Minari can record here, else ``(False, "n/a (why)")``."""
    try:
        import minari  # noqa: F401
        from minari import DataCollector  # noqa: F401
        import PIL  # noqa: F401  - Minari's JPEG encoding needs it and does not declare it
        import jax.tree_util  # noqa: F401  - DataCollector.step needs minari[create] (jax)
    except ImportError as exc:
        return False, f"n/a (minari not installed: {exc.name})"
    return True, ""


@contextlib.contextmanager
def datasets_path(folder: str | os.PathLike | None = None) -> Iterator[str]:
    """Point ``MINARI_DATASETS_PATH`` at a fresh temporary folder for the duration of the block."""
    old = os.environ.get("MINARI_DATASETS_PATH")
    with tempfile.TemporaryDirectory(prefix="minari-bench-", dir=folder) as tmp:
        os.environ["MINARI_DATASETS_PATH"] = tmp
        try:
            yield tmp
        finally:
            if old is None:
                os.environ.pop("MINARI_DATASETS_PATH", None)
            else:
                os.environ["MINARI_DATASETS_PATH"] = old


def record(
    factory: EnvFactory,
    n_steps: int,
    seed: int = 0,
    data_format: str = "hdf5",
    jpeg_encoding: bool = True,
    sample_memory_every: int = 0,
) -> RecordResult:
    """Record ``n_steps`` with ``DataCollector`` and ``create_dataset``, under the current
    ``MINARI_DATASETS_PATH`` (wrap the call in :func:`datasets_path`).

    The loop, policy and seeds are those of :func:`_envs.run_loop`, so the episodes match the
    raw-env and trajarena runs. ``sample_memory_every > 0`` samples the RSS that often.
    """
    import minari

    env = factory()
    kwargs: dict[str, Any] = {"record_infos": False, "data_format": data_format}
    if _supports_jpeg_flag():
        kwargs["jpeg_encoding"] = jpeg_encoding
    collector = minari.DataCollector(env, **kwargs)
    sampler = RssSampler()
    on_step = None
    if sample_memory_every > 0:
        def on_step(i: int) -> None:
            if i == min(1000, n_steps // 10):
                sampler.baseline()
            elif i % sample_memory_every == 0 and sampler.samples:
                sampler.sample()
    stats = run_loop(collector, n_steps, random_policy(env, seed), seed, on_step=on_step,
                     reset_options={"minari_autoseed": False})
    dataset_id = f"bench/{_safe(env)}-{uuid.uuid4().hex[:8]}-v0"
    start = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # missing author/description/eval_env warnings
        dataset = collector.create_dataset(
            dataset_id=dataset_id,
            algorithm_name="random",
            author="trajarena-bench",
            author_email="bench@example.invalid",
            code_permalink="https://example.invalid/trajarena/bench",
            description="benchmark recording",
        )
    finalize_s = time.perf_counter() - start
    collector.close()
    data_path = dataset.storage.data_path
    return RecordResult(
        steps=stats.steps,
        episodes=dataset.total_episodes,
        loop_s=stats.seconds,
        finalize_s=finalize_s,
        bytes_on_disk=dir_size(data_path),
        pauses=pause_stats(stats.pauses_s),
        data_path=str(data_path),
        memory_growth_mb=sampler.growth_mb() if len(sampler.samples) > 1 else None,
    )


def _supports_jpeg_flag() -> bool:
    import inspect

    import minari

    return "jpeg_encoding" in inspect.signature(minari.DataCollector.__init__).parameters


def _safe(env) -> str:
    spec_id = env.spec.id if env.spec is not None else type(env.unwrapped).__name__
    return spec_id.replace("/", "-").replace("_", "-").lower()


def load(data_path: str):
    """Open a recorded dataset from its folder (no download, no registry lookup)."""
    from minari import MinariDataset

    return MinariDataset(data_path)


def _index(tree: Any, t: int) -> Any:
    if isinstance(tree, dict):
        return {k: _index(v, t) for k, v in tree.items()}
    if isinstance(tree, tuple):
        return tuple(_index(v, t) for v in tree)
    return tree[t]


def replay_sequential(data_path: str) -> tuple[int, float]:
    """Read every episode with ``iterate_episodes`` and touch every step's observation.

    Returns ``(steps, seconds)``; a step is one transition (``len(episode)``).
    """
    dataset = load(data_path)
    start = time.perf_counter()
    steps = 0
    for episode in dataset.iterate_episodes():
        n = len(episode)
        for t in range(n):
            _index(episode.observations, t)
        steps += n
    return steps, time.perf_counter() - start


def sample_random(data_path: str, n: int, seed: int = 0, batch_size: int = 1,
                  max_seconds: float = float("inf")) -> tuple[int, float]:
    """Fetch ``n`` random transitions (obs, action, reward, next obs) from random episodes.

    ``batch_size == 1``: for each transition, ``dataset[random_episode]`` then a random step.
    ``batch_size > 1``: per batch, ``iterate_episodes`` over up to ``batch_size`` distinct random
    episodes, then ``batch_size`` random steps among them (generous to Minari: an episode read
    serves several transitions). Returns ``(transitions, seconds)``.
    """
    dataset = load(data_path)
    rng = np.random.default_rng(seed)
    n_eps = dataset.total_episodes
    lengths = np.asarray([len(ep) for ep in dataset.iterate_episodes()])  # not timed
    start = time.perf_counter()
    done = 0
    while done < n and (done == 0 or time.perf_counter() - start < max_seconds):
        if batch_size == 1:
            idx = int(rng.integers(n_eps))
            episode = dataset[idx]
            t = int(rng.integers(lengths[idx]))
            _transition(episode, t)
            done += 1
        else:
            ids = np.sort(rng.choice(n_eps, size=min(batch_size, n_eps), replace=False))
            episodes = list(dataset.iterate_episodes(ids))
            picks = rng.integers(len(episodes), size=batch_size)
            for k in picks:
                episode = episodes[k]
                _transition(episode, int(rng.integers(len(episode))))
            done += batch_size
    return done, time.perf_counter() - start


def _transition(episode, t: int) -> tuple:
    return (_index(episode.observations, t), _index(episode.actions, t), episode.rewards[t],
            _index(episode.observations, t + 1))


def count_steps(data_path: str) -> int:
    """Total steps of a recorded dataset."""
    return int(load(data_path).total_steps)


__all__ = [
    "RecordResult", "available", "count_steps", "datasets_path", "load", "record",
    "replay_sequential", "sample_random",
]
