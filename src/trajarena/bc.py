"""Behavioural cloning: a small CNN+MLP policy for dict/frame observations, trained from trajectory files.

The data comes through the loader (:class:`trajarena.ImitationLearning`), which re-applies the wrappers
settings stored in the files, so the policy sees exactly what a live env made with the same settings
shows. A MultiDiscrete action gets one categorical head per component, a Discrete action one head.

A saved policy is ``torch.save`` of a plain dict: ``{"state_dict": tensors, "meta_json": a JSON string}``;
it is loaded with ``torch.load(weights_only=True)``, so opening a policy never runs code. The metadata
records what the policy was trained on (files with their sizes and sha256, spaces, env id, env settings,
wrappers settings) and how to encode observations.

>>> import numpy as np
>>> from gymnasium import spaces
>>> space = spaces.Dict(frame=spaces.Box(0, 255, (16, 16, 1), np.uint8), timer=spaces.Discrete(3))
>>> enc = ObsEncoder.from_space(space)
>>> enc.image_shape, enc.vector_dim
((16, 16, 1), 3)
"""

from __future__ import annotations

import hashlib
import json
import math
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from trajarena.errors import FormatError, NotSupportedError, SettingsError, require

__all__ = [
    "ARCHS",
    "BCPolicy",
    "Demonstrations",
    "EpochStats",
    "ObsEncoder",
    "PolicyAgent",
    "TrainResult",
    "action_heads",
    "file_digest",
    "load_demonstrations",
    "load_policy",
    "load_policy_agent",
    "stack_obs",
    "torch_threads",
    "train_bc",
]

POLICY_FORMAT = "trajarena-bc-policy"
POLICY_VERSION = 1


def _torch():
    return require("torch", "torch", "Behavioural cloning")


class torch_threads:  # noqa: N801 - used like a function: ``with torch_threads(1): ...``
    """Run a block with ``n`` torch intra-op threads (None: leave as is), restoring the old number after.

    One thread is the right choice for one-observation inference, and for training on a busy machine:
    torch's worker threads spin while waiting, so an oversubscribed CPU slows them down many-fold.

    >>> with torch_threads(1):
    ...     pass
    """

    def __init__(self, n: int | None) -> None:
        self.n = n
        self.old: int | None = None

    def __enter__(self) -> torch_threads:
        if self.n is not None:
            torch = _torch()
            self.old = torch.get_num_threads()
            torch.set_num_threads(int(self.n))
        return self

    def __exit__(self, *exc: Any) -> None:
        if self.old is not None:
            _torch().set_num_threads(self.old)


# ----------------------------------------------------------------------------- observations


def stack_obs(items: Sequence[Any]) -> Any:
    """Stack a list of (nested dict) observations into one batched observation.

    >>> stack_obs([{"a": np.zeros(2)}, {"a": np.ones(2)}])["a"].shape
    (2, 2)
    """
    first = items[0]
    if isinstance(first, Mapping):
        return {k: stack_obs([it[k] for it in items]) for k in first}
    if isinstance(first, tuple):
        return tuple(stack_obs([it[i] for it in items]) for i in range(len(first)))
    return np.stack([np.asarray(it) for it in items])


def _leaves(space: spaces.Space, path: tuple = ()) -> list[tuple[tuple, spaces.Space]]:
    if isinstance(space, spaces.Dict):
        return [leaf for k, s in space.spaces.items() for leaf in _leaves(s, (*path, k))]
    if isinstance(space, spaces.Tuple):
        return [leaf for i, s in enumerate(space.spaces) for leaf in _leaves(s, (*path, i))]
    return [(path, space)]


def _get(obs: Any, path: Sequence) -> Any:
    for key in path:
        obs = obs[key]
    return obs


def _is_image(space: spaces.Space) -> bool:
    return isinstance(space, spaces.Box) and len(space.shape) == 3 and min(space.shape[:2]) >= 8


