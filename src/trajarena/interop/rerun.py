"""Recordings in the Rerun viewer (``trajarena view``; needs the ``view`` extra: ``pip install 'trajarena[view]'``).

`Rerun <https://rerun.io>`_ (``rerun-sdk``, what LeRobot's dataset viewer uses) shows data on
timelines: :func:`log_trajectories` writes decoded episodes into a Rerun recording stream,
:func:`save_rrd` into an ``.rrd`` file, :func:`spawn_viewer` into Rerun's native viewer and
:func:`serve_web` into its web viewer. Everything is read through the public decoded API
(:class:`~trajarena.replay.dataset.TrajectoryDataset`), as the files hold it: both players'
actions of a two-player file, the raw frames below any wrappers.

What the recording holds (the contract a reader of the ``.rrd`` can rely on):

* one timeline, ``step``: every observation of every episode in turn (an episode of ``T`` steps
  takes ``T + 1`` values, its reset observation first), so the time slider scrubs through all
  episodes and one step number names one moment;
* ``/frame``: the observation's image (the ``frame`` key, or an image observation);
* ``/obs/<path>``: every other numeric leaf of the observation of up to 16 values (``/obs/P1/health``,
  ``/obs/timer``), as time series;
* ``/reward`` and ``/return`` (the sum of rewards so far in the episode), on the steps after a reset;
* ``/action/<side>``: each player's recorded action, decoded into move and buttons for fighting
  games (``"right + P+K"``, see :mod:`trajarena.fighting`), as a state lane (numbers as time series
  for continuous actions); ``<side>`` is ``P1``/``P2`` (the side each agent played) or ``agent``;
* ``/info/<key>``: every numeric info value recorded per step (flags as 0/1);
* ``/actor``: ``"agent"`` or ``"human"`` per step when the files record take-overs
  (``info["is_intervention"]``, ``trajarena play``'s take-over key);
* ``/episode``: a state lane naming the episode of each step (its boundaries);
* ``/events``: a log at the first step of each episode (number, length, return, outcome, seed, how
  it ended), where episodes were discarded while recording (gaps in the episode numbers of one
  recording) and where a human took over or handed back; clicking an entry's step jumps there;
* ``/episodes``: a static table of the episodes (first step, length, return, outcome, end, seed).

The default layout (a blueprint sent with the data) shows the frame, the state lanes, reward and
return, the observation values, and the events, episodes and info values as tabs.

>>> import tempfile, os, gymnasium as gym
>>> from trajarena.recording.recorder import TrajectoryRecorder
>>> folder = tempfile.mkdtemp()
>>> env = TrajectoryRecorder(gym.make("CartPole-v1"), folder)
>>> _ = env.reset(seed=0)
>>> for a in [0, 1, 1]:
...     _ = env.step(a)
>>> env.close()
>>> summary = save_rrd(folder, os.path.join(folder, "view.rrd"))
>>> summary.episodes, summary.steps
(1, 3)
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from trajarena.errors import SettingsError, require
from trajarena.fighting import action_layout, describe_action
from trajarena.interop.summary import ConversionSummary, Progress, Timer, report
from trajarena.replay.catalog import agent_sides
from trajarena.replay.dataset import TrajectoryDataset

__all__ = ["TIMELINE", "WebViewer", "blueprint", "log_trajectories", "save_rrd", "serve_web", "spawn_viewer"]

#: The name of the timeline every entity is logged on.
TIMELINE = "step"
_MAX_SERIES = 16
_ORANGE, _GREY = 0xFF961EFF, 0x8C8C96FF
_PALETTE = (0x4C72B0FF, 0xC44E52FF, 0x8C8C96FF, 0x55A868FF, 0x8172B2FF, 0xCCB974FF, 0x64B5CDFF)


def _rerun() -> Any:
    return require("rerun", "view", "The dataset viewer (Rerun)")


def _dataset(data: Any, include_partial: bool) -> TrajectoryDataset:
    return data if isinstance(data, TrajectoryDataset) else TrajectoryDataset(data, include_partial=include_partial)


def _chosen(ds: TrajectoryDataset, episodes: Sequence[int] | None, max_steps: int | None) -> list[int]:
    """The episode indices to show: ``episodes`` (checked) or all, cut once ``max_steps`` steps are reached."""
    chosen = list(range(ds.n_episodes)) if episodes is None else [int(i) for i in episodes]
    bad = [i for i in chosen if not 0 <= i < ds.n_episodes]
    if bad:
        raise SettingsError(f"episode {bad[0]} does not exist: the files hold episodes 0..{ds.n_episodes - 1}.")
    if max_steps is not None:
        if max_steps < 1:
            raise SettingsError(f"max_steps must be >= 1, got {max_steps!r}.")
        total, kept = 0, []
        for i in chosen:
            if kept and total + ds.episodes[i].length > max_steps:
                break
            kept.append(i)
            total += ds.episodes[i].length
        chosen = kept
    return chosen


def blueprint(values: Sequence[str] = ("/obs/**",)) -> Any:
    """The default layout of a trajectory recording in the viewer; ``values``: the observation series plotted."""
    rrb = _rerun().blueprint
    return rrb.Blueprint(
        rrb.Horizontal(
            rrb.Vertical(
                rrb.Spatial2DView(origin="/frame", name="frame"),
                rrb.StateTimelineView(origin="/", contents=["/episode", "/actor", "/action/**"],
                                      name="episode, who acted, actions"),
                row_shares=[3, 2]),
            rrb.Vertical(
                rrb.TimeSeriesView(origin="/", contents=["/reward", "/return"], name="reward and return"),
                rrb.TimeSeriesView(origin="/obs", contents=list(values), name="observation values"),
                rrb.Tabs(rrb.TextLogView(origin="/events", name="events"),
                         rrb.TextDocumentView(origin="/episodes", name="episodes"),
                         rrb.TimeSeriesView(origin="/info", name="info values")),
                row_shares=[2, 2, 3]),
            column_shares=[3, 2]),
        rrb.BlueprintPanel(state="collapsed"), rrb.SelectionPanel(state="collapsed"),
        rrb.TimePanel(state="collapsed", timeline=TIMELINE, play_state="paused"),
    )


def _frame_of(obs: Any) -> tuple[np.ndarray | None, Any]:
    """The image of a batch of observations (``(N, H, W, C)`` uint8) and the observation without it."""
    if isinstance(obs, dict) and "frame" in obs:
        frame, rest = obs["frame"], {k: v for k, v in obs.items() if k != "frame"}
    else:
        frame, rest = obs, None
    frame = np.asarray(frame) if isinstance(frame, np.ndarray) else None
    if frame is None or frame.dtype != np.uint8 or frame.ndim not in (3, 4) or (frame.ndim == 4 and frame.shape[-1]
                                                                               not in (1, 3, 4)):
        return None, obs
    return (frame if frame.ndim == 4 else frame[..., None]), rest


def _leaves(value: Any, path: str) -> list[tuple[str, np.ndarray]]:
    """Numeric leaves of a batch (``(N, ...)`` arrays) as ``(path, (N, k) float array)``, up to 16 values each."""
    if isinstance(value, dict):
        return [leaf for k, v in value.items() for leaf in _leaves(v, f"{path}/{k}")]
    if isinstance(value, tuple):
        return [leaf for i, v in enumerate(value) for leaf in _leaves(v, f"{path}/{i}")]
    arr = np.asarray(value)
    if arr.dtype.kind not in "biuf" or arr.ndim == 0:
        return []
    flat = arr.reshape(len(arr), -1)
    return [(path, flat.astype(np.float64))] if 0 < flat.shape[1] <= _MAX_SERIES else []


class _Logger:
    """Logs the episodes of one dataset into one recording stream (``send_columns``: whole episodes at once)."""

    def __init__(self, ds: TrajectoryDataset, rec: Any) -> None:
        self.rr, self.ds, self.rec = _rerun(), ds, rec
        self.sides = agent_sides(ds.metadata)
        if None in self.sides and action_layout(ds.action_space) is None:
            self.sides = {None: "agent"}
        self.spaces = {k: ds.action_space[k] if k else ds.action_space for k in self.sides}
        self.names = {k: self._names(s) for k, s in self.spaces.items()}
        self.step = 0
        self.rows: list[str] = []
        self.last_uid: tuple[str, int] | None = None
        self.actor = "is_intervention" in ds.info_keys
        self.image_format: Any = None

    @staticmethod
    def _names(space: Any) -> list[str] | None:
        """Decoded names of every action of a fighting-game space, by flat action index."""
        layout = action_layout(space)
        if layout is None:
            return None
        if layout[0] == "discrete":
            return [describe_action(a, space) for a in range(8 + layout[1])]
        return [describe_action(np.array([m, a]), space) for m in range(9) for a in range(layout[1])]

    def static(self, plotted: Sequence[str] = ()) -> None:
        rr = self.rr
        for path, color in zip(plotted, _PALETTE):  # the default plot's series in distinct colours
            if not path.endswith("**"):
                self.rec.log(path, rr.SeriesLines(colors=[color], names=[path.removeprefix("/obs/")]), static=True)
        self.rec.log("/return", rr.SeriesLines(colors=[0x4C72B0FF], names=["return"]), static=True)
        self.rec.log("/reward", rr.SeriesPoints(colors=[0xDD8452FF], names=["reward"], marker_sizes=[2.0]), static=True)
        if self.actor:
            self.rec.log("/actor", rr.StateConfiguration(values=["agent", "human"], colors=[_GREY, _ORANGE]), static=True)

    def _send(self, path: str, times: np.ndarray, columns: Any) -> None:
        if len(times):
            self.rec.send_columns(path, indexes=[self.rr.TimeColumn(TIMELINE, sequence=times)], columns=columns)

    def episode(self, index: int) -> None:
        rr, ds = self.rr, self.ds
        ep = ds.episode(index)
        info = ds.episodes[index]
        t = np.arange(self.step, self.step + ep.length + 1, dtype=np.int64)
        frame, rest = _frame_of(ep.observations)
        if frame is not None:
            self._frames(t, frame)
        for path, values in _leaves(rest, "/obs"):
            self._send(path, t, rr.Scalars.columns(scalars=values if values.shape[1] > 1 else values[:, 0]))
        rewards = np.asarray(ep.rewards, np.float64)
        self._send("/reward", t[1:], rr.Scalars.columns(scalars=rewards))
        self._send("/return", t[1:], rr.Scalars.columns(scalars=np.cumsum(rewards)))
        for key, side in self.sides.items():
            self._actions(t[1:], ep.actions[key] if key else ep.actions, side, key)
        human = self._infos(t, ep.infos)
        self._send("/episode", t[:1], rr.StateChange.columns(state=[f"episode {index}"]))
        self._events(index, info, t, human, ep.infos, float(rewards.sum()))
        self.step += ep.length + 1

    def _frames(self, t: np.ndarray, frame: np.ndarray) -> None:
        rr = self.rr
        n, h, w, c = frame.shape
        if self.image_format is None:  # the observation space fixes the shape: one static format
            model = {1: "L", 3: "RGB", 4: "RGBA"}[c]
            self.image_format = rr.components.ImageFormat(width=w, height=h, color_model=model, channel_datatype="U8")
            self.rec.log("/frame", rr.Image.from_fields(format=self.image_format), static=True)
        self._send("/frame", t, rr.Image.columns(buffer=np.ascontiguousarray(frame).reshape(n, -1)))

    def _actions(self, t: np.ndarray, actions: Any, side: str, key: str | None) -> None:
        rr, names = self.rr, self.names[key]
        arr = np.asarray(actions)
        if names is not None:
            kind, n_attacks = action_layout(self.spaces[key])
            flat = arr.astype(np.int64) if kind == "discrete" else arr[:, 0].astype(np.int64) * n_attacks + arr[:, 1]
            self._send(f"/action/{side}", t, rr.StateChange.columns(state=[names[i] for i in flat]))
        elif arr.dtype.kind in "iub" and arr.ndim == 1:
            self._send(f"/action/{side}", t, rr.StateChange.columns(state=[str(int(a)) for a in arr]))
        else:
            for path, values in _leaves(arr, f"/action/{side}"):
                self._send(path, t, rr.Scalars.columns(scalars=values if values.shape[1] > 1 else values[:, 0]))

    def _infos(self, t: np.ndarray, infos: Mapping[str, tuple[np.ndarray, np.ndarray]]) -> np.ndarray | None:
        """Log the info values; return the per-step take-over flags (None when not recorded)."""
        rr = self.rr
        for key, (values, present) in infos.items():
            present = np.asarray(present, bool)
            values = np.asarray(values)
            if values.dtype.kind not in "biuf" or not present.any() or values[0].size > _MAX_SERIES:
                continue
            flat = values.reshape(len(values), -1).astype(np.float64)[present]
            self._send(f"/info/{key}", t[present], rr.Scalars.columns(scalars=flat if flat.shape[1] > 1 else flat[:, 0]))
        if not self.actor or "is_intervention" not in infos:
            return None
        values, present = infos["is_intervention"]
        human = (np.asarray(values, bool) & np.asarray(present, bool))[1:]
        change = np.flatnonzero(np.diff(np.concatenate([[-1], human.astype(np.int8)])) != 0)
        self._send("/actor", t[1:][change], rr.StateChange.columns(state=["human" if human[i] else "agent" for i in change]))
        return human

    def _events(self, index: int, info: Any, t: np.ndarray, human: np.ndarray | None,
                infos: Mapping[str, tuple[np.ndarray, np.ndarray]], ret: float) -> None:
        meta = info.meta or {}
        recording, _, number = (info.uid or "").rpartition("/")
        found: dict[int, tuple[list[str], str]] = {}

        def event(at: int, text: str, level: str = "INFO") -> None:  # one log line per step: texts joined
            texts, old = found.get(int(at), ([], "INFO"))
            found[int(at)] = ([*texts, text], "WARN" if "WARN" in (old, level) else "INFO")

        if number.isdigit() and self.last_uid is not None and self.last_uid[0] == recording \
                and int(number) > self.last_uid[1] + 1:
            gap = int(number) - self.last_uid[1] - 1
            event(t[0], f"{gap} episode(s) discarded while recording before this one (not in the files)", "WARN")
        self.last_uid = (recording, int(number)) if number.isdigit() else None
        outcome = _outcome(infos, next(iter(self.sides.values())))
        end = "terminated" if meta.get("terminated") else f"truncated ({meta.get('end_reason', 'unfinished')})"
        seed = meta.get("seed")
        taken = int(human.sum()) if human is not None else None
        event(t[0], f"episode {index}: {info.length} steps, return {ret:.1f}"
              + (f", {outcome}" if outcome else "") + f", {end}, seed {seed}"
              + (f", {taken} steps by a human" if taken else ""))
        if meta.get("end_reason") not in (None, "env"):
            event(t[-1], f"episode {index} ended by {meta['end_reason']} (marked truncated)", "WARN")
        if human is not None:
            for i in np.flatnonzero(np.diff(np.concatenate([[0], human.astype(np.int8)])) != 0):
                event(t[1 + i], "a human takes over" if human[i] else "the agent plays again", "WARN" if human[i] else "INFO")
        times = sorted(found)
        self._send("/events", np.asarray(times, np.int64),
                   self.rr.TextLog.columns(text=["; ".join(found[at][0]) for at in times],
                                           level=[found[at][1] for at in times]))
        self.rows.append(f"| {index} | {t[0]} | {info.length} | {ret:.1f} | {outcome or '-'} | {end} | {seed} |"
                         + (f" {taken} |" if human is not None else ""))

    def table(self) -> None:
        head = "| episode | first step | steps | return | outcome | end | seed |" + (" human steps |" if self.actor else "")
        rule = "|---" * (head.count("|") - 1) + "|"
        text = "\n".join(["# Episodes", "", "The first step is where the episode starts on the `step` timeline.", "",
                          head, rule, *self.rows])
        self.rec.log("/episodes", self.rr.TextDocument(text, media_type="text/markdown"), static=True)


def _outcome(infos: Mapping[str, tuple[np.ndarray, np.ndarray]], side: str) -> str:
    """``"P1 won"``/``"P1 lost"`` from the last match result of the episode (``info["outcome"]``), else ``""``."""
    if "outcome" not in infos:
        return ""
    values, present = infos["outcome"]
    results = np.asarray(values)[np.asarray(present, bool)]
    results = results[results != 0] if results.ndim == 1 else results[:0]
    if not len(results):
        return ""
    return f"{side} {'won' if results[-1] > 0 else 'lost'}"


def _plotted(ds: TrajectoryDataset) -> list[str]:
    """The observation series shown by default: health and timer of a fighting game, else every one."""
    _, rest = _frame_of(_sample_obs(ds))
    paths = [p for p, _ in _leaves(rest, "/obs")]
    wanted = [p for p in paths if p.endswith(("/health", "/timer"))]
    return wanted or ["/obs/**"]


def _sample_obs(ds: TrajectoryDataset) -> Any:
    """One observation of the dataset's space, batched (for its leaf paths)."""
    from trajarena.replay.raw import blank_value

    def batch(x: Any) -> Any:
        if isinstance(x, dict):
            return {k: batch(v) for k, v in x.items()}
        if isinstance(x, tuple):
            return tuple(batch(v) for v in x)
        return np.asarray(x)[None]

    return batch(blank_value(ds.observation_space))


