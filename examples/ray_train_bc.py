"""Behavioural cloning on a Ray cluster: record with Ray tasks, read with Ray Data, train with Ray Train.

1. ``record_ray`` plays expert episodes of the built-in game as Ray tasks (only when ``--data``
   holds no trajectory file yet);
2. ``read_trajectories`` gives their decoded transitions as a ``ray.data.Dataset``, read by tasks
   that split the work by file or episode;
3. Ray Train's ``TorchTrainer`` starts ``--workers`` training workers; each iterates its shard of the
   dataset (``ray.train.get_dataset_shard``) and DDP (gloo on CPU) averages the gradients. Rank 0
   reports the trained policy as Ray Train's checkpoint, saved as a trajarena policy file
   (``--out``), which ``trajarena evaluate`` and ``trajarena play --p2`` take.

The policy learns from the raw recorded observations: Ray Data rows are the recorded stream, so
record without wrappers (as step 1 does) or re-apply them in the training loop.

    python examples/ray_train_bc.py --data data/ray_bc --workers 2 --epochs 3        # a local cluster
    python examples/ray_train_bc.py --address HEAD:6379 --data /shared/duel ...      # a running cluster
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import shutil
import tempfile

import numpy as np


@dataclasses.dataclass
class Args:
    data: str = "data/ray_bc"  # folder of trajectory files (recorded first when it holds none)
    record_episodes: int = 8  # episodes to record when the folder holds none
    address: str = ""  # Ray cluster address ("": Ray's default; "local": a new local cluster)
    workers: int = 2  # Ray Train workers (DDP ranks)
    cpus_per_worker: float = 1.0
    epochs: int = 3
    batch_size: int = 256  # per worker
    lr: float = 1e-3
    max_rows: int = 0  # train on at most this many transitions (0: all of them)
    out: str = "ray_bc_policy.pt"
    storage: str = ""  # Ray Train's storage path ("": a temporary folder)
    seed: int = 0


def train_loop(config: dict) -> None:
    """One Ray Train worker: its shard of the transitions, DDP via ``prepare_model``, rank 0 saves."""
    import ray.train
    import ray.train.torch
    import torch
    import torch.nn.functional as F

    from trajarena.interop.ray import nest
    from trajarena.learn.policy import BCPolicy

    torch.set_num_threads(1)
    policy = BCPolicy.create(config["obs_space"], config["act_space"], seed=config["seed"], meta=config["meta"])
    policy.net.v_mean.copy_(torch.from_numpy(config["v_mean"]))
    policy.net.v_std.copy_(torch.from_numpy(config["v_std"]))
    net = ray.train.torch.prepare_model(policy.net)  # DistributedDataParallel over the workers
    opt = torch.optim.Adam(net.parameters(), lr=config["lr"])
    start = torch.tensor(policy.start)
    shard = ray.train.get_dataset_shard("train")
    for epoch in range(config["epochs"]):
        total = right = seen = 0.0
        for batch in shard.iter_batches(batch_size=config["batch_size"], batch_format="numpy"):
            image, vector = policy.encoder.encode(nest(batch)["obs"])
            target = torch.from_numpy(np.asarray(batch["action"]).reshape(len(vector), -1)) - start
            outs = net(None if image is None else torch.from_numpy(image), torch.from_numpy(vector))
            loss = sum(F.cross_entropy(o, target[:, j]) for j, o in enumerate(outs))
            opt.zero_grad()
            loss.backward()
            opt.step()
            total += loss.item() * len(vector)
            right += float(torch.stack([o.argmax(1) == target[:, j] for j, o in enumerate(outs)]).all(0).sum())
            seen += len(vector)
        metrics = {"epoch": epoch + 1, "loss": total / max(seen, 1), "accuracy": right / max(seen, 1),
                   "transitions": seen}
        with tempfile.TemporaryDirectory() as folder:
            checkpoint = None
            if epoch + 1 == config["epochs"] and ray.train.get_context().get_world_rank() == 0:
                policy.meta["trained"] = {"epochs": config["epochs"], "workers": config["workers"], "engine": "ray.train"}
                policy.save(os.path.join(folder, "policy.pt"))
                checkpoint = ray.train.Checkpoint.from_directory(folder)
            ray.train.report(metrics, checkpoint=checkpoint)  # every rank reports; rank 0 adds the policy at the end


def main(args: Args) -> None:
    import ray
    from ray.train import RunConfig, ScalingConfig
    from ray.train.torch import TorchTrainer

    import trajarena as arena
    from trajarena.interop.ray import nest, read_trajectories, record_ray
    from trajarena.learn.policy import ObsEncoder
    from trajarena.settings import WrappersSettings

    ray.init(address=args.address or None, include_dashboard=False, log_to_driver=False)
    if not any(p.endswith(".arrow") for _, _, names in os.walk(args.data) for p in names):
        settings = {"difficulty": 2, "step_ratio": 12, "frame_shape": (48, 72, 1)}
        print(record_ray("duel", "expert", episodes=args.record_episodes, out=args.data, settings=settings,
                         progress=False).format())
    files = arena.TrajectoryDataset(args.data)
    meta = files.file_metadata(0)
    obs_space, act_space = files.observation_space, files.action_space
    data = read_trajectories(args.data, next_obs=False)
    if args.max_rows:
        data = data.limit(args.max_rows)
    sample = data.take_batch(4096, batch_format="numpy")  # the vector normalisation, as train-bc does
    _, vector = ObsEncoder.from_space(obs_space).encode(nest(sample)["obs"])
    config = {"obs_space": obs_space, "act_space": act_space, "seed": args.seed, "lr": args.lr,
              "epochs": args.epochs, "batch_size": args.batch_size, "workers": args.workers,
              "v_mean": vector.mean(0), "v_std": np.maximum(vector.std(0), 1e-3),
              "meta": {"env_id": meta.get("env_id"), "env_settings": meta.get("env_settings"),
                       "wrappers_settings": WrappersSettings().to_dict(), "username": meta.get("username")}}
    trainer = TorchTrainer(
        train_loop, train_loop_config=config, datasets={"train": data},
        scaling_config=ScalingConfig(num_workers=args.workers, resources_per_worker={"CPU": args.cpus_per_worker}),
        run_config=RunConfig(name="trajarena_bc", storage_path=os.path.abspath(args.storage or tempfile.mkdtemp())))
    result = trainer.fit()
    with result.checkpoint.as_directory() as folder:
        shutil.copyfile(os.path.join(folder, "policy.pt"), args.out)
    print(f"trained on {files.n_episodes} episodes with {args.workers} Ray Train workers: "
          f"loss {result.metrics['loss']:.3f}, accuracy {result.metrics['accuracy']:.1%} (rank 0's share, last epoch)")
    print(f"saved {args.out}")
    ray.shutdown()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    for f in dataclasses.fields(Args):
        parser.add_argument(f"--{f.name.replace('_', '-')}", type=type(f.default), default=f.default)
    main(Args(**vars(parser.parse_args())))
