"""Export trajectory files as a Minari dataset that ``minari.load_dataset`` reads and ``recover_environment`` rebuilds.

The episodes are read through the raw replay (:class:`~trajarena.replay.raw.ReplayEnv`), so a
Minari episode is exactly what the loader replays: one-player files as recorded; two-player files
from the ``perspective`` asked, as ``ImitationLearning`` does — ``"P1"`` agent_0's view,
``"P2"`` agent_1's view (``P1``/``P2`` observation keys exchanged, the reward negated, agent_1's
action), ``"both"`` (the default) the two views one after the other, each side the file marks as
``ignore_p1``/``ignore_p2`` left out, or ``"joint"`` (the two-player stream, ``Dict`` actions).

The dataset's environment is the recorded one with its settings, as a Gymnasium spec, so
``dataset.recover_environment()`` makes it: ``CartPole-v1``, ``ALE/Boxing-v5`` (its kwargs
included), the built-in game as ``trajarena/Duel-v0``. A view of a two-player recording is a
one-player env: its spec is the one-player duel with that agent's side, fighter and action space
(the same spaces as the data), against the CPU. An env id Gymnasium does not know gets no spec
(``recover_environment`` then raises Minari's error).

Observations are stored losslessly by default (``jpeg=False``; Minari's own default JPEG-encodes
images). The recorded info keys present on every step are stored as Minari infos.
"""

from __future__ import annotations

import dataclasses
import os
import warnings
from collections.abc import Mapping, Sequence
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces
from gymnasium.envs.registration import EnvSpec

from trajarena.envs.registration import spec_for, trajarena_id_of
from trajarena.errors import OutputExistsError, SettingsError, require
from trajarena.interop.minari.checks import check_minari_home
from trajarena.interop.summary import ConversionSummary, Progress, Timer, report, total_bytes
from trajarena.replay.raw import PERSPECTIVES, ReplayEnv
from trajarena.settings import EnvironmentSettings

__all__ = ["DATA_FORMATS", "env_spec_of", "export_minari", "stack"]

#: Minari storages the exporter writes.
DATA_FORMATS = ("hdf5", "arrow")
#: Episodes are handed to Minari in batches of about this many bytes (memory stays bounded).
BATCH_BYTES = 256 << 20


def stack(space: spaces.Space, values: Sequence[Any]) -> Any:
    """Stack per-step nested values into per-leaf arrays with a first step axis.

    >>> stack(spaces.Dict(a=spaces.Discrete(3)), [{"a": 1}, {"a": 2}])
    {'a': array([1, 2])}
    """
    if isinstance(space, spaces.Dict):
        return {k: stack(s, [v[k] for v in values]) for k, s in space.spaces.items()}
    if isinstance(space, spaces.Tuple):
        return tuple(stack(s, [v[i] for v in values]) for i, s in enumerate(space.spaces))
    if isinstance(space, spaces.Text):
        return [str(v) for v in values]
    dtype = np.int64 if isinstance(space, spaces.Discrete) else space.dtype
    return np.stack([np.asarray(v, dtype=dtype) for v in values])


def _one_player_view(settings: Mapping[str, Any], view: int | None) -> dict[str, Any]:
    """The one-player duel settings of agent ``view``'s side of a two-player recording (None: both views)."""
    s = EnvironmentSettings.from_dict(settings)
    side = s.role[0] or ("P2" if s.role[1] == "P1" else "P1")  # agent_0's side; a view swaps agent_1's data there

    def pick(key: str) -> Any:
        a, b = s.player(key, 0), s.player(key, 1)
        return (a, b)[view] if view is not None else (a if a == b else None)

    out = s.to_dict()
    out.update(n_players=1, role=side, characters=pick("characters"), outfits=pick("outfits") or 1,
               action_space=pick("action_space"))
    return EnvironmentSettings.from_dict(out).to_dict()