def log_trajectories(data: Any, rec: Any, *, episodes: Sequence[int] | None = None, max_steps: int | None = None,
                     include_partial: bool = False, progress: Progress | None = None) -> tuple[int, int]:
    """Log trajectory files (or a :class:`TrajectoryDataset`) into the Rerun recording stream ``rec``.

    Args:
        data: a folder, file or list of them, or a dataset.
        rec: a ``rerun.RecordingStream`` (any sink: a file, a viewer, a server).
        episodes: the episode indices to log (default: all).
        max_steps: stop before the episode that would pass this many steps (at least one episode).
        include_partial: also read ``.partial`` files (a running or crashed recording).
        progress: ``progress(done, total)`` after each episode.

    Returns:
        ``(episodes, steps)`` logged.
    """
    ds = _dataset(data, include_partial)
    chosen = _chosen(ds, episodes, max_steps)
    logger = _Logger(ds, rec)
    plotted = _plotted(ds)
    rec.send_blueprint(blueprint(plotted))
    logger.static(plotted)
    for done, i in enumerate(chosen, 1):
        logger.episode(i)
        report(progress, done, len(chosen))
    logger.table()
    return len(chosen), sum(ds.episodes[i].length for i in chosen)


def _stream(data: Any) -> Any:
    name = Path(data).name if isinstance(data, str | os.PathLike) else "trajectories"
    return _rerun().RecordingStream("trajarena", recording_id=f"trajarena:{name}")