@dataclass(frozen=True)
class ObsEncoder:
    """Turns batched observations into an image array (N, H, W, C) uint8 and a float32 vector (N, D).

    Built from the observation space; its :meth:`to_json` form is stored in the policy file. Boxes are
    scaled by their finite bounds, Discrete/MultiDiscrete values are one-hot encoded, float images in
    [0, 1] are quantised back to uint8 (so a dataset of frames stays small in memory).

    >>> enc = ObsEncoder.from_space(spaces.Box(-1.0, 1.0, (4,), np.float32))
    >>> enc.encode(np.zeros((2, 4), np.float32))[1].tolist()
    [[0.5, 0.5, 0.5, 0.5], [0.5, 0.5, 0.5, 0.5]]
    """

    image_path: tuple | None
    image_shape: tuple[int, int, int] | None
    image_scale: float
    leaves: tuple[dict, ...] = field(default_factory=tuple)

    @classmethod
    def from_space(cls, space: spaces.Space) -> ObsEncoder:
        image_path = image_shape = None
        image_scale = 1.0
        leaves = []
        for path, sub in _leaves(space):
            if _is_image(sub) and image_path is None:
                image_path, image_shape = path, tuple(int(v) for v in sub.shape)
                image_scale = 1.0 if sub.dtype == np.uint8 else 255.0
            elif isinstance(sub, spaces.Box):
                low, high = sub.low.astype(np.float64).ravel(), sub.high.astype(np.float64).ravel()
                ok = np.isfinite(low) & np.isfinite(high) & (high > low)
                leaves.append({"path": list(path), "kind": "box", "size": int(low.size),
                               "low": np.where(ok, low, 0.0).tolist(), "span": np.where(ok, high - low, 1.0).tolist()})
            elif isinstance(sub, spaces.Discrete):
                leaves.append({"path": list(path), "kind": "onehot", "nvec": [int(sub.n)], "start": [int(sub.start)]})
            elif isinstance(sub, spaces.MultiDiscrete):
                leaves.append({"path": list(path), "kind": "onehot", "nvec": sub.nvec.ravel().tolist(),
                               "start": np.broadcast_to(sub.start, sub.nvec.shape).ravel().tolist()})
            elif isinstance(sub, spaces.MultiBinary):
                leaves.append({"path": list(path), "kind": "binary", "size": int(np.prod(sub.shape))})
            else:
                raise NotSupportedError(f"behavioural cloning cannot encode the observation part {path} of space {sub}; "
                                        "filter it out with wrappers_settings filter_keys.")
        return cls(image_path, image_shape, image_scale, tuple(leaves))

    @property
    def vector_dim(self) -> int:
        return sum(sum(leaf["nvec"]) if leaf["kind"] == "onehot" else leaf["size"] for leaf in self.leaves)

    def encode(self, obs: Any) -> tuple[np.ndarray | None, np.ndarray]:
        """Encode a batched observation (leading batch axis on every leaf)."""
        image = None
        if self.image_path is not None:
            image = np.asarray(_get(obs, self.image_path))
            if image.dtype != np.uint8:
                image = np.clip(np.rint(image.astype(np.float32) * self.image_scale), 0, 255).astype(np.uint8)
        parts = []
        n = None
        for leaf in self.leaves:
            value = np.asarray(_get(obs, leaf["path"]))
            n = value.shape[0] if value.ndim else 1
            value = value.reshape(n, -1)
            if leaf["kind"] == "box":
                parts.append((value.astype(np.float64) - leaf["low"]) / leaf["span"])
            elif leaf["kind"] == "binary":
                parts.append(value.astype(np.float32))
            else:
                for j, (k, start) in enumerate(zip(leaf["nvec"], leaf["start"], strict=True)):
                    idx = np.clip(value[:, j].astype(np.int64) - start, 0, k - 1)
                    parts.append(np.eye(k, dtype=np.float32)[idx])
        if n is None:
            n = image.shape[0] if image is not None else 0
        vector = np.concatenate(parts, axis=1).astype(np.float32) if parts else np.zeros((n, 0), np.float32)
        return image, vector

    def to_json(self) -> dict:
        return {"image_path": None if self.image_path is None else list(self.image_path),
                "image_shape": None if self.image_shape is None else list(self.image_shape),
                "image_scale": self.image_scale, "leaves": list(self.leaves)}

    @classmethod
    def from_json(cls, data: Mapping) -> ObsEncoder:
        return cls(None if data["image_path"] is None else tuple(data["image_path"]),
                   None if data["image_shape"] is None else tuple(data["image_shape"]),
                   float(data["image_scale"]), tuple(dict(leaf) for leaf in data["leaves"]))