def env_spec_of(meta: Mapping[str, Any], perspective: str = "both", two_player: bool = False) -> EnvSpec | None:
    """The Gymnasium spec of the env a file was recorded in, as seen from ``perspective`` (None if unknown).

    >>> spec = env_spec_of({"env_id": "CartPole-v1", "env_settings": {"max_episode_steps": 50}})
    >>> spec.id, spec.max_episode_steps
    ('CartPole-v1', 50)
    >>> env_spec_of({"env_id": "duel", "env_settings": {"n_players": 2}}, "P2", True).kwargs["n_players"]
    1
    """
    env_id, settings = meta.get("env_id"), dict(meta.get("env_settings") or {})
    if not isinstance(env_id, str):
        return None
    if trajarena_id_of(env_id) == "duel":
        if two_player and perspective != "joint":
            settings = _one_player_view(settings, {"P1": 0, "P2": 1}.get(perspective))
        return spec_for("duel", settings)
    if env_id.startswith("ALE/") and env_id not in gym.registry:
        try:
            import ale_py
        except ImportError:
            return None
        gym.register_envs(ale_py)
    try:
        spec = gym.spec(env_id)
    except gym.error.Error:
        return None
    fields = {k: settings.pop(k) for k in ("max_episode_steps", "disable_env_checker", "order_enforce")
              if k in settings}
    return dataclasses.replace(spec, kwargs={**spec.kwargs, **settings}, **fields)


def _dataset_path(minari: Any, dataset_id: str) -> Any:
    from minari.dataset.minari_dataset import parse_dataset_id
    from minari.storage.datasets_root_dir import get_dataset_path

    check_minari_home()
    if not isinstance(dataset_id, str) or not dataset_id or ".." in dataset_id.split("/"):
        raise SettingsError(f"a Minari dataset id is a string like 'trajarena/duel/expert-v0', got {dataset_id!r}.")
    try:
        parse_dataset_id(dataset_id)
    except (ValueError, AttributeError, AssertionError) as exc:
        raise SettingsError(f"{dataset_id!r} is not a Minari dataset id ((namespace/)(env_name/)name-v<N>, "
                            f"e.g. 'trajarena/duel/expert-v0'): {exc}") from exc
    return get_dataset_path(dataset_id)


def _complete_info_keys(replay: ReplayEnv) -> list[str]:
    """The recorded info keys present on every row of every file (Minari wants the same keys every step)."""
    data = replay.dataset
    if data is None:
        return []
    return [k for k in data.info_keys if bool(np.all(data.column(f"present/info/{k}")))]


def _episodes(replay: ReplayEnv, info_keys: list[str]) -> Any:
    """Yield ``(seed, observations, actions, rewards, terminations, truncations, infos)`` per replay unit."""
    data = replay.dataset
    for _ in range(replay.n_units):
        obs, info = replay.reset()
        episode = data.episodes[info["episode"]]
        seed = episode.meta.get("seed")
        observations, infos = [obs], [info]
        actions, rewards, terms, truncs = [], [], [], []
        done = False
        while not done:
            obs, reward, terminated, truncated, info = replay.step(None)
            observations.append(obs)
            actions.append(info["action"])
            rewards.append(reward)
            terms.append(terminated)
            truncs.append(truncated)
            infos.append(info)
            done = terminated or truncated
        yield (seed if isinstance(seed, int) else None, observations, actions, np.asarray(rewards, np.float64),
               np.asarray(terms, bool), np.asarray(truncs, bool),
               {k: _info_column([i[k] for i in infos]) for k in info_keys} or None)


def _info_column(values: list[Any]) -> Any:
    """One info key over an episode: an array, or a list for scalars (Minari's Arrow storage cannot
    decode 1-D info arrays: it writes their empty shape and fails to read it back)."""
    arr = np.asarray(values)
    return arr.tolist() if arr.ndim == 1 else arr


