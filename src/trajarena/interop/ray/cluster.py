"""Joining a Ray cluster and running a small function on each of its nodes.

:func:`connect` is what ``trajarena record --ray [ADDRESS]`` does before it submits work:

* Ray already initialised in this process: use that cluster as it is (whatever ``address``).
* ``address`` ``None`` or ``""``: Ray's own rule — ``RAY_ADDRESS`` if set, else the cluster that
  ``ray start`` started on this machine, else a new local cluster for the length of the run.
* ``"local"``: always a new local cluster; ``"auto"``: an existing cluster, or an error.
* ``"host:port"`` (what ``ray start --head`` prints) or ``"ray://host:port"`` (Ray Client): that
  cluster. A TCP probe runs first, so a wrong address fails in seconds with a
  :class:`~trajarena.errors.ClusterError` instead of Ray's long retry loop.

>>> parse_address("10.0.0.5:6379"), parse_address("ray://head:10001")
(('10.0.0.5', 6379), ('head', 10001))
>>> parse_address("local") is None
True
"""

from __future__ import annotations

import socket
from collections.abc import Callable, Mapping
from typing import Any

from trajarena.errors import ClusterError, require

__all__ = ["connect", "on_every_node", "parse_address", "probe"]

_PROBE_SECONDS = 5.0


def parse_address(address: str | None) -> tuple[str, int] | None:
    """``(host, port)`` of a ``host:port`` or ``ray://host:port`` address; None for ``None``/``""``/``local``/``auto``.

    Raises:
        ClusterError: anything else (the message shows the forms Ray accepts).
    """
    if address in (None, "", "local", "auto"):
        return None
    text = str(address)
    rest = text[len("ray://"):] if text.startswith("ray://") else text
    host, sep, port = rest.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ClusterError(
            f"{text!r} is not a Ray cluster address. Give HOST:PORT (what `ray start --head` prints, e.g. "
            "10.0.0.5:6379), ray://HOST:PORT (Ray Client), 'auto', 'local', or nothing (Ray's default: "
            "RAY_ADDRESS, a cluster started on this machine, else a new local one). On the command line, "
            "put --ray after the env id, or give it its address: `trajarena record duel --ray`.")
    return host.strip("[]"), int(port)


def probe(address: str | None, timeout: float = _PROBE_SECONDS) -> None:
    """Check that something listens at ``address`` (no-op for addresses Ray resolves itself).

    Raises:
        ClusterError: a malformed address, or nothing answers there within ``timeout`` seconds.
    """
    where = parse_address(address)
    if where is None:
        return
    try:
        with socket.create_connection(where, timeout=timeout):
            pass
    except OSError as exc:
        raise ClusterError(
            f"no Ray cluster answers at {address} ({exc.strerror or exc}). Start one with "
            f"`ray start --head --port {where[1]}` on {where[0]} (and `ray start --address {where[0]}:{where[1]}` "
            "on the other machines), or leave the address out to start a local cluster.") from exc


def connect(address: str | None = None, init_options: Mapping[str, Any] | None = None) -> bool:
    """Make sure this process is connected to a Ray cluster; True when this call started the connection.

    The caller that got True calls ``ray.shutdown()`` when done. ``init_options`` go to ``ray.init``
    (e.g. ``num_cpus`` for a new local cluster, ``runtime_env``).

    Raises:
        MissingDependencyError: Ray is not installed (``pip install 'trajarena[ray]'``).
        ClusterError: the cluster cannot be reached, or Ray refused to start.
    """
    ray = require("ray", "ray", "Recording on a Ray cluster")
    if ray.is_initialized():
        return False
    probe(address)
    options = {"include_dashboard": False, "log_to_driver": False, **dict(init_options or {})}
    try:
        ray.init(address=address or None, **options)
    except (ConnectionError, RuntimeError, ValueError, TimeoutError) as exc:
        raise ClusterError(f"cannot connect to the Ray cluster at {address or '(Ray default)'}: {exc}") from exc
    return True


def on_every_node(fn: Callable[..., Any], *args: Any) -> list[Any]:
    """Run ``fn(*args)`` once on each live node of the cluster (0 CPUs, pinned to the node); the results.

    A node that dies meanwhile is left out of the results.
    """
    import ray
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    remote = ray.remote(fn)
    refs = [remote.options(num_cpus=0, max_retries=0,
                           scheduling_strategy=NodeAffinitySchedulingStrategy(node["NodeID"], soft=False)).remote(*args)
            for node in ray.nodes() if node.get("Alive")]
    out = []
    for ref in refs:
        try:
            out.append(ray.get(ref))
        except ray.exceptions.RayError:
            continue
    return out