def action_heads(space: spaces.Space) -> tuple[list[int], list[int]]:
    """The categorical heads (sizes and start offsets) for a Discrete or MultiDiscrete action space.

    >>> action_heads(spaces.MultiDiscrete([9, 8]))
    ([9, 8], [0, 0])
    """
    if isinstance(space, spaces.Discrete):
        return [int(space.n)], [int(space.start)]
    if isinstance(space, spaces.MultiDiscrete) and space.nvec.ndim == 1:
        return space.nvec.tolist(), np.broadcast_to(space.start, space.nvec.shape).tolist()
    raise NotSupportedError(
        f"behavioural cloning supports Discrete and 1-D MultiDiscrete actions, got {space}. "
        "For a two-player recording, train from one side's actions (the loader replays each side as P1)."
    )


# ----------------------------------------------------------------------------- network


#: CNN layouts, (out_channels, kernel, stride) per layer: "nature" is coarse and cheap (kernel 8 stride 4 first),
#: "fine" keeps more spatial precision (stride 2 throughout), "small" is for frames under 36 pixels.
ARCHS: dict[str, tuple[tuple[int, int, int], ...]] = {
    "nature": ((16, 8, 4), (32, 4, 2), (32, 3, 1)),
    "fine": ((16, 5, 2), (32, 3, 2), (32, 3, 2), (32, 3, 1)),
    "small": ((16, 3, 2), (32, 3, 2), (32, 3, 1)),
}


def _build_net(image_shape, vector_dim: int, nvec: Sequence[int], hidden: int = 256, arch: str = "nature"):
    torch = _torch()
    nn = torch.nn

    class PolicyNet(nn.Module):
        """CNN over the (H, W, C) frame + MLP over the vector, one linear head per action component."""

        def __init__(self) -> None:
            super().__init__()
            width = 0
            self.cnn = None
            if image_shape is not None:
                h, w, c = image_shape
                layers: list[Any] = []
                for out_c, k, stride in ARCHS[arch if min(h, w) >= 36 else "small"]:
                    layers += [nn.Conv2d(c, out_c, k, stride), nn.ReLU()]
                    c = out_c
                self.cnn = nn.Sequential(*layers, nn.Flatten())
                c = image_shape[2]
                with torch.no_grad():
                    width += self.cnn(torch.zeros(1, c, h, w)).shape[1]
            self.mlp = None
            # feature standardisation, set from the training data (saved with the weights)
            self.register_buffer("v_mean", torch.zeros(vector_dim))
            self.register_buffer("v_std", torch.ones(vector_dim))
            if vector_dim:
                self.mlp = nn.Sequential(nn.Linear(vector_dim, 128), nn.ReLU())
                width += 128
            self.trunk = nn.Sequential(nn.Linear(width, hidden), nn.ReLU())
            self.heads = nn.ModuleList(nn.Linear(hidden, int(n)) for n in nvec)

        def forward(self, image, vector):
            feats = []
            if self.cnn is not None:
                feats.append(self.cnn(image.permute(0, 3, 1, 2).float() * (1.0 / 255.0)))
            if self.mlp is not None:
                feats.append(self.mlp((vector - self.v_mean) / self.v_std))
            z = self.trunk(torch.cat(feats, dim=1))
            return [head(z) for head in self.heads]

    return PolicyNet()


