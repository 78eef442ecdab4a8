"""``python -m trajarena.demo --out demo_out`` (what ``make demo`` runs): record, clone, evaluate, report.

1. An expert agent plays ``duel`` against the CPU in parallel headless recording processes; the
   files store the wrappers settings (a small greyscale frame, two stacked frames).
2. A CNN+MLP policy is cloned from the files (the loader re-applies the stored wrappers; frames are
   streamed from disk, so memory stays flat), then improved by DAgger rounds: it plays, the expert
   labels the states it visits, training goes on with them aggregated. ``--seeds N`` trains N policies.
3. The policies, the expert and a random agent play the same held-out seeds against the CPU, in
   parallel worker processes.
4. ``report.md`` with the learning curve, the DAgger rounds, win rates (per training seed, with their
   mean and spread), episode returns and a GIF of the policy.

Outputs in ``--out``: ``data/`` (trajectory files), ``policy.pt``, ``report.md``, ``*.png``,
``bc_policy.gif`` and ``results.json`` (the numbers behind every figure).

>>> demo_config(quick=True).episodes
6
"""

from __future__ import annotations

import argparse
import re
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from trajarena.errors import SettingsError

__all__ = ["DemoConfig", "demo_config", "main", "run_demo"]

#: Env settings of the demo: the agent plays P1 against the CPU tower at a fixed difficulty.
DEMO_SETTINGS: dict[str, Any] = {"difficulty": 5, "role": "P1", "frame_shape": (48, 96, 1)}
#: Wrappers settings stored in the files and re-applied by the loader and at evaluation.
DEMO_WRAPPERS: dict[str, Any] = {"stack_frames": 2}
#: The ``--strong`` recipe: larger frames (a pose or a gap near a reach threshold is more than a pixel
#: or two), longer BC and three DAgger rounds; about 6 min a training seed on 2 cores, against ~2 min.
STRONG: dict[str, Any] = {"epochs": 10, "dagger_rounds": 3, "dagger_epochs": 3,
                          "settings": {**DEMO_SETTINGS, "frame_shape": (64, 128, 1)}}


@dataclass(frozen=True)
class DemoConfig:
    """Budget and settings of the demo (the README gives the time and memory measured with the defaults).

    Args:
        out: output folder.
        episodes: expert episodes recorded (seeds ``seed .. seed + episodes - 1``).
        workers: processes for recording, for the DAgger rounds' play and for evaluation.
        epochs: BC training epochs (before the DAgger rounds).
        batch_size: BC batch size.
        threads: torch threads while training (2: both cores of an idle 2-core machine; 1 on a busy one).
        dagger_rounds: DAgger rounds after BC (0: plain BC).
        dagger_episodes: episodes the policy plays per DAgger round (seeds from 1,000,000).
        dagger_epochs: training epochs per DAgger round, over all the data gathered so far.
        seeds: training seeds (``seed``, ``seed + 1``, ...): one policy each, all evaluated.
        eval_episodes: episodes per contender at evaluation (held-out seeds from ``eval_seed``).
        difficulty: CPU difficulty (recording and evaluation).
        seed: first recording seed; also seeds training.
        eval_seed: first evaluation seed (distinct from the recorded ones).
        gif_steps: length of the GIF, in env steps.

    Raises:
        SettingsError: a count below 1, a seed below 0 or a difficulty outside 1-8.
    """

    out: str = "demo_out"
    episodes: int = 120
    workers: int = 2
    epochs: int = 8
    batch_size: int = 128
    threads: int = 2
    dagger_rounds: int = 2
    dagger_episodes: int = 40
    dagger_epochs: int = 2
    seeds: int = 1
    eval_episodes: int = 40
    difficulty: int = 5
    seed: int = 0
    eval_seed: int = 10_000
    gif_steps: int = 300
    settings: dict[str, Any] = field(default_factory=lambda: dict(DEMO_SETTINGS))
    wrappers_settings: dict[str, Any] = field(default_factory=lambda: dict(DEMO_WRAPPERS))

    def __post_init__(self) -> None:
        limits = {"episodes": (1, None), "workers": (1, None), "epochs": (1, None), "batch_size": (1, None),
                  "threads": (1, None), "dagger_rounds": (0, None), "dagger_episodes": (1, None),
                  "dagger_epochs": (1, None),
                  "seeds": (1, None), "eval_episodes": (1, None), "difficulty": (1, 8), "seed": (0, None), "eval_seed": (0, None),
                  "gif_steps": (1, None)}
        for name, (low, high) in limits.items():
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < low or (high is not None and value > high):
                wanted = f"an integer in [{low}, {high}]" if high is not None else f"an integer >= {low}"
                raise SettingsError(f"DemoConfig.{name} must be {wanted}, got {value!r}.")
        if not isinstance(self.out, str | Path) or not str(self.out):
            raise SettingsError(f"DemoConfig.out must be a folder path, got {self.out!r}.")