def export_minari(paths: str | os.PathLike | Sequence[str | os.PathLike], dataset_id: str, *,
                  perspective: str = "both", data_format: str = "hdf5", jpeg: bool = False,
                  author: str | None = None, author_email: str | None = None, code_permalink: str | None = None,
                  algorithm_name: str | None = None, description: str | None = None, overwrite: bool = False,
                  progress: Progress | None = None) -> ConversionSummary:
    """Write recordings as a local Minari dataset (under ``MINARI_DATASETS_PATH``, else ``~/.minari``).

    Args:
        paths: trajectory files and/or folders.
        dataset_id: the Minari id, ``(namespace/)(env_name/)name-v<N>``.
        perspective: for two-player files, ``"both"``, ``"P1"``, ``"P2"`` or ``"joint"`` (module docstring).
        data_format: Minari's storage, ``"hdf5"`` (its default) or ``"arrow"``.
        jpeg: let Minari JPEG-encode image observations (lossy, smaller); lossless by default.
        author, author_email, code_permalink, algorithm_name, description: Minari's metadata
            (author defaults to the files' username, the others to what the files say).
        overwrite: delete a local dataset of that id first (else an error).
        progress: ``progress(done, total)`` after each episode.

    Returns:
        What was written; ``extra`` holds the dataset id and whether an env spec was stored.

    Raises:
        MissingDependencyError: Minari is not installed (``pip install 'trajarena[minari]'``).
        OutputExistsError: the dataset exists and ``overwrite`` is False.
        SettingsError: a bad id, perspective or data format, or nothing to export.
    """
    minari = require("minari", "minari", "Exporting to Minari")
    require("PIL", "minari", "Minari's storage")
    if data_format not in DATA_FORMATS:
        raise SettingsError(f"data_format must be one of {DATA_FORMATS}, got {data_format!r}.")
    if perspective not in PERSPECTIVES:
        raise SettingsError(f"perspective must be one of {PERSPECTIVES}, got {perspective!r}.")
    if data_format == "hdf5":
        require("h5py", "minari", "Minari's HDF5 storage")
    timer = Timer()
    target = _dataset_path(minari, dataset_id)
    replay = ReplayEnv(paths, perspective=perspective)
    try:
        if replay.n_units == 0:
            raise SettingsError(f"nothing to export with perspective={perspective!r}: every file ignores that side.")
        if target.exists():
            if not overwrite:
                raise OutputExistsError(f"the Minari dataset {dataset_id!r} already exists at {target}; "
                                        "choose another id or pass overwrite=True (--overwrite).")
            minari.delete_dataset(dataset_id)
        meta = replay.file_metadata[0]
        spec = env_spec_of(meta, perspective, replay.two_player)
        info_keys = _complete_info_keys(replay)
        dataset, batch, size, steps = None, [], 0, 0
        options = dict(env=spec, eval_env=spec, algorithm_name=algorithm_name or _algorithm(meta),
                       author=author or meta.get("username") or None, author_email=author_email,
                       code_permalink=code_permalink, description=description or _description(replay, perspective),
                       observation_space=replay.observation_space, action_space=replay.action_space,
                       data_format=data_format, jpeg_encoding=bool(jpeg),
                       requirements=["trajarena"] if trajarena_id_of(str(meta.get("env_id"))) else None)
        for done, (seed, obs, acts, rewards, terms, truncs, infos) in enumerate(_episodes(replay, info_keys), 1):
            buffer = minari.data_collector.EpisodeBuffer(
                seed=seed, observations=stack(replay.observation_space, obs), actions=stack(replay.action_space, acts),
                rewards=rewards, terminations=terms, truncations=truncs, infos=infos)
            batch.append(buffer)
            size += sum(np.asarray(leaf).nbytes for leaf in _leaves(buffer.observations))
            steps += len(rewards)
            if size >= BATCH_BYTES:
                dataset = _flush(minari, dataset, dataset_id, batch, options)
                batch, size = [], 0
            report(progress, done, replay.n_units)
        if batch:
            dataset = _flush(minari, dataset, dataset_id, batch, options)
    finally:
        replay.close()
    files = (str(target),)
    return ConversionSummary("minari", dataset_id, files, replay.n_units, steps, total_bytes(files), timer.seconds,
                             {"dataset_id": dataset_id, "path": str(target), "perspective": perspective,
                              "env_spec": None if spec is None else spec.id})


def _leaves(value: Any) -> Any:
    if isinstance(value, dict):
        for v in value.values():
            yield from _leaves(v)
    elif isinstance(value, tuple):
        for v in value:
            yield from _leaves(v)
    else:
        yield value


def _flush(minari: Any, dataset: Any, dataset_id: str, batch: list[Any], options: dict[str, Any]) -> Any:
    """Create the dataset with the first batch, then append the next ones."""
    if dataset is not None:
        dataset.update_dataset_from_buffer(batch)
        return dataset
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*is set to None.*", category=UserWarning)
        warnings.filterwarnings("ignore", message="env_spec is None.*", category=UserWarning)
        return minari.create_dataset_from_buffers(dataset_id, batch, **options)


def _algorithm(meta: Mapping[str, Any]) -> str:
    players = meta.get("players") or {}
    who = ", ".join(f"{k}={v}" for k, v in players.items()) if isinstance(players, Mapping) else str(players)
    return f"trajarena recording ({who})" if who else "trajarena recording"


def _description(replay: ReplayEnv, perspective: str) -> str:
    meta = replay.file_metadata[0]
    from trajarena import __version__

    view = f", {perspective} perspective of a two-player recording" if replay.two_player else ""
    return (f"Exported by trajarena {__version__} from {len(replay.all_files)} trajectory file(s) of "
            f"{meta.get('env_id')} recorded by {meta.get('username') or 'unknown'}{view}. Env settings: "
            f"{meta.get('env_settings')}; wrappers settings (not applied: raw stream): {meta.get('wrappers_settings')}.")