class BCPolicy:
    """A trained behavioural-cloning policy: the network, its observation encoder and its metadata.

    Args:
        net: the torch module (from :func:`train_bc` or :meth:`load`).
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
            net = _build_net(encoder.image_shape, encoder.vector_dim, nvec, arch=arch)
        full = {"format": POLICY_FORMAT, "version": POLICY_VERSION, **(meta or {}), "arch": arch,
                "encoder": encoder.to_json(),
                "action_heads": {"nvec": nvec, "start": start, "discrete": isinstance(action_space, spaces.Discrete)}}
        from trajarena.spaces import space_to_json

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
        """Load a saved policy with ``torch.load(weights_only=True)``."""
        torch = _torch()
        try:
            blob = torch.load(Path(path), map_location="cpu", weights_only=True)
            meta = json.loads(blob["meta_json"])
        except (KeyError, TypeError, ValueError, RuntimeError) as exc:
            raise FormatError(f"{path} is not a trajarena BC policy file ({exc}); make one with train_bc().") from exc
        if meta.get("format") != POLICY_FORMAT or meta.get("version", 0) > POLICY_VERSION:
            raise FormatError(f"{path}: expected a {POLICY_FORMAT} file of version <= {POLICY_VERSION}, "
                              f"got format {meta.get('format')!r} version {meta.get('version')!r}.")
        enc = ObsEncoder.from_json(meta["encoder"])
        net = _build_net(enc.image_shape, enc.vector_dim, meta["action_heads"]["nvec"], arch=meta.get("arch", "nature"))
        net.load_state_dict(blob["state_dict"])
        return cls(net, meta)

    def make_env(self, render_mode: str | None = None, **settings_overrides: Any) -> gym.Env:
        """An env made with the env id, env settings and wrappers settings the policy was trained on."""
        from trajarena.envs import make

        settings = dict(self.meta.get("env_settings") or {})
        settings.update(settings_overrides)
        env_id = self.meta.get("env_id") or "duel"
        if env_id == "duel" and "seed" not in settings_overrides:
            settings.pop("seed", None)  # evaluation seeds come from reset(seed=...)
        from trajarena.settings import WrappersSettings

        wrappers = WrappersSettings.from_json(self.meta.get("wrappers_settings") or {})
        return make(env_id, settings or None, wrappers, render_mode=render_mode)

    def __repr__(self) -> str:
        return (f"BCPolicy(env_id={self.meta.get('env_id')!r}, image={self.encoder.image_shape}, "
                f"vector_dim={self.encoder.vector_dim}, heads={self.nvec})")


def load_policy(path: str | Path) -> BCPolicy:
    """Load a policy saved by :func:`train_bc` (``torch.load(weights_only=True)``)."""
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


def _adapter(policy: BCPolicy, space: spaces.Space | None) -> gym.Env | None:
    """Wrappers that turn ``space``'s raw observations into the policy's (None when they already match)."""
    from trajarena.settings import WrappersSettings
    from trajarena.spaces import space_from_json
    from trajarena.wrappers import apply_wrappers

    want = space_from_json(policy.meta["observation_space"])
    if space is None or space == want:
        return None
    settings = WrappersSettings.from_json(policy.meta.get("wrappers_settings") or {})
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
    player 1, sees the observation from P2's side (P1/P2 keys swapped), as the loader replays P2.
    When the env's observations differ from the policy's (e.g. ``trajarena play`` with native frames),
    the agent re-applies the policy's frame size and wrappers settings (frame stacks included) itself.

    Args:
        policy: a :class:`BCPolicy` or the path of a saved one.
        env: the env the agent plays in (its observation space decides whether to adapt observations).
        player: 0 or 1.

    >>> import numpy as np
    >>> from gymnasium import spaces
    >>> policy = BCPolicy.create(spaces.Box(-1.0, 1.0, (4,), np.float32), spaces.Discrete(2), seed=0)
    >>> PolicyAgent(policy).act(np.zeros(4, np.float32), {}) in (0, 1)
    True
    """

    def __init__(self, policy: BCPolicy | str | Path, env: gym.Env | None = None, player: int = 0):
        self.policy = policy if isinstance(policy, BCPolicy) else BCPolicy.load(policy)
        self.player = int(player)
        self.name = "policy" if isinstance(policy, BCPolicy) else Path(policy).stem
        self._adapter = _adapter(self.policy, None if env is None else env.observation_space)
        self._fresh = True
        self._last: Any = None

    def reset(self, seed: int | None = None) -> None:
        """A new episode: the adapted frame stack (if any) starts again."""
        self._fresh = True

    def act(self, obs: Any, info: Mapping[str, Any] | None = None) -> Any:
        if self.player == 1:
            obs = _swap_sides(obs)
        if self._adapter is not None:
            feed = self._adapter.unwrapped
            feed.obs, feed.info = obs, dict(info or {})
            if self._fresh:
                obs, _ = self._adapter.reset()
            else:
                obs = self._adapter.step(self._last)[0]
        self._fresh = False
        self._last = self.policy.predict(obs)
        return self._last


