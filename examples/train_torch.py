"""Data-parallel training on CPU: 2 ranks (torch.distributed, gloo), each fed by one
``streaming_split`` iterator of the same dataset.

    python examples/train_torch.py [--rows 200000] [--epochs 2]

The driver builds the dataset and splits it; ``torch.multiprocessing.spawn`` starts the
ranks and hands each its ``DataIterator`` (pickled: it reaches the driver's coordinator over
a local socket and reads blocks from shared memory). Every epoch is one execution of the
dataset: each rank gets an equal share (so both run the same number of steps), shuffled
through a local buffer with a new order per epoch. Each rank prints its loss per epoch and
its ingest stats: how long the training loop waited for data, per batch and in total.
"""

from __future__ import annotations

import argparse
import socket
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch.nn.parallel import DistributedDataParallel

import engine as ed

WORLD_SIZE = 2
FEATURES = 8
TRUE_WEIGHTS = np.linspace(-1.0, 1.0, FEATURES).astype(np.float32)


def make_examples(batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Features and a noisy linear target, drawn from each row's id (reproducible)."""
    rng = np.random.default_rng(int(batch["id"][0]))
    x = rng.normal(size=(len(batch["id"]), FEATURES)).astype(np.float32)
    y = x @ TRUE_WEIGHTS + 0.05 * rng.normal(size=len(x)).astype(np.float32)
    return {"x": x, "y": y.astype(np.float32)}


def train(rank: int, shards: list[Any], port: int, epochs: int, batch_size: int) -> None:
    """One rank: a linear model trained with DDP on this rank's share of every epoch."""
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank,
                            world_size=WORLD_SIZE)
    torch.manual_seed(0)
    model = DistributedDataParallel(torch.nn.Linear(FEATURES, 1))
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05)
    shard = shards[rank]
    seed = ed.RandomSeedConfig(seed=rank, reseed_after_execution=True)  # new order per epoch
    for epoch in range(epochs):
        total = torch.zeros(2)
        for batch in shard.iter_torch_batches(batch_size=batch_size, drop_last=True,
                                              local_shuffle_buffer_size=4 * batch_size,
                                              local_shuffle_seed=seed):
            optimizer.zero_grad()
            loss = torch.nn.functional.mse_loss(model(batch["x"]).squeeze(1), batch["y"])
            loss.backward()
            optimizer.step()
            total += torch.tensor([loss.item() * len(batch["y"]), len(batch["y"])])
        dist.all_reduce(total)  # the mean loss over both ranks' rows
        print(f"rank {rank} epoch {epoch}: mean loss {total[0] / total[1]:.4f} over "
              f"{int(total[1])} rows", flush=True)
    print(f"rank {rank} ingest stats of the last epoch:{shard.stats()}", flush=True)
    dist.barrier()  # tear gloo down together: a rank leaving first can abort the other's
    dist.destroy_process_group()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=200_000)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=256)
    args = parser.parse_args()
    ds = ed.range(args.rows, override_num_blocks=16).map_batches(make_examples)
    shards = ds.streaming_split(WORLD_SIZE, equal=True)
    mp.spawn(train, args=(shards, free_port(), args.epochs, args.batch_size),
             nprocs=WORLD_SIZE, join=True)
    ed.shutdown()


if __name__ == "__main__":
    main()