def save_rrd(data: Any, out: str | os.PathLike, *, episodes: Sequence[int] | None = None, max_steps: int | None = None,
             include_partial: bool = False, progress: Progress | None = None) -> ConversionSummary:
    """Write trajectory files as a Rerun ``.rrd`` file (open it with ``rerun out.rrd`` or ``trajarena view``).

    Raises:
        MissingDependencyError: rerun-sdk is not installed (``pip install 'trajarena[view]'``).
        SettingsError: ``out`` does not end in ``.rrd``, or a bad episode selection.
    """
    out = Path(out)
    if out.suffix != ".rrd":
        raise SettingsError(f"a Rerun recording must end in .rrd, got {out.name!r}.")
    timer = Timer()
    ds = _dataset(data, include_partial)  # opened (and checked) before the file is created
    out.parent.mkdir(parents=True, exist_ok=True)
    rec = _stream(data)
    rec.save(str(out))
    try:
        n_episodes, steps = log_trajectories(ds, rec, episodes=episodes, max_steps=max_steps, progress=progress)
    finally:
        rec.flush()
        rec.disconnect()
    return ConversionSummary("rerun", str(out), (str(out),), n_episodes, steps, out.stat().st_size, timer.seconds)


def spawn_viewer(data: Any, *, episodes: Sequence[int] | None = None, max_steps: int | None = None,
                 include_partial: bool = False, progress: Progress | None = None) -> ConversionSummary:
    """Open Rerun's native viewer (a window) and stream the episodes into it.

    Raises:
        SettingsError: there is no display to open a window on (use :func:`serve_web` or :func:`save_rrd`).
    """
    if os.name == "posix" and not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")) \
            and not Path("/System").exists():  # macOS has no DISPLAY and needs none
        raise SettingsError("no display to open the viewer window on (DISPLAY is not set); serve the web viewer "
                            "(`trajarena view DATA --web`) or write a file (`--save out.rrd`) instead.")
    timer = Timer()
    ds = _dataset(data, include_partial)
    rec = _stream(data)
    rec.spawn()
    n_episodes, steps = log_trajectories(ds, rec, episodes=episodes, max_steps=max_steps, progress=progress)
    rec.flush()
    return ConversionSummary("rerun viewer", "native viewer", (), n_episodes, steps, 0, timer.seconds)


