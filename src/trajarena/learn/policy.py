"""Behavioural-cloning policies: the trained policy, its safe file format, and the policy agent.

Owns :class:`BCPolicy` (network + encoder + metadata; create, predict, save, load, ``make_env``),
:func:`load_policy`, and :class:`PolicyAgent` (a policy behind the agents' ``act``/``reset``
protocol, adapting foreign observations with the policy's wrappers). What a policy sees and
computes (:class:`ObsEncoder`, :func:`action_heads`, the network) is :mod:`trajarena.learn.network`'s,
re-exported here; training lives in :mod:`trajarena.learn.bc` (:func:`~trajarena.learn.bc.train_bc`),
which re-exports these names.

A saved policy is ``torch.save`` of a plain dict: ``{"state_dict": tensors, "meta_json": a JSON string}``;
it is loaded with ``torch.load(weights_only=True)``, so opening a policy never runs code. The metadata
records what the policy was trained on (files with their sizes and sha256, spaces, env id, env settings,
wrappers settings) and how to encode observations.

>>> import numpy as np
>>> from gymnasium import spaces
>>> policy = BCPolicy.create(spaces.Box(-1.0, 1.0, (4,), np.float32), spaces.Discrete(2), seed=0)
>>> policy.meta["format"], policy.meta["version"], policy.meta["action_heads"]["nvec"]
('trajarena-bc-policy', 1, [2])
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from trajarena.errors import FormatError, NotSupportedError, SettingsError
from trajarena.fighting import mirror_action, mirror_observation
from trajarena.format.spaces import space_from_json
from trajarena.learn.network import (  # noqa: F401 - _torch kept importable from here for trajarena.learn.bc
    ARCHS,
    ObsEncoder,
    _torch,
    action_heads,
    build_net,
    stack_obs,
    torch_threads,
)

__all__ = [
    "ARCHS",
    "BCPolicy",
    "ObsEncoder",
    "PolicyAgent",
    "action_heads",
    "load_policy",
    "load_policy_agent",
    "stack_obs",
    "torch_threads",
]

POLICY_FORMAT = "trajarena-bc-policy"
POLICY_VERSION = 1


class BCPolicy:
    """A trained behavioural-cloning policy: the network, its observation encoder and its metadata.

    Args:
        net: the torch module (from :func:`~trajarena.learn.bc.train_bc` or :meth:`load`).
        meta: JSON-able metadata (spaces, settings, training files, encoder, action heads).

    >>> import numpy as np
    >>> from gymnasium import spaces
    >>> policy = BCPolicy.create(spaces.Box(-1.0, 1.0, (4,), np.float32), spaces.Discrete(2), seed=0)
    >>> policy.predict(np.zeros(4, np.float32)) in (0, 1)
    True
    """

    def __init__(self, net: Any, meta: dict[str, Any]):
        self.net = net.eval()
        self.meta = meta
        self.encoder = ObsEncoder.from_json(meta["encoder"])
        self.nvec = list(meta["action_heads"]["nvec"])
        self.start = list(meta["action_heads"]["start"])
        self.discrete = meta["action_heads"]["discrete"]

    @classmethod
    def create(cls, observation_space: spaces.Space, action_space: spaces.Space, seed: int = 0,
               meta: Mapping[str, Any] | None = None, arch: str = "nature") -> BCPolicy:
        """A freshly initialised policy for these spaces (seeded, without touching torch's global RNG)."""
        torch = _torch()
        if arch not in ARCHS:
            raise SettingsError(f"arch must be one of {', '.join(ARCHS)}, got {arch!r}.")
        encoder = ObsEncoder.from_space(observation_space)
        nvec, start = action_heads(action_space)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            net = build_net(encoder.image_shape, encoder.vector_dim, nvec, arch=arch)
        full = {"format": POLICY_FORMAT, "version": POLICY_VERSION, **(meta or {}), "arch": arch,
                "encoder": encoder.to_json(),
                "action_heads": {"nvec": nvec, "start": start, "discrete": isinstance(action_space, spaces.Discrete)}}
        from trajarena.format.spaces import space_to_json

        full.setdefault("observation_space", space_to_json(observation_space))
        full.setdefault("action_space", space_to_json(action_space))
        return cls(net, json.loads(json.dumps(full)))

    def logits(self, image: np.ndarray | None, vector: np.ndarray) -> list:
        torch = _torch()
        img = None if image is None else torch.from_numpy(np.ascontiguousarray(image))
        return self.net(img, torch.from_numpy(vector))

    def predict_batch(self, obs: Any) -> np.ndarray:
        """Greedy actions (N, n_heads) for a batched observation, as head indices plus start offsets."""
        torch = _torch()
        with torch.no_grad():
            out = self.logits(*self.encoder.encode(obs))
        idx = np.stack([o.argmax(dim=1).numpy() for o in out], axis=1)
        return idx + np.asarray(self.start)

    def predict(self, obs: Any) -> Any:
        """The greedy action for one observation, in the env's action format (one torch thread)."""
        with torch_threads(1):
            act = self.predict_batch(stack_obs([obs]))[0]
        return int(act[0]) if self.discrete else act.astype(np.int64)

    def save(self, path: str | Path) -> Path:
        """Save as ``{"state_dict", "meta"}`` (tensors + plain JSON data; no pickled code)."""
        torch = _torch()
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".tmp")
        torch.save({"state_dict": self.net.state_dict(), "meta_json": json.dumps(self.meta)}, tmp)
        tmp.replace(path)
        return path

    @classmethod
    def load(cls, path: str | Path) -> BCPolicy:
        """Load a saved policy with ``torch.load(weights_only=True)``.

        Raises:
            FileNotFoundError: ``path`` does not exist.
            FormatError: the file is not a trajarena BC policy (not a torch file, no metadata, metadata
                of another format or a newer version, or weights that do not fit the recorded network).
        """
        torch = _torch()
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"No policy file at {path}; train one with `trajarena train-bc` (train_bc() in Python).")
        try:
            try:
                blob = torch.load(path, map_location="cpu", weights_only=True)
            except Exception as exc:  # pickle, zip and torch errors alike: not a weights-only torch file
                raise _NotPolicy(f"torch.load(weights_only=True) cannot read it ({type(exc).__name__}); "
                                 "a policy file holds only tensors and plain data") from exc
            if not isinstance(blob, Mapping) or "meta_json" not in blob or "state_dict" not in blob:
                raise _NotPolicy(f"expected a dict with 'state_dict' and 'meta_json', got {_describe(blob)}")
            meta = json.loads(blob["meta_json"])
            if not isinstance(meta, dict):
                raise _NotPolicy(f"the metadata must be a JSON object, got {type(meta).__name__}")
            if meta.get("format") != POLICY_FORMAT or not isinstance(meta.get("version"), int) \
                    or meta["version"] > POLICY_VERSION:
                raise _NotPolicy(f"expected format {POLICY_FORMAT!r} version <= {POLICY_VERSION}, got format "
                                 f"{meta.get('format')!r} version {meta.get('version')!r}")
            for key in ("encoder", "action_heads"):
                if key not in meta:
                    raise _NotPolicy(f"the metadata has no {key!r} entry")
            _check_wrappers_settings(meta.get("wrappers_settings") or {})
            enc = ObsEncoder.from_json(meta["encoder"])
            net = build_net(enc.image_shape, enc.vector_dim, meta["action_heads"]["nvec"],
                             arch=meta.get("arch", "nature"))
            try:
                net.load_state_dict(blob["state_dict"])
            except Exception as exc:
                detail = next((ln.strip() for ln in str(exc).splitlines()[1:] if ln.strip()), "")
                raise _NotPolicy("its weights do not fit the network its metadata describes "
                                 f"({_clip(detail) or _first_line(exc)})") from exc
            return cls(net, meta)
        except _NotPolicy as exc:
            why = str(exc)
            cause = exc.__cause__
        except Exception as exc:  # noqa: BLE001 - any malformed content is a format problem of this file
            why, cause = _first_line(exc), exc
        raise FormatError(f"{path} is not a trajarena BC policy file: {why}. "
                          "Make one with `trajarena train-bc` (train_bc() in Python).") from cause

    def make_env(self, render_mode: str | None = None, wrappers: Sequence[type] = (),
                 **settings_overrides: Any) -> gym.Env:
        """An env made with the env id, env settings and wrappers settings the policy was trained on.

        User wrappers the policy names are re-applied only from ``wrappers`` (classes given in code).
        """
        from trajarena.envs.make import make

        settings = dict(self.meta.get("env_settings") or {})
        settings.update(settings_overrides)
        env_id = self.meta.get("env_id") or "duel"
        if env_id == "duel" and "seed" not in settings_overrides:
            settings.pop("seed", None)  # evaluation seeds come from reset(seed=...)
        from trajarena.settings import WrappersSettings

        stored = WrappersSettings.from_json(self.meta.get("wrappers_settings") or {}, wrappers)
        return make(env_id, settings or None, stored, render_mode=render_mode)

    def __repr__(self) -> str:
        return (f"BCPolicy(env_id={self.meta.get('env_id')!r}, image={self.encoder.image_shape}, "
                f"vector_dim={self.encoder.vector_dim}, heads={self.nvec})")