def demo_config(quick: bool = False, strong: bool = False, **overrides: Any) -> DemoConfig:
    """The default demo configuration; ``strong``: the :data:`STRONG` recipe; ``quick``: a tiny budget for smoke tests.

    >>> demo_config(strong=True).settings["frame_shape"], demo_config(strong=True).dagger_rounds
    ((64, 128, 1), 3)
    """
    cfg = replace(DemoConfig(), **STRONG) if strong else DemoConfig()
    if quick:
        cfg = replace(cfg, episodes=6, epochs=2, dagger_rounds=1, dagger_episodes=2, dagger_epochs=1, eval_episodes=2,
                      gif_steps=30)
    return replace(cfg, **{k: v for k, v in overrides.items() if v is not None})


def _clear_data(folder: Path) -> None:
    """Remove trajectory files of an earlier demo run (only trajectory files, nothing else)."""
    if folder.is_dir():
        for f in folder.rglob("*.arrow*"):
            if f.is_file():
                f.unlink()


def run_demo(cfg: DemoConfig, progress: bool = True) -> dict[str, Any]:
    """Run the whole demo; return the summaries, the evaluation and the timings.

    Stage lines and the evaluation table are printed; ``progress`` switches the progress bars.
    """
    from trajarena.learn.bc import BCPolicy, train_bc
    from trajarena.learn.evaluate import evaluate
    from trajarena.learn.rollout import record
    from trajarena.demo.report import record_gif, seed_rows, write_report

    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    data = out / "data"
    _clear_data(data)
    settings = {**cfg.settings, "difficulty": cfg.difficulty}
    timings: dict[str, float] = {}
    say = print  # stage lines and the table always; ``progress`` only switches the bars

    say(f"[1/4] recording {cfg.episodes} expert episodes of duel in {cfg.workers} processes -> {data}")
    t = time.perf_counter()
    summary = record("duel", "expert", cfg.episodes, cfg.workers, data, settings=settings,
                     wrappers_settings=cfg.wrappers_settings, username="demo", seed=cfg.seed, progress=progress)
    timings["record"] = time.perf_counter() - t
    say(summary.format())

    dagger = f" + {cfg.dagger_rounds} DAgger round(s) of {cfg.dagger_episodes} episodes" if cfg.dagger_rounds else ""
    say(f"[2/4] behavioural cloning{dagger} from {len(summary.files)} files, {cfg.seeds} training seed(s) -> {out}")
    t = time.perf_counter()
    trained = []
    for i in range(cfg.seeds):
        path = out / ("policy.pt" if i == 0 else f"policy-seed{cfg.seed + i}.pt")
        trained.append(train_bc(data, path, epochs=cfg.epochs, batch_size=cfg.batch_size, seed=cfg.seed + i,
                                progress=progress, threads=cfg.threads, dagger_rounds=cfg.dagger_rounds,
                                dagger={"episodes": cfg.dagger_episodes, "epochs": cfg.dagger_epochs,
                                        "workers": cfg.workers}))
        e = trained[-1].final
        say(f"seed {cfg.seed + i}: {len(trained[-1].history)} epochs on {trained[-1].train_steps:,} expert steps in "
            f"{trained[-1].seconds:.0f} s: accuracy {e.train_accuracy:.1%}"
            + ("" if e.val_accuracy is None else f", validation {e.val_accuracy:.1%}"))
    timings["train (load + fit + DAgger)"] = time.perf_counter() - t

    say(f"[3/4] evaluating the policies, the expert and a random agent on {cfg.eval_episodes} held-out seeds")
    t = time.perf_counter()
    result = evaluate(trained[0].path, "duel", episodes=cfg.eval_episodes, difficulty=cfg.difficulty,
                      seed=cfg.eval_seed, progress=progress, workers=cfg.workers)
    others = [evaluate(r.path, "duel", episodes=cfg.eval_episodes, difficulty=cfg.difficulty, seed=cfg.eval_seed,
                       progress=progress, workers=cfg.workers, baselines=()).results[0] for r in trained[1:]]
    timings["evaluate"] = time.perf_counter() - t
    say(result.table())
    seeds = seed_rows([result.results[0], *others], [cfg.seed + i for i in range(cfg.seeds)], result)
    if len(seeds["rows"]) > 1:
        say(f"over {len(seeds['rows'])} training seeds: {seeds['mean']:.1%} of the expert's win rate on average "
            f"(min {seeds['min']:.1%}, max {seeds['max']:.1%})")

    say("[4/4] writing the report, plots and GIF")
    t = time.perf_counter()
    policy = BCPolicy.load(trained[0].path)
    gif = record_gif(policy, out / "bc_policy.gif", seed=cfg.eval_seed, max_steps=cfg.gif_steps, difficulty=cfg.difficulty)
    timings["report"] = time.perf_counter() - t
    timings["total"] = sum(timings.values())
    report = write_report(out, summary, trained[0], result, gif=gif, policy_meta=policy.meta, timings=timings,
                          seeds=seeds)
    say(f"done in {timings['total']:.0f} s: {report}")
    return {"record": summary, "train": trained[0], "trained": trained, "evaluate": result, "seeds": seeds,
            "report": report, "timings": timings, "config": asdict(cfg)}


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point (``python -m trajarena.demo``)."""
    p = argparse.ArgumentParser(prog="python -m trajarena.demo", description=__doc__.split("\n\n")[0])
    p.add_argument("--out", default="demo_out", help="output folder (default: demo_out)")
    p.add_argument("--episodes", type=int, help="expert episodes to record (default 120)")
    p.add_argument("--workers", type=int, help="processes for recording, DAgger play and evaluation (default 2)")
    p.add_argument("--epochs", type=int, help="BC epochs before DAgger (default 8)")
    p.add_argument("--threads", type=int, help="torch threads while training (default 2; 1 on a busy machine)")
    p.add_argument("--dagger-rounds", type=int, help="DAgger rounds after BC, 0 for plain BC (default 2)")
    p.add_argument("--dagger-episodes", type=int, help="episodes the policy plays per DAgger round (default 40)")
    p.add_argument("--dagger-epochs", type=int, help="training epochs per DAgger round (default 2)")
    p.add_argument("--strong", action="store_true",
                   help="64x128 frames, 10 epochs, 3 DAgger rounds of 3 epochs: ~95%% of the expert, ~6 min a seed")
    p.add_argument("--seeds", type=int, help="training seeds, one policy each (default 1)")
    p.add_argument("--eval-episodes", type=int, help="evaluation episodes per agent (default 40)")
    p.add_argument("--difficulty", type=int, help="CPU difficulty 1-8 (default 5)")
    p.add_argument("--seed", type=int, help="first recording seed (default 0)")
    p.add_argument("--quick", action="store_true", help="a tiny budget, for smoke tests")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    args = p.parse_args(argv)
    try:
        cfg = demo_config(args.quick, args.strong, out=args.out, episodes=args.episodes, workers=args.workers,
                          epochs=args.epochs, threads=args.threads, dagger_rounds=args.dagger_rounds,
                          dagger_episodes=args.dagger_episodes, dagger_epochs=args.dagger_epochs, seeds=args.seeds,
                          eval_episodes=args.eval_episodes, difficulty=args.difficulty, seed=args.seed)
    except SettingsError as exc:
        option = re.sub(r"DemoConfig\.(\w+)", lambda m: "--" + m[1].replace("_", "-"), str(exc))
        p.error(option)  # usage + message, exit code 2
    run_demo(cfg, progress=not args.no_progress)
    return 0