def load_policy_agent(path: str | Path, env: gym.Env | None = None, player: int = 0) -> PolicyAgent:
    """A :class:`PolicyAgent` from a saved ``.pt`` file (for ``make_agent`` and ``trajarena play``)."""
    return PolicyAgent(BCPolicy.load(path), env, player)


# ----------------------------------------------------------------------------- training


@dataclass(frozen=True)
class Demonstrations:
    """Encoded demonstrations held in memory: what :func:`train_bc` learns from.

    Attributes:
        image: frames (N, H, W, C) uint8, or None for observations without an image.
        vector: the other observation parts, encoded (N, D) float32.
        actions: the recorded actions as head indices (N, n_heads) int64.
        episode: the episode number of each step (N,), for splitting by episode.
        observation_space, action_space: the (wrapped) spaces the policy will see and act in.
        meta: env id, env settings, wrappers settings and the source files.
    """

    image: np.ndarray | None
    vector: np.ndarray
    actions: np.ndarray
    episode: np.ndarray
    observation_space: spaces.Space
    action_space: spaces.Space
    meta: dict[str, Any]

    def __len__(self) -> int:
        return len(self.actions)

    @property
    def n_episodes(self) -> int:
        return int(len(np.unique(self.episode)))

    def __repr__(self) -> str:
        img = None if self.image is None else self.image.shape
        return f"Demonstrations(steps={len(self)}, episodes={self.n_episodes}, image={img}, vector={self.vector.shape})"

    @classmethod
    def from_steps(cls, observations: Sequence[Any], actions: Sequence[Any], episode: Sequence[int],
                   observation_space: spaces.Space, action_space: spaces.Space,
                   meta: Mapping[str, Any] | None = None) -> Demonstrations:
        """Encode lists of (unbatched) observations and env-format actions."""
        encoder = ObsEncoder.from_space(observation_space)
        _, start = action_heads(action_space)
        images, vectors = [], []
        for i in range(0, len(observations), 4096):  # encode in blocks to bound memory
            img, vec = encoder.encode(stack_obs(observations[i:i + 4096]))
            images.append(img)
            vectors.append(vec)
        acts = np.asarray(actions, np.int64).reshape(len(actions), -1) - np.asarray(start, np.int64)
        return cls(None if encoder.image_path is None else np.concatenate(images), np.concatenate(vectors), acts,
                   np.asarray(episode, np.int64), observation_space, action_space, dict(meta or {}))


def _trajectory_files(data: str | Path | Sequence[str | Path]) -> list[Path]:
    from trajarena.dataset import list_trajectory_files

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


