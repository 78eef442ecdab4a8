"""The demo report: a Markdown summary, matplotlib plots and a GIF of the cloned policy playing.

Every figure is drawn from the same result objects that :func:`~trajarena.learn.evaluate.evaluate` and
:func:`~trajarena.learn.bc.train_bc` return (and the table in the report is ``EvalResult.table()``), so
the report, the plots and what ``evaluate`` prints cannot disagree. ``results.json`` holds the
numbers behind every figure.

Needs the ``plots`` extra (matplotlib, Pillow).

>>> from trajarena.learn.evaluate import AgentEval, EvalResult
>>> result = EvalResult("duel", 5, 0, (AgentEval("bc", (3.0, 5.0), (9, 9), 3, 1), AgentEval("expert", (4.0, 6.0), (9, 9), 4, 0)))
>>> [(name, rate, round(lo, 2), round(hi, 2)) for name, rate, lo, hi in win_rate_rows(result)]
[('bc', 0.75, 0.3, 0.95), ('expert', 1.0, 0.51, 1.0)]
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from trajarena.errors import require

__all__ = ["plot_learning_curve", "plot_returns", "plot_win_rates", "record_gif", "seed_rows", "win_rate_rows",
           "write_report"]


def _plt():
    matplotlib = require("matplotlib", "plots", "Plotting the report")
    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    return plt


def win_rate_rows(result: Any) -> list[tuple[str, float, float, float]]:
    """(name, win rate, CI low, CI high) of every contender that finished a match."""
    return [(r.name, r.win_rate, *r.win_rate_ci) for r in result.results if r.win_rate is not None]


def seed_rows(policies: list[Any], seeds: list[int], result: Any) -> dict[str, Any]:
    """Each training seed's policy against the expert of ``result``: win rate, its CI, the ratio to the expert's.

    Returns ``{"rows": [...], "expert": rate, "mean", "min", "max", "std"}`` (ratios; None without matches).

    >>> from trajarena.learn.evaluate import AgentEval, EvalResult
    >>> expert = AgentEval("expert", (1.0,), (9,), 8, 2)
    >>> out = seed_rows([AgentEval("p", (1.0,), (9,), 6, 4), AgentEval("p", (1.0,), (9,), 8, 2)], [0, 1],
    ...                 EvalResult("duel", 5, 0, (expert,)))
    >>> round(out["mean"], 3), round(out["min"], 3), out["max"]
    (0.875, 0.75, 1.0)
    """
    expert = next((r.win_rate for r in result.results if r.name == "expert"), None)
    rows = []
    for seed, p in zip(seeds, policies, strict=True):
        rel = None if p.win_rate is None or not expert else p.win_rate / expert
        lo, hi = p.win_rate_ci if p.win_rate is not None else (None, None)
        rows.append({"seed": seed, "win_rate": p.win_rate, "ci": [lo, hi], "relative": rel,
                     "mean_return": p.mean_return, "matches": p.matches})
    rels = [r["relative"] for r in rows if r["relative"] is not None]
    stats = {"mean": float(np.mean(rels)), "min": min(rels), "max": max(rels),
             "std": float(np.std(rels, ddof=1)) if len(rels) > 1 else 0.0} if rels else \
        {"mean": None, "min": None, "max": None, "std": None}
    return {"rows": rows, "expert": expert, **stats}


def _save(plt: Any, fig: Any, path: str | Path) -> Path:
    """Lay out, write and close a figure."""
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return Path(path)


def plot_learning_curve(history: Any, path: str | Path) -> Path:
    """Training/validation loss and accuracy per epoch (from ``TrainResult.history``)."""
    plt = _plt()
    epochs = [e.epoch for e in history]
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(9, 3.4))
    ax1.plot(epochs, [e.train_loss for e in history], "o-", label="train")
    ax2.plot(epochs, [e.train_accuracy for e in history], "o-", label="train")
    if any(e.val_loss is not None for e in history):
        ax1.plot(epochs, [e.val_loss for e in history], "s--", label="validation")
        ax2.plot(epochs, [e.val_accuracy for e in history], "s--", label="validation")
    ax1.set(xlabel="epoch", ylabel="cross-entropy (sum over heads)", title="BC loss")
    ax2.set(xlabel="epoch", ylabel="whole-action accuracy", title="BC accuracy", ylim=(0, 1))
    for ax in (ax1, ax2):
        ax.grid(alpha=0.3)
        ax.legend()
    return _save(plt, fig, path)


def plot_win_rates(result: Any, path: str | Path) -> Path:
    """Bar chart of each contender's match win rate with its Wilson 95 % interval."""
    plt = _plt()
    rows = win_rate_rows(result)
    fig, ax = plt.subplots(figsize=(5, 3.4))
    names = [r[0] for r in rows]
    rates = np.array([r[1] for r in rows])
    err = np.array([[r[1] - r[2] for r in rows], [r[3] - r[1] for r in rows]])
    ax.bar(names, rates, yerr=err if rows else None, capsize=6, color=["C0", "C2", "C3", "C1"][: len(rows)])
    for i, v in enumerate(rates):
        ax.text(i + 0.05, v + 0.02, f"{v:.0%}", ha="left", va="bottom", fontweight="bold")
    ax.set(ylabel="matches won / played", ylim=(0, 1.05),
           title=f"Win rate vs CPU ({result.env_id}, difficulty {result.difficulty})")
    ax.grid(axis="y", alpha=0.3)
    return _save(plt, fig, path)


