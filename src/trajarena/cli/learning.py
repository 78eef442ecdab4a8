"""``trajarena record | train-bc | evaluate``: record agents, train a policy on the files, measure it.

The commands call :func:`trajarena.learn.rollout.record` (or, with ``--ray``,
:func:`trajarena.interop.ray.record_ray`), :func:`trajarena.learn.bc.train_bc` (``dagger``: with DAgger
rounds) and :func:`trajarena.learn.evaluate.evaluate` and print their summaries. ``train-bc`` also runs
under ``torchrun --nproc_per_node N`` (one process per rank; rank 0 prints and saves).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

from trajarena.cli.app import PathArg, SettingOpt, WrapperOpt, app, console, parse_pairs, typer
from trajarena.errors import SettingsError

__all__ = ["dagger", "evaluate", "record", "train_bc"]


@app.command()
def record(
    env_id: Annotated[str, typer.Argument(help="'duel' or a Gymnasium id.")] = "duel",
    agent: Annotated[list[str] | None, typer.Option("--agent", "-a", help="Agent name (expert, random) or a .pt policy; twice for P1 and P2 in 2-player mode.")] = None,
    episodes: Annotated[int, typer.Option("--episodes", "-n", min=1, help="Episodes in total.")] = 10,
    workers: Annotated[int | None, typer.Option("--workers", "-j", min=1, max=4096, help="Parallel processes, each a rank writing its own files (default 1); with --ray, Ray tasks running at once (default: the cluster's CPUs).")] = None,
    out: Annotated[str, typer.Option("--out", "-o", help="Folder for the trajectory files; with --ray also a pyarrow.fs URI (s3://bucket/prefix, gs://..., file:///...).")] = "data",
    username: Annotated[str, typer.Option(help="Stored in every file.")] = "trajarena",
    seed: Annotated[int, typer.Option(min=0, help="Episode i uses seed + i (evaluate uses 10000 + i: held-out seeds).")] = 0,
    ignore_p2: Annotated[int, typer.Option(min=0, max=1, help="1: P2's side is not a demonstration.")] = 0,
    progress: Annotated[bool, typer.Option("--progress/--no-progress", help="Show a progress bar.")] = True,
    ray: Annotated[str | None, typer.Option("--ray", metavar="[ADDRESS]", help="Run the episodes as Ray tasks on the cluster at ADDRESS (HOST:PORT, ray://HOST:PORT, auto, local); --ray alone: Ray's default (RAY_ADDRESS, a cluster `ray start` started on this machine, else a new local one). Put it after the env id. Needs 'trajarena[ray]'.")] = None,
    setting: SettingOpt = None,
    wrapper: WrapperOpt = None,
) -> None:
    """Record agents playing, headless, in parallel processes or on a Ray cluster, with a progress bar and a summary."""
    from trajarena.learn.rollout import record as run_record

    agents = agent or ["expert"]
    common = dict(episodes=episodes, settings=parse_pairs(setting, "setting") or None,
                  wrappers_settings=parse_pairs(wrapper, "wrapper") or None, username=username, seed=seed,
                  progress=progress, traj_rec_settings={"ignore_p2": ignore_p2})
    who = agents[0] if len(agents) == 1 else agents
    if ray is not None:
        from trajarena.interop.ray import record_ray

        summary = record_ray(env_id, who, out=out, address=ray or None, workers=workers, **common)
    elif "://" in out:
        raise SettingsError(f"--out {out} is a URI: recording to a filesystem URI needs --ray (a local cluster "
                            "will do: add --ray); without it, --out is a folder.")
    else:
        summary = run_record(env_id, who, workers=workers or 1, out=Path(out), **common)
    console.print(summary.format(), highlight=False, markup=False)
    if summary.interrupted:
        raise typer.Exit(130)  # the shell's code for a Ctrl-C


@app.command("train-bc")
def train_bc(
    data: PathArg,
    out: Annotated[Path, typer.Option("--out", "-o", help="Where the policy goes (.pt).")] = Path("policy.pt"),
    epochs: Annotated[int, typer.Option(min=1, help="Passes over the training steps.")] = 10,
    batch_size: Annotated[int, typer.Option(min=1, help="Steps per gradient step.")] = 128,
    lr: Annotated[float, typer.Option(min=1e-12, help="Adam learning rate (cosine decay to 0).")] = 1e-3,
    val_fraction: Annotated[float, typer.Option(min=0, max=0.9, help="Fraction of episodes held out for validation.")] = 0.1,
    seed: Annotated[int, typer.Option(min=0, help="Seeds initialisation, split and batch order.")] = 0,
    max_steps: Annotated[int | None, typer.Option(min=1, help="Use at most this many steps.")] = None,
    progress: Annotated[bool, typer.Option("--progress/--no-progress", help="Show a progress bar.")] = True,
    interventions: Annotated[str, typer.Option(help="all: every step; only: the steps where a human took over from the agent (trajarena play's take-over key).")] = "all",
    intervention_weight: Annotated[float, typer.Option(min=1e-6, help="Loss weight of the steps where a human took over (1: no weighting).")] = 1.0,
    perspective: Annotated[str, typer.Option(help="Two-player files: both, P1 or P2 (whose steps to learn from).")] = "both",
    mirror: Annotated[bool, typer.Option("--mirror/--no-mirror", help="Learn P2's side mirrored, as P1 sees the game (fighting games).")] = False,
    stream: Annotated[bool, typer.Option("--stream/--in-memory", help="Read frames per batch from a file of encoded rows (flat memory) or hold them in RAM.")] = True,
    wrapper: WrapperOpt = None,
) -> None:
    """Behavioural cloning from trajectory files (PyTorch, CPU), with the files' own wrappers settings.

    Data-parallel on N processes: torchrun --nproc_per_node N -m trajarena.cli train-bc DATA ...
    """
    from trajarena.learn.bc import train_bc as run_train

    result = run_train(data, out=out, epochs=epochs, batch_size=batch_size, lr=lr, val_fraction=val_fraction,
                       seed=seed, wrappers_settings=parse_pairs(wrapper, "wrapper") or None, max_steps=max_steps,
                       progress=progress, stream=stream, interventions=interventions,
                       intervention_weight=intervention_weight, loader_options={"perspective": perspective, "mirror": mirror})
    from trajarena.learn.distributed import is_main_process

    if not is_main_process():  # under torchrun, rank 0 reports for all
        return
    _print_trained(result)


@app.command()
def dagger(
    data: PathArg,
    out: Annotated[Path, typer.Option("--out", "-o", help="Where the policy goes (.pt).")] = Path("policy.pt"),
    epochs: Annotated[int, typer.Option(min=1, help="Epochs of plain BC before the rounds.")] = 10,
    rounds: Annotated[int, typer.Option(min=1, help="DAgger rounds: the policy plays, the expert labels, training goes on.")] = 2,
    episodes: Annotated[int, typer.Option("--episodes", "-n", min=1, help="Episodes the policy plays per round.")] = 20,
    round_epochs: Annotated[int, typer.Option(min=1, help="Training epochs per round, over all the data so far.")] = 3,
    workers: Annotated[int, typer.Option("--workers", "-j", min=1, max=256, help="Processes playing the policy's episodes.")] = 1,
    labelled: Annotated[Path | None, typer.Option(help="Keep the labelled trajectory files here (round-<r>/).")] = None,
    batch_size: Annotated[int, typer.Option(min=1, help="Steps per gradient step.")] = 128,
    seed: Annotated[int, typer.Option(min=0, help="Seeds initialisation, split and batch order.")] = 0,
    progress: Annotated[bool, typer.Option("--progress/--no-progress", help="Show progress bars.")] = True,
) -> None:
    """BC, then DAgger rounds: the policy plays, the expert labels the states it visits (info 'expert_action')."""
    from trajarena.learn.bc import train_bc as run_train

    cfg = {"episodes": episodes, "epochs": round_epochs, "workers": workers,
           "out": None if labelled is None else str(labelled)}
    result = run_train(data, out=out, epochs=epochs, batch_size=batch_size, seed=seed, progress=progress,
                       dagger_rounds=rounds, dagger=cfg)
    for r in result.dagger:
        wr = "" if r.win_rate is None else f", win rate {r.win_rate:.1%}"
        console.print(f"round {r.round}: agreement with the expert {r.agreement:.1%} on {r.steps:,} steps{wr}",
                      highlight=False)
    _print_trained(result)


def _print_trained(result: Any) -> None:
    last = result.final
    val = "" if last.val_accuracy is None else f", validation loss {last.val_loss:.3f} accuracy {last.val_accuracy:.1%}"
    console.print(
        f"trained on {result.train_steps:,} steps of {result.episodes} episodes in {result.seconds:.0f} s: "
        f"train loss {last.train_loss:.3f} accuracy {last.train_accuracy:.1%}{val}\nsaved {result.path}",
        highlight=False,
    )


@app.command()
def evaluate(
    policy: Annotated[str, typer.Argument(help="A .pt policy from train-bc, or an agent name (expert, random).")],
    env: Annotated[str | None, typer.Option("--env", help="Env id; the policy's own by default.")] = None,
    episodes: Annotated[int, typer.Option("--episodes", "-n", min=1, help="Episodes per contender.")] = 10,
    difficulty: Annotated[int | None, typer.Option(min=1, max=8, help="CPU difficulty (duel).")] = None,
    seed: Annotated[int, typer.Option(min=0, help="Episode i uses seed + i for every contender; the default keeps clear of record's seeds (0, 1, ...).")] = 10_000,
    baseline: Annotated[list[str] | None, typer.Option("--baseline", "-b", help="Agents played on the same seeds (default: expert, random).")] = None,
    json_out: Annotated[Path | None, typer.Option("--json", help="Also write the results as JSON.")] = None,
    workers: Annotated[int, typer.Option("--workers", "-j", min=1, max=256, help="Processes playing the episodes (same results as 1).")] = 1,
    progress: Annotated[bool, typer.Option("--progress/--no-progress", help="Show a progress bar.")] = True,
) -> None:
    """Win rate and mean return (with 95% confidence intervals) next to the expert's and random's, same seeds."""
    from trajarena.learn.evaluate import evaluate as run_evaluate

    result = run_evaluate(policy, env_id=env, episodes=episodes, difficulty=difficulty, seed=seed,
                          baselines=tuple(baseline) if baseline else ("expert", "random"), workers=workers,
                          progress=progress)
    print(result.table())
    if json_out is not None:
        json_out.write_text(json.dumps(result.to_dict(), indent=2))