def _check_wrappers_settings(stored: Any) -> None:
    """Validate a policy's stored wrappers settings as data (its user wrappers stay names: nothing is imported)."""
    import warnings

    from trajarena.errors import WrapperNotAppliedWarning
    from trajarena.settings import WrappersSettings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", WrapperNotAppliedWarning)
        try:
            WrappersSettings.from_json(stored)
        except SettingsError as exc:
            raise _NotPolicy(f"its stored wrappers settings are not valid ({exc})") from exc


class _NotPolicy(Exception):
    """Internal: a reason why a file is not a policy file (turned into :class:`FormatError`)."""


def _clip(text: str, limit: int = 160) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _first_line(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    line = _clip(lines[0]) if lines else ""
    return f"{type(exc).__name__}: {line}" if line else type(exc).__name__


def _describe(obj: Any) -> str:
    if isinstance(obj, Mapping):
        return f"a dict with keys {sorted(map(str, obj))[:6]}"
    return f"a {type(obj).__module__}.{type(obj).__qualname__}".replace("builtins.", "")


def load_policy(path: str | Path) -> BCPolicy:
    """Load a policy saved by :func:`~trajarena.learn.bc.train_bc` (``torch.load(weights_only=True)``)."""
    return BCPolicy.load(path)


def _swap_sides(obs: Any) -> Any:
    if isinstance(obs, Mapping) and "P1" in obs and "P2" in obs:
        return {**obs, "P1": obs["P2"], "P2": obs["P1"]}
    return obs


class _Feed(gym.Env):
    """A stand-in env that returns the observation it is given: lets wrappers process a foreign stream."""

    def __init__(self, observation_space: spaces.Space, action_space: spaces.Space) -> None:
        self.observation_space, self.action_space = observation_space, action_space
        self.obs: Any = None
        self.info: dict[str, Any] = {}

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[Any, dict]:
        return self.obs, dict(self.info)

    def step(self, action: Any) -> tuple[Any, float, bool, bool, dict]:
        return self.obs, 0.0, False, False, dict(self.info)


def _adapter(policy: BCPolicy, space: spaces.Space | None, wrappers: Sequence[type]) -> gym.Env | None:
    """Wrappers that turn ``space``'s raw observations into the policy's (None when they already match)."""
    from trajarena.settings import WrappersSettings
    from trajarena.wrappers import apply_wrappers

    want = space_from_json(policy.meta["observation_space"])
    if space is None or space == want:
        return None
    settings = WrappersSettings.from_json(policy.meta.get("wrappers_settings") or {}, wrappers)
    source_shape = tuple((policy.meta.get("env_settings") or {}).get("frame_shape") or (0, 0, 0))
    if settings.frame_shape == (0, 0, 0) and source_shape != (0, 0, 0):
        settings = settings.replace(frame_shape=source_shape)  # the policy's env resized at the source
    env = apply_wrappers(_Feed(space, space_from_json(policy.meta["action_space"])), settings)
    if env.observation_space != want:
        raise NotSupportedError(
            f"this env's observations {space} cannot be turned into the policy's {want} with its wrappers "
            f"settings; play the policy in policy.make_env() or an env made with its env_settings.")
    return env


class PolicyAgent:
    """A saved BC policy behind the agents' ``act(obs, info)`` / ``reset(seed)`` protocol.

    In a two-player env the agent picks its own entry (``agent_0``/``agent_1``) of the action and, as
    player 1, sees the observation from P2's side (P1/P2 keys swapped), as the loader replays P2. A
    policy trained on mirrored data (``meta["mirror"]``: the P2 side seen as P1 sees it) playing on
    the P2 side sees the game mirrored too, and its moves are mirrored back for the env.
    When the env's observations differ from the policy's (e.g. ``trajarena play`` with native frames),
    the agent re-applies the policy's frame size and wrappers settings (frame stacks included) itself.

    Args:
        policy: a :class:`BCPolicy` or the path of a saved one.
        env: the env the agent plays in (its observation space decides whether to adapt observations).
        player: 0 or 1.
        wrappers: user wrapper classes the policy may name (nothing a policy file names is imported).

    >>> import numpy as np
    >>> from gymnasium import spaces
    >>> policy = BCPolicy.create(spaces.Box(-1.0, 1.0, (4,), np.float32), spaces.Discrete(2), seed=0)
    >>> PolicyAgent(policy).act(np.zeros(4, np.float32), {}) in (0, 1)
    True
    """

    def __init__(self, policy: BCPolicy | str | Path, env: gym.Env | None = None, player: int = 0,
                 wrappers: Sequence[type] = ()):
        self.policy = policy if isinstance(policy, BCPolicy) else BCPolicy.load(policy)
        self.player = int(player)
        self.name = "policy" if isinstance(policy, BCPolicy) else Path(policy).stem
        self._adapter = _adapter(self.policy, None if env is None else env.observation_space, wrappers)
        self._fresh = True
        self._last: Any = None
        self._mirror = bool(self.policy.meta.get("mirror"))
        self._space = space_from_json(self.policy.meta["action_space"]) if self._mirror else None

    def reset(self, seed: int | None = None) -> None:
        """A new episode: the adapted frame stack (if any) starts again."""
        self._fresh = True

    def act(self, obs: Any, info: Mapping[str, Any] | None = None) -> Any:
        if self.player == 1:
            obs = _swap_sides(obs)
        flip = self._mirror and self._on_p2_side(info or {})
        if flip:
            obs = mirror_observation(obs)
        if self._adapter is not None:
            feed = self._adapter.unwrapped
            feed.obs, feed.info = obs, dict(info or {})
            if self._fresh:
                obs, _ = self._adapter.reset()
            else:
                obs = self._adapter.step(self._last)[0]
        self._fresh = False
        self._last = self.policy.predict(obs)
        return mirror_action(self._last, self._space) if flip else self._last

    def _on_p2_side(self, info: Mapping[str, Any]) -> bool:
        """Whether this agent plays P2 (duel's ``info["agent_side"]`` is agent_0's side; else player 1 is P2)."""
        side = info.get("agent_side")
        first = int(side) if side is not None else 0
        return (first if self.player == 0 else 1 - first) == 1


def load_policy_agent(path: str | Path, env: gym.Env | None = None, player: int = 0,
                      wrappers: Sequence[type] = ()) -> PolicyAgent:
    """A :class:`PolicyAgent` from a saved ``.pt`` file (for ``make_agent`` and ``trajarena play``)."""
    return PolicyAgent(BCPolicy.load(path), env, player, wrappers)