def plot_returns(result: Any, path: str | Path) -> Path:
    """Episode returns of each contender on the same seeds (dots) with the mean and its 95 % interval."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(6, 3.4))
    for i, r in enumerate(result.results):
        x = np.full(len(r.returns), i) + np.linspace(-0.15, 0.15, len(r.returns))
        ax.scatter(x, r.returns, s=14, alpha=0.6, color=f"C{i}")
        lo, hi = r.return_ci
        if not math.isnan(lo):
            ax.errorbar([i + 0.3], [r.mean_return], yerr=[[r.mean_return - lo], [hi - r.mean_return]], fmt="D",
                        color="black", capsize=5)
        else:
            ax.plot([i + 0.3], [r.mean_return], "D", color="black")
    ax.set_xticks(range(len(result.results)), [r.name for r in result.results])
    ax.set(ylabel="episode return", title="Episode returns (same seeds); diamond: mean ± 95% CI")
    ax.grid(axis="y", alpha=0.3)
    return _save(plt, fig, path)


def record_gif(policy: Any, path: str | Path, seed: int = 0, max_steps: int = 400, every: int = 1,
               fps: int = 10, difficulty: int | None = None, scale: int = 2) -> Path:
    """Play one episode (up to ``max_steps``) with a BC policy and save the full-colour frames as a GIF.

    ``scale`` enlarges the native frames (nearest neighbour); ``every`` keeps every n-th frame.
    """
    require("PIL", "plots", "Writing the GIF")
    from PIL import Image

    from trajarena.learn.bc import BCPolicy, PolicyAgent

    policy = policy if isinstance(policy, BCPolicy) else BCPolicy.load(policy)
    overrides = {} if difficulty is None else {"difficulty": difficulty}
    env = policy.make_env(render_mode="rgb_array", **overrides)
    agent = PolicyAgent(policy, env)
    frames = []
    try:
        obs, info = env.reset(seed=seed)
        frames.append(env.render())
        for t in range(max_steps):
            obs, _, terminated, truncated, info = env.step(agent.act(obs, info))
            if t % every == 0:
                frames.append(env.render())
            if terminated or truncated:
                break
    finally:
        env.close()
    images = [Image.fromarray(np.asarray(f)) for f in frames if f is not None]
    if scale > 1:
        images = [im.resize((im.width * scale, im.height * scale), Image.NEAREST) for im in images]
    path = Path(path)
    images[0].save(path, save_all=True, append_images=images[1:], duration=int(1000 / fps), loop=0, optimize=True)
    return path


def _fmt_settings(d: Mapping[str, Any] | None, defaults: Mapping[str, Any]) -> str:
    """The settings that differ from their defaults, as Markdown code spans."""
    changed = {k: v for k, v in (d or {}).items() if k not in defaults or _norm(defaults[k]) != _norm(v)}
    return ", ".join(f"`{k}={v}`" for k, v in changed.items()) or "defaults"


def _norm(v: Any) -> Any:
    return [_norm(x) for x in v] if isinstance(v, list | tuple) else v


def _defaults(env_id: str | None) -> tuple[dict[str, Any], dict[str, Any]]:
    from trajarena.settings import EnvironmentSettings, WrappersSettings

    env = EnvironmentSettings().to_dict() if env_id == "duel" else {}
    return env, WrappersSettings().to_dict()


def write_report(out: str | Path, record_summary: Any, train_result: Any, eval_result: Any,
                 gif: str | Path | None = None, policy_meta: Mapping[str, Any] | None = None,
                 timings: Mapping[str, float] | None = None, seeds: Mapping[str, Any] | None = None) -> Path:
    """Write ``report.md``, ``learning_curve.png``, ``win_rates.png``, ``returns.png`` and ``results.json``.

    Args:
        out: the output folder.
        record_summary: a :class:`~trajarena.learn.rollout.RecordSummary`.
        train_result: a :class:`~trajarena.learn.bc.TrainResult`.
        eval_result: an :class:`~trajarena.learn.evaluate.EvalResult` (policy first, then expert, random).
        gif: the GIF of the cloned policy, if one was written.
        policy_meta: the policy's metadata (settings shown in the report).
        timings: seconds per stage, shown in the report.
        seeds: :func:`seed_rows` of every training seed's policy (a table with their mean and spread).

    Returns:
        The path of ``report.md``.
    """
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    plot_learning_curve(train_result.history, out / "learning_curve.png")
    has_matches = bool(win_rate_rows(eval_result))
    if has_matches:
        plot_win_rates(eval_result, out / "win_rates.png")
    plot_returns(eval_result, out / "returns.png")
    meta = dict(policy_meta or {})
    env_defaults, wrappers_defaults = _defaults(meta.get("env_id"))
    rel = eval_result.relative_win_rate() if has_matches and len(eval_result.results) > 1 else None
    final = train_result.final
    lines = [
        "# trajarena demo: behavioural cloning on `duel`",
        "",
        f"An expert agent played **{record_summary.episodes} episodes** of `{record_summary.env_id}` in "
        f"{record_summary.workers} parallel recording processes; a CNN+MLP policy was cloned from the files "
        "and evaluated against the CPU next to the expert and a random agent, on the same seeds.",
        "",
        "## Data",
        "",
        "| episodes | steps | files | size | bytes/step | recording speed | expert win rate while recording |",
        "|---:|---:|---:|---:|---:|---:|---:|",
        f"| {record_summary.episodes} | {record_summary.steps:,} | {len(record_summary.files)} | "
        f"{record_summary.bytes / 1e6:.2f} MB | {record_summary.bytes / max(record_summary.steps, 1):.0f} | "
        f"{record_summary.steps_per_second:,.0f} steps/s | "
        f"{'-' if record_summary.win_rate is None else f'{record_summary.win_rate:.1%}'} |",
        "",
        f"Env settings: {_fmt_settings(meta.get('env_settings'), env_defaults)}. "
        f"Wrappers settings (stored in the files, re-applied by the loader and at evaluation): "
        f"{_fmt_settings(meta.get('wrappers_settings'), wrappers_defaults)}.",
        "",
        "## Training",
        "",
        f"{train_result.train_steps:,} training steps and {train_result.val_steps:,} validation steps "
        f"({train_result.episodes} episodes, validation split by episode), {len(train_result.history)} epochs in "
        f"{train_result.seconds:.1f} s (loading included). Final: loss {final.train_loss:.3f}, accuracy "
        f"{final.train_accuracy:.1%}"
        + ("" if final.val_loss is None else f"; validation loss {final.val_loss:.3f}, accuracy {final.val_accuracy:.1%}")
        + ".",
        "",
        "![learning curve](learning_curve.png)",
        "",
        *_dagger_lines(train_result),
        "## Evaluation",
        "",
        "```",
        eval_result.table(),
        "```",
        "",
    ]
    if rel is not None:
        lines += [f"The cloned policy reaches **{rel:.1%} of the expert's win rate** on the same seeds.", ""]
    lines += _seed_lines(seeds)
    if has_matches:
        lines += ["![win rates](win_rates.png)", ""]
    lines += ["![episode returns](returns.png)", ""]
    if gif is not None:
        lines += ["## The cloned policy playing", "", f"![cloned policy]({Path(gif).name})", ""]
    if timings:
        lines += ["## Timings", "", "| stage | seconds |", "|---|---:|"]
        lines += [f"| {k} | {v:.1f} |" for k, v in timings.items()]
        lines.append("")
    (out / "report.md").write_text("\n".join(lines))
    results = {"record": record_summary.to_dict(), "train": train_result.to_dict(), "evaluate": eval_result.to_dict(),
               "seeds": dict(seeds or {}), "timings": dict(timings or {})}
    (out / "results.json").write_text(json.dumps(results, indent=2, default=str))
    return out / "report.md"


def _pct(v: float | None) -> str:
    return "-" if v is None else f"{v:.1%}"


def _dagger_lines(train_result: Any) -> list[str]:
    """The DAgger rounds as a learning curve: the learner's agreement with the expert and its play, per round."""
    rounds = getattr(train_result, "dagger", ())
    if not rounds:
        return []
    lines = ["### DAgger rounds", "",
             "Each round the policy played against the CPU, the expert labelled every state it visited "
             "(info column `expert_action` of ordinary trajectory files), and training went on with those steps "
             "added. *Agreement*: the policy's actions that equal the expert's label, on the states it visited.", "",
             "| round | episodes played | steps | agreement with the expert | learner win rate | mean return | "
             "validation accuracy after | steps aggregated | seconds |",
             "|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in rounds:
        lines.append(f"| {r.round} | {r.episodes} | {r.steps:,} | {r.agreement:.1%} | {_pct(r.win_rate)} | "
                     f"{r.mean_return:.1f} | {_pct(r.val_accuracy)} | {r.data_steps:,} | {r.seconds:.0f} |")
    return [*lines, ""]


def _seed_lines(seeds: Mapping[str, Any] | None) -> list[str]:
    """The policies of every training seed against the expert, with their mean and spread."""
    if not seeds or not seeds.get("rows"):
        return []
    lines = ["### Training seeds", "",
             f"Win rate against the CPU on the same held-out seeds (expert: {_pct(seeds.get('expert'))}); "
             "95 % Wilson intervals over the matches played.", "",
             "| training seed | win rate | 95 % CI | of the expert's win rate | mean return |", "|---:|---:|---:|---:|---:|"]
    for r in seeds["rows"]:
        ci = "-" if r["ci"][0] is None else f"{r['ci'][0]:.2f}–{r['ci'][1]:.2f}"
        lines.append(f"| {r['seed']} | {_pct(r['win_rate'])} | {ci} | {_pct(r['relative'])} | {r['mean_return']:.1f} |")
    if len(seeds["rows"]) > 1 and seeds.get("mean") is not None:
        lines += ["", f"Mean over {len(seeds['rows'])} seeds: **{seeds['mean']:.1%} of the expert's win rate** "
                  f"(standard deviation {seeds['std']:.1%}, min {seeds['min']:.1%}, max {seeds['max']:.1%})."]
    return [*lines, ""]
