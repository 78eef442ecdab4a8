"""Import a Minari dataset into trajarena trajectory files, every declared size checked first.

:func:`import_minari` takes a local dataset id (under ``MINARI_DATASETS_PATH``, else
``~/.minari``) or a dataset folder, checks it without trusting it (:mod:`.checks`: metadata,
spaces, storage headers, then each decoded episode against the spaces), and writes its episodes
with :class:`~trajarena.format.writer.TrajectoryWriter`: observations, actions, rewards,
terminations, truncations, the episode seeds and the infos Minari stored (arrays or scalars).

The env: a dataset whose ``env_spec`` is ``trajarena/Duel-v0`` becomes ``env_id="duel"`` with
the spec's kwargs as settings, so a dataset exported by trajarena comes back as it was recorded
(a two-player ``joint`` export comes back as a two-player file); any other spec is stored as its
id and kwargs, as data (nothing a dataset names is imported or made).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np

from trajarena.envs.registration import trajarena_id_of
from trajarena.errors import DataNotFoundError, FormatError, SettingsError, TrajArenaError, require
from trajarena.format.writer import TrajectoryWriter
from trajarena.interop.minari.checks import check_episode, check_minari_home, check_storage, read_metadata
from trajarena.interop.summary import ConversionSummary, Progress, Timer, prepare_folder, report, total_bytes

__all__ = ["import_minari", "resolve_dataset"]

#: Errors Minari and its storages raise on data they cannot read (turned into FormatError).
_READ_ERRORS = (ValueError, KeyError, TypeError, AssertionError, OSError, IndexError, AttributeError)


def resolve_dataset(dataset: str | os.PathLike) -> tuple[Path, str]:
    """The data folder (the one with ``metadata.json``) of a dataset id or path, and a name for messages.

    Raises:
        DataNotFoundError: no such local dataset or folder.
    """
    path = Path(dataset)
    for candidate in (path, path / "data"):
        if (candidate / "metadata.json").is_file():
            return candidate, str(dataset)
    if path.exists():
        raise DataNotFoundError(f"{path} is not a Minari dataset folder (no metadata.json in it or in its data/).")
    from minari.storage.datasets_root_dir import get_dataset_path

    check_minari_home()
    data = get_dataset_path(str(dataset)) / "data"
    if not (data / "metadata.json").is_file():
        raise DataNotFoundError(f"no local Minari dataset {str(dataset)!r} (looked in {data}); download it with "
                                f"`minari download {dataset}` or give the dataset's folder.")
    return data, str(dataset)


def _row_bytes(space: Any) -> int:
    from gymnasium import spaces

    if isinstance(space, spaces.Dict):
        return sum(_row_bytes(s) for s in space.spaces.values())
    if isinstance(space, spaces.Tuple):
        return sum(_row_bytes(s) for s in space.spaces)
    if isinstance(space, spaces.Text):
        return 4 * space.max_length
    itemsize = 8 if isinstance(space, spaces.Discrete) else np.dtype(space.dtype).itemsize
    return int(np.prod(space.shape, dtype=np.int64)) * itemsize


def _at(value: Any, t: int) -> Any:
    if isinstance(value, dict):
        return {k: _at(v, t) for k, v in value.items()}
    if isinstance(value, tuple | list) and not isinstance(value, np.ndarray) and value and not isinstance(value[0], str):
        return tuple(_at(v, t) for v in value)
    return value[t]


def _infos(infos: Any, rows: int) -> dict[str, np.ndarray]:
    """The top-level info arrays with one entry per row (nested dicts and odd shapes are left out)."""
    out = {}
    for key, value in (infos or {}).items():
        if isinstance(value, dict):
            continue
        arr = np.asarray(value)
        if arr.ndim >= 1 and len(arr) == rows and arr.dtype.kind in "biuf":
            out[str(key)] = arr
    return out


def _env(meta: dict[str, Any]) -> tuple[str | None, dict[str, Any]]:
    """``(env_id, env_settings)`` from the dataset's ``env_spec``, read as plain JSON (never made)."""
    raw = meta.get("env_spec")
    if not isinstance(raw, str):
        return None, {}
    try:
        spec = json.loads(raw)
    except json.JSONDecodeError:
        return None, {}
    if not isinstance(spec, dict) or not isinstance(spec.get("id"), str):
        return None, {}
    kwargs = spec.get("kwargs") if isinstance(spec.get("kwargs"), dict) else {}
    if isinstance(spec.get("max_episode_steps"), int) and trajarena_id_of(spec["id"]) is None:
        kwargs = {**kwargs, "max_episode_steps": spec["max_episode_steps"]}
    return trajarena_id_of(spec["id"]) or spec["id"], kwargs