def load_demonstrations(data: str | Path | Sequence[str | Path], wrappers_settings: Any = None,
                        max_steps: int | None = None) -> Demonstrations:
    """Replay trajectory files through :class:`trajarena.ImitationLearning` and encode every step.

    Args:
        data: a folder of trajectory files, one file, or a list of files.
        wrappers_settings: None re-applies the wrappers settings stored in the files (the default).
        max_steps: stop after this many steps (None: all of them).
    """
    from trajarena.imitation import ImitationLearning

    files = _trajectory_files(data)
    kwargs: dict[str, Any] = {"traj_files_list": [str(f) for f in files], "total_cpus": 1, "rank": 0}
    if wrappers_settings is not None:
        kwargs["wrappers_settings"] = wrappers_settings
    env = ImitationLearning(**kwargs)
    try:
        encoder = ObsEncoder.from_space(env.observation_space)
        _, start = action_heads(env.action_space)
        images: list[np.ndarray] = []
        vectors: list[np.ndarray] = []
        pending: list[Any] = []
        actions: list[np.ndarray] = []
        episode: list[int] = []

        def flush() -> None:  # encode in blocks: memory holds encoded arrays, not observation dicts
            if pending:
                img, vec = encoder.encode(stack_obs(pending))
                images.append(img)
                vectors.append(vec)
                pending.clear()

        full = False
        keys: list[str] = []
        obs, info = env.reset()
        ep = 0
        keys.append(_episode_key(env, info))
        while not env.exhausted and not full:
            done = False
            while not done and not full:
                obs_next, _, terminated, truncated, info = env.step(env.action_space.sample())
                pending.append(obs)
                actions.append(np.asarray(info["action"]))
                episode.append(ep)
                if len(pending) >= 2048:
                    flush()
                obs, done = obs_next, terminated or truncated
                full = max_steps is not None and len(actions) >= max_steps
            if not full:
                obs, info = env.reset()
                if not env.exhausted:
                    ep += 1
                    keys.append(_episode_key(env, info))
        flush()
        if not actions:
            raise FileNotFoundError(f"the trajectory files {[str(f) for f in files]} hold no steps to learn from.")
        meta = _loader_meta(env)
        meta["files"] = file_digest(files)
        acts = np.asarray(actions, np.int64).reshape(len(actions), -1) - np.asarray(start, np.int64)
        return Demonstrations(None if encoder.image_path is None else np.concatenate(images), np.concatenate(vectors),
                              acts, _episode_ids(keys, episode), env.observation_space, env.action_space, meta)
    finally:
        env.close()


def _episode_ids(keys: list[str], episode: list[int]) -> np.ndarray:
    """Per-step episode ids numbered in sorted key order (the same ids for the same data in any file order)."""
    uniq, inverse = np.unique(np.asarray(keys), return_inverse=True)
    return inverse.astype(np.int64)[np.asarray(episode, np.int64)]


def _loader_meta(env: Any) -> dict[str, Any]:
    """Env id, env settings and the wrappers settings the loader applied."""
    first = env.file_metadata[0] if env.file_metadata else {}
    return {"env_id": env.env_id, "env_settings": env.env_settings, "wrappers_settings": env.wrappers_settings.to_dict(),
            "username": first.get("username"), "format_version": first.get("format_version")}


@dataclass(frozen=True)
class EpochStats:
    """Loss and accuracy (all action components right) of one epoch, on the training and validation steps."""

    epoch: int
    train_loss: float
    train_accuracy: float
    val_loss: float | None
    val_accuracy: float | None
    seconds: float


@dataclass(frozen=True)
class TrainResult:
    """What :func:`train_bc` did: where the policy is, the learning curve and the data volume.

    >>> r = TrainResult(Path("p.pt"), (EpochStats(1, 0.5, 0.8, 0.6, 0.7, 1.0),), 90, 10, 4, 1.0)
    >>> r.final.val_accuracy
    0.7
    """

    path: Path
    history: tuple[EpochStats, ...]
    train_steps: int
    val_steps: int
    episodes: int
    seconds: float

    @property
    def final(self) -> EpochStats:
        return self.history[-1]

    def to_dict(self) -> dict[str, Any]:
        return {"path": str(self.path), "train_steps": self.train_steps, "val_steps": self.val_steps,
                "episodes": self.episodes, "seconds": self.seconds,
                "history": [dict(vars(e)) for e in self.history]}