class WebViewer:
    """Rerun's web viewer serving a recording from this process (until the process ends).

    Attributes:
        url: the address to open in a browser.
        summary: what was logged.
    """

    def __init__(self, url: str, summary: ConversionSummary, rec: Any) -> None:
        self.url, self.summary, self._rec = url, summary, rec

    def __repr__(self) -> str:
        return f"WebViewer(url={self.url!r}, episodes={self.summary.episodes}, steps={self.summary.steps})"


def serve_web(data: Any, *, web_port: int = 9090, grpc_port: int = 9876, open_browser: bool = False,
              episodes: Sequence[int] | None = None, max_steps: int | None = None, include_partial: bool = False,
              progress: Progress | None = None) -> WebViewer:
    """Serve Rerun's web viewer on ``http://127.0.0.1:<web_port>`` with the episodes in it.

    The servers run in this process: keep it alive while the viewer is used (``trajarena view --web``
    waits for Ctrl-C).
    """
    rr = _rerun()
    timer = Timer()
    ds = _dataset(data, include_partial)
    rec = _stream(data)
    uri = rec.serve_grpc(grpc_port=grpc_port)
    n_episodes, steps = log_trajectories(ds, rec, episodes=episodes, max_steps=max_steps, progress=progress)
    rec.flush()
    from urllib.parse import quote

    url = f"http://127.0.0.1:{web_port}/?url={quote(uri, safe='')}"
    rr.serve_web_viewer(web_port=web_port, open_browser=open_browser, connect_to=uri)
    return WebViewer(url, ConversionSummary("rerun web viewer", url, (), n_episodes, steps, 0, timer.seconds), rec)
