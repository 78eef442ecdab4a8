"""``make()``: one call for the built-in game, any Gymnasium id, settings, wrappers and recording.

>>> import trajarena as arena
>>> env = arena.make("duel", {"difficulty": 3, "frame_shape": (64, 64, 1)}, {"stack_frames": 2})
>>> env.observation_space["frame"].shape
(64, 64, 2)
>>> env.close()
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import gymnasium as gym

from trajarena.envs.registration import spec_for, trajarena_id_of
from trajarena import dialects
from trajarena.envs.diambra import DIAMBRA_GAMES, is_diambra_game
from trajarena.errors import MissingDependencyError, SettingsError, UnknownEnvError, close_matches
from trajarena.settings import EnvironmentSettings, RecordingSettings, WrappersSettings

__all__ = ["make", "register", "registered_ids", "raw_env"]

# trajarena's own env ids -> (factory(settings, render_mode) -> env, settings class)
_REGISTRY: dict[str, tuple[Callable[..., gym.Env], type]] = {}


def register(env_id: str, factory: Callable[..., gym.Env], settings_cls: type = EnvironmentSettings) -> None:
    """Register a trajarena env id (``factory(settings, render_mode=...)`` builds the raw env)."""
    _REGISTRY[env_id] = (factory, settings_cls)


def registered_ids() -> list[str]:
    """The env ids trajarena builds itself (Gymnasium ids work too)."""
    return sorted(_REGISTRY)


def _make_duel(settings: EnvironmentSettings, render_mode: str | None = None) -> gym.Env:
    from trajarena.envs.duel import DuelEnv

    return DuelEnv(settings, render_mode=render_mode)


register("duel", _make_duel)


def _ensure_gym_id(env_id: str) -> None:
    """Register optional env families (ALE) on demand, or explain what is missing."""
    if env_id in gym.registry:
        return
    if env_id.startswith("ALE/"):
        try:
            import ale_py
        except ImportError as exc:
            raise MissingDependencyError(
                f"{env_id!r} needs ale-py, which is not installed. Install it with: pip install 'trajarena[atari]'"
            ) from exc
        gym.register_envs(ale_py)
        if env_id in gym.registry:
            return
    known = registered_ids() + list(DIAMBRA_GAMES) + list(gym.registry)
    raise UnknownEnvError(
        f"unknown env id {env_id!r}.{close_matches(env_id, known)} trajarena builds {', '.join(registered_ids())}; "
        "any registered Gymnasium id works too (e.g. 'CartPole-v1', 'ALE/Boxing-v5' with the [atari] extra), and "
        f"DIAMBRA Arena's games with the [diambra] extra ({', '.join(DIAMBRA_GAMES)})."
    )


def raw_env(env_id: str, settings: Any = None, render_mode: str | None = None) -> tuple[gym.Env, dict[str, Any]]:
    """Build the unwrapped env and return it with its settings as a JSON-ready dict."""
    if not isinstance(env_id, str):
        raise UnknownEnvError(f"env_id must be a string such as 'duel' or 'CartPole-v1', got {env_id!r}.")
    env_id = trajarena_id_of(env_id) or env_id  # "trajarena/Duel-v0" is "duel"
    if env_id in _REGISTRY:
        factory, settings_cls = _REGISTRY[env_id]
        parsed = settings_cls.from_dict(settings)
        env, settings_dict = factory(parsed, render_mode=render_mode), parsed.to_dict()
        if env.unwrapped.spec is None:  # gym.make(env.unwrapped.spec) rebuilds it (Minari's recover_environment)
            env.unwrapped.spec = spec_for(env_id, settings_dict)
        return env, settings_dict
    if is_diambra_game(env_id):
        from trajarena.envs.diambra import make_diambra

        return make_diambra(env_id, settings, render_mode=render_mode)
    _ensure_gym_id(env_id)
    if settings is None:
        kwargs: dict[str, Any] = {}
    elif isinstance(settings, Mapping):
        kwargs = dict(settings)
    else:
        raise SettingsError(
            f"settings for the Gymnasium env {env_id!r} must be a dict of gym.make keyword arguments, "
            f"got {type(settings).__name__}."
        )
    try:
        env = gym.make(env_id, render_mode=render_mode, **kwargs)
    except TypeError as exc:
        raise SettingsError(f"bad settings {kwargs!r} for the Gymnasium env {env_id!r}: {exc}") from exc
    return env, kwargs


def make(
    env_id: str,
    settings: Any = None,
    wrappers_settings: Any = None,
    traj_rec_settings: Any = None,
    render_mode: str | None = None,
) -> gym.Env:
    """Make an env, optionally recording its raw stream and wrapping it (DIAMBRA's ``arena.make``).

    Settings may use DIAMBRA Arena's names and values (v2.1 and v2.2) and be DIAMBRA's settings
    dataclasses; they are stored in trajarena's names (see :mod:`trajarena.dialects`).

    Args:
        env_id: ``"duel"`` (built in; also ``"trajarena/Duel-v0"``), any Gymnasium id (``"CartPole-v1"``,
            ``"ALE/Boxing-v5"``) or a DIAMBRA Arena game (``"doapp"``, ``"sfiii3n"``...: the ``diambra``
            extra and its engine). The env carries a Gymnasium spec (``env.spec``). A PettingZoo parallel
            env, or a PettingZoo registry id as ``"pettingzoo/classic/rps-v2"``, gives the PettingZoo env,
            recorded per agent when ``traj_rec_settings`` is given (:mod:`trajarena.envs.pettingzoo`).
        settings: ``EnvironmentSettings`` or a dict of them for ``duel`` and DIAMBRA games; for a
            Gymnasium id, a dict of ``gym.make`` keyword arguments.
        wrappers_settings: ``WrappersSettings`` or a dict; applied on top of the recorder.
        traj_rec_settings: ``RecordingSettings`` or a dict (``username``, ``file_path``, ``ignore_p1``/``ignore_p2``…):
            records the raw env stream, below the wrappers, with the wrappers settings in the file.
        render_mode: ``None``, ``"rgb_array"`` or ``"human"``.

    Raises:
        UnknownEnvError: the id is neither trajarena's nor registered with Gymnasium.
        SettingsError: an unknown setting or a bad value (the message names it and the valid ones).
    """
    if hasattr(env_id, "possible_agents") or isinstance(env_id, str) and env_id.startswith("pettingzoo/"):
        from trajarena.envs.pettingzoo import make_parallel

        return make_parallel(env_id, settings, wrappers_settings, traj_rec_settings, render_mode)
    if isinstance(env_id, str):
        env_id = trajarena_id_of(env_id) or env_id  # files store "duel" for "trajarena/Duel-v0"
    translate = isinstance(env_id, str) and (is_diambra_game(env_id) or (
        env_id in _REGISTRY and getattr(_REGISTRY[env_id][1], "_dialect", "") == "env"))
    game = "diambra" if isinstance(env_id, str) and is_diambra_game(env_id) else "duel"
    env_settings, wrappers_dict, recording_dict = dialects.canonical_all(
        settings if translate else None, wrappers_settings, traj_rec_settings, game=game)
    wrappers = WrappersSettings.from_dict(wrappers_dict)
    recording = None if recording_dict is None else RecordingSettings.from_dict(recording_dict)
    env, settings_dict = raw_env(env_id, env_settings if translate else settings, render_mode=render_mode)
    if recording is not None:
        from trajarena.recording.recorder import TrajectoryRecorder

        env = TrajectoryRecorder.from_settings(env, recording, env_id=env_id, env_settings=settings_dict,
                                               wrappers_settings=wrappers.to_dict())
    from trajarena.wrappers import apply_wrappers

    try:
        return apply_wrappers(env, wrappers)
    except BaseException:
        env.close()  # a wrapper that does not fit this env: stop the recorder's thread and the env
        raise