def _split_by_episode(episode: np.ndarray, val_fraction: float, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Training and validation step indices, whole episodes on each side, in episode-id order.

    Episode ids come from :func:`load_demonstrations` (recorded seeds when known), so the split and the
    batch order do not depend on the order in which the files happen to be listed.
    """
    eps = np.unique(episode)
    n_val = int(round(len(eps) * val_fraction)) if len(eps) > 1 else 0
    n_val = min(max(n_val, 1 if val_fraction > 0 and len(eps) > 1 else 0), len(eps) - 1)
    val_eps = rng.choice(eps, size=n_val, replace=False) if n_val else np.array([], np.int64)
    canonical = np.argsort(episode, kind="stable")
    is_val = np.isin(episode[canonical], val_eps)
    return canonical[~is_val], canonical[is_val]


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


def _run_epoch(policy: BCPolicy, demos: Demonstrations, idx: np.ndarray, batch_size: int, opt: Any,
               gen: Any, on_batch: Any = None, sched: Any = None) -> tuple[float, float]:
    torch = _torch()
    F = torch.nn.functional
    train = opt is not None
    policy.net.train(train)
    if train:
        idx = idx[torch.randperm(len(idx), generator=gen).numpy()]
    total_loss = total_right = 0.0
    with torch.set_grad_enabled(train):
        for i in range(0, len(idx), batch_size):
            b = np.sort(idx[i:i + batch_size])
            image = None if demos.image is None else torch.from_numpy(demos.image[b])
            outs = policy.net(image, torch.from_numpy(demos.vector[b]))
            target = torch.from_numpy(demos.actions[b])
            loss = sum(F.cross_entropy(o, target[:, j]) for j, o in enumerate(outs))
            if train:
                opt.zero_grad()
                loss.backward()
                opt.step()
                if sched is not None:
                    sched.step()
            right = torch.stack([o.argmax(1) == target[:, j] for j, o in enumerate(outs)]).all(0)
            total_loss += loss.item() * len(b)
            total_right += float(right.sum())
            if on_batch is not None:
                on_batch(len(b), loss.item(), right.float().mean().item())
    policy.net.eval()
    n = max(len(idx), 1)
    return total_loss / n, total_right / n


def train_bc(data: str | Path | Sequence[str | Path] | Demonstrations, out: str | Path = "policy.pt", epochs: int = 10,
             batch_size: int = 128, lr: float = 1e-3, val_fraction: float = 0.1, seed: int = 0,
             wrappers_settings: Any = None, max_steps: int | None = None, progress: bool = True,
             threads: int | None = 1, arch: str = "nature") -> TrainResult:
    """Train a behavioural-cloning policy from trajectory files and save it to ``out``.

    Args:
        data: a folder of trajectory files, a file, a list of files, or already loaded :class:`Demonstrations`.
        out: where the policy goes (``.pt``).
        epochs: passes over the training steps.
        batch_size: steps per gradient step.
        lr: Adam learning rate.
        val_fraction: fraction of *episodes* held out for validation.
        seed: seeds the initialisation, the split and the batch order (torch's global RNG is untouched).
        wrappers_settings: None uses the wrappers settings stored in the files.
        max_steps: use at most this many steps.
        progress: show a progress bar (rich) with loss and accuracy.
        threads: torch threads while training (1 by default: robust on busy machines; None keeps torch's).
        arch: the CNN layout for frames, a key of :data:`ARCHS`.

    The learning rate decays from ``lr`` to zero on a cosine over all the gradient steps.

    Returns:
        A :class:`TrainResult` with the learning curve (:class:`EpochStats` per epoch).
    """
    torch = _torch()
    if epochs < 1 or batch_size < 1 or not 0 <= val_fraction < 1:
        raise SettingsError(f"train_bc needs epochs >= 1, batch_size >= 1 and 0 <= val_fraction < 1, "
                            f"got epochs={epochs}, batch_size={batch_size}, val_fraction={val_fraction}.")
    t0 = time.perf_counter()
    demos = data if isinstance(data, Demonstrations) else load_demonstrations(data, wrappers_settings, max_steps)
    rng = np.random.default_rng(seed)
    train_idx, val_idx = _split_by_episode(demos.episode, val_fraction, rng)
    meta = {**demos.meta, "trained": {"steps": len(train_idx), "val_steps": len(val_idx), "episodes": demos.n_episodes,
                                      "epochs": epochs, "batch_size": batch_size, "lr": lr, "seed": seed}}
    policy = BCPolicy.create(demos.observation_space, demos.action_space, seed=seed, meta=meta, arch=arch)
    if len(train_idx) and demos.vector.shape[1]:
        v = demos.vector[train_idx]
        policy.net.v_mean.copy_(torch.from_numpy(v.mean(0)))
        policy.net.v_std.copy_(torch.from_numpy(np.maximum(v.std(0), 1e-3)))
    opt = torch.optim.Adam(policy.net.parameters(), lr=lr)
    total_batches = epochs * max(1, math.ceil(len(train_idx) / batch_size))
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda i: 0.5 * (1 + math.cos(math.pi * min(i, total_batches) / total_batches)))
    gen = torch.Generator().manual_seed(seed)
    history = []
    bar = _Bar(progress, epochs * len(train_idx))
    with bar, torch_threads(threads):
        for epoch in range(1, epochs + 1):
            te = time.perf_counter()
            tl, ta = _run_epoch(policy, demos, train_idx, batch_size, opt, gen, bar.update, sched)
            vl = va = None
            if len(val_idx):
                vl, va = _run_epoch(policy, demos, val_idx, 4 * batch_size, None, gen)
            history.append(EpochStats(epoch, tl, ta, vl, va, time.perf_counter() - te))
            bar.epoch_done(history[-1])
    policy.meta["history"] = [dict(vars(e)) for e in history]
    path = policy.save(out)
    return TrainResult(path, tuple(history), len(train_idx), len(val_idx), demos.n_episodes, time.perf_counter() - t0)


class _Bar:
    """A rich progress bar with loss and accuracy (silent when rich is missing or progress is off)."""

    def __init__(self, enabled: bool, total: int):
        self.progress = None
        if enabled:
            try:
                from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
            except ImportError:
                return
            self.progress = Progress(TextColumn("train-bc"), BarColumn(), TextColumn("{task.completed}/{task.total} steps"),
                                     TextColumn("{task.fields[stats]}"), TimeElapsedColumn(), TimeRemainingColumn())
            self.task = self.progress.add_task("train", total=total, stats="")
        self.loss = self.acc = 0.0

    def __enter__(self):
        if self.progress is not None:
            self.progress.start()
        return self

    def __exit__(self, *exc):
        if self.progress is not None:
            self.progress.stop()

    def update(self, n: int, loss: float, acc: float) -> None:
        if self.progress is not None:
            self.loss, self.acc = 0.9 * self.loss + 0.1 * loss, 0.9 * self.acc + 0.1 * acc
            self.progress.update(self.task, advance=n, stats=f"loss {self.loss:.3f} acc {self.acc:.2f}")

    def epoch_done(self, e: EpochStats) -> None:
        if self.progress is not None:
            val = "" if e.val_loss is None else f", val loss {e.val_loss:.3f} acc {e.val_accuracy:.3f}"
            self.progress.console.print(f"epoch {e.epoch}: loss {e.train_loss:.3f} acc {e.train_accuracy:.3f}{val}")
