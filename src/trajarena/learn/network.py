"""What a behavioural-cloning policy sees and computes: observation encoding, action heads, the network.

Owns :class:`ObsEncoder` (a frame as uint8, the other parts as one float vector), :func:`action_heads`
(one categorical head per MultiDiscrete component, one for a Discrete action), :data:`ARCHS` and
:func:`build_net` (a CNN over the frame + an MLP over the vector), and the torch helpers
(:class:`torch_threads`, the lazy torch import). Saving, loading and playing a policy is
:mod:`trajarena.learn.policy`'s; training is :mod:`trajarena.learn.bc`'s. Only :func:`build_net` and
:class:`torch_threads` need torch.

>>> import numpy as np
>>> from gymnasium import spaces
>>> space = spaces.Dict(frame=spaces.Box(0, 255, (16, 16, 1), np.uint8), timer=spaces.Discrete(3))
>>> enc = ObsEncoder.from_space(space)
>>> enc.image_shape, enc.vector_dim
((16, 16, 1), 3)
>>> image, vector = enc.encode({"frame": np.zeros((2, 16, 16, 1), np.uint8), "timer": np.array([0, 2])})
>>> image.shape, vector.tolist()
((2, 16, 16, 1), [[1.0, 0.0, 0.0], [0.0, 0.0, 1.0]])
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from gymnasium import spaces

from trajarena.errors import NotSupportedError, require

__all__ = ["ARCHS", "ObsEncoder", "action_heads", "build_net", "stack_obs", "torch_threads"]


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


def build_net(image_shape, vector_dim: int, nvec: Sequence[int], hidden: int = 256, arch: str = "nature"):
    """The policy network: ``net(image, vector)`` gives one logits tensor per action head (needs torch)."""
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