def import_minari(dataset: str | os.PathLike, out: str | os.PathLike, *, username: str | None = None,
                  overwrite: bool = False, max_episode_bytes: int = 4 << 30,
                  progress: Progress | None = None) -> ConversionSummary:
    """Convert a Minari dataset into trajectory files in ``out``.

    Args:
        dataset: a local Minari dataset id (``"D4RL/door/human-v2"``) or a dataset folder.
        out: the folder for the trajectory files (created if missing).
        username: stored as who played (default: the dataset's author).
        overwrite: replace the ``*.arrow`` files ``out`` already holds (else an error).
        max_episode_bytes: refuse an episode larger than this once decoded (checked on headers first).
        progress: ``progress(done, total)`` after each episode.

    Raises:
        MissingDependencyError: Minari is not installed (``pip install 'trajarena[minari]'``).
        DataNotFoundError: no such dataset.
        FormatError: the dataset is malformed or hostile: absurd declared sizes, values that do not
            fit its spaces, missing spaces, unreadable storage (the message names the episode).
        OutputExistsError: ``out`` holds trajectory files and ``overwrite`` is False.

    A failed import removes the files it wrote: either the whole dataset is imported, or nothing.
    """
    minari = require("minari", "minari", "Importing from Minari")
    require("PIL", "minari", "Minari's storage")
    if isinstance(max_episode_bytes, bool) or not isinstance(max_episode_bytes, int) or max_episode_bytes < 1:
        raise SettingsError(f"max_episode_bytes must be an integer >= 1, got {max_episode_bytes!r}.")
    timer = Timer()
    data_path, name = resolve_dataset(dataset)
    meta = read_metadata(data_path)
    if meta.get("data_format", "hdf5") == "hdf5":
        require("h5py", "minari", "Reading Minari's HDF5 storage")
    try:
        ds = minari.MinariDataset(data_path)
        obs_space, act_space = ds.observation_space, ds.action_space
        check_storage(data_path, meta, max_episode_bytes, _row_bytes(obs_space) + _row_bytes(act_space))
        seeds = [m.get("seed") for m in ds.storage.get_episode_metadata(range(ds.total_episodes))]
    except TrajArenaError:
        raise
    except _READ_ERRORS as exc:
        raise FormatError(f"the Minari dataset {name!r} cannot be read ({type(exc).__name__}: {exc}).") from exc
    folder = prepare_folder(out, overwrite, ".arrow")
    env_id, env_settings = _env(meta)
    authors = meta.get("author")
    who = username if username is not None else ", ".join(map(str, authors)) if isinstance(authors, list) else str(authors or "")
    info = {"env_id": env_id, "env_settings": env_settings, "wrappers_settings": {}, "username": who,
            "ignore_p1": 0, "ignore_p2": 0, "players": {},
            "source": {"minari": {"dataset_id": str(meta.get("dataset_id", name)),
                                  "minari_version": str(meta.get("minari_version", "")),
                                  "data_format": str(meta.get("data_format", "hdf5"))}}}
    writer = TrajectoryWriter(folder, obs_space, act_space, json.loads(json.dumps(info, default=str)), prefix="minari-")
    total = len(seeds)
    done = steps = 0
    try:
        episodes = ds.iterate_episodes()
        for i in range(total):
            where = f"{name} episode {i}"
            try:
                ep = next(episodes)
            except TrajArenaError:
                raise
            except (*_READ_ERRORS, StopIteration) as exc:
                raise FormatError(f"{where} cannot be read ({type(exc).__name__}: {exc}).") from exc
            n = check_episode(ep, obs_space, act_space, where)
            infos = _infos(ep.infos, n + 1)
            seed = seeds[i]
            writer.reset(_at(ep.observations, 0), {k: v[0] for k, v in infos.items()},
                         seed=int(seed) if isinstance(seed, int | np.integer) else None)
            for t in range(n):
                writer.step(_at(ep.actions, t), _at(ep.observations, t + 1), float(ep.rewards[t]),
                            bool(ep.terminations[t]), bool(ep.truncations[t]), {k: v[t + 1] for k, v in infos.items()})
            done, steps = done + 1, steps + n
            report(progress, done, total)
    except BaseException:
        writer.discard()
        writer.close()
        for path in writer.files:  # a failed import leaves nothing behind
            Path(path).unlink(missing_ok=True)
        raise
    writer.close()
    files = tuple(str(p) for p in writer.files)
    return ConversionSummary("import minari", str(folder), files, done, steps, total_bytes(files), timer.seconds,
                             {"dataset_id": str(meta.get("dataset_id", name)), "env_id": env_id})
