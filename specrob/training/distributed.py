"""Data-parallel training under torchrun: one process per device, each on its share of every
global batch, gradients averaged before each optimiser step.

    torchrun --standalone --nproc_per_node 2 -m specrob train model.py spec.rspec ...

`--batch-size` stays the global batch: rank r takes rows r, r + W, r + 2W, ... of each batch
(W processes), so W processes follow the loss curve of one process with the same batch (up
to float rounding) when the regime draws no random numbers per batch (baseline); regimes
with random starts draw them per process. Rank 0 keeps the run folder, the checkpoints and
the ONNX export; a resumed run's state goes from rank 0 to the others.

Gradients are averaged with `all_reduce` after `backward()` rather than by wrapping the model
in DistributedDataParallel: the constraint and adversarial regimes run the network many times
per step for the input-gradient search (PGD), and DDP's reducer expects one forward per
backward of the weights.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist

from specrob.errors import SpecrobError


class DistributedError(SpecrobError):
    """A torchrun group that cannot be set up as asked."""


@dataclass(frozen=True)
class Group:
    """This process's place among the training processes."""

    rank: int
    world: int
    device: str  # this process's device: cpu, or cuda:LOCAL_RANK

    @property
    def leader(self) -> bool:
        return self.rank == 0


def from_environment(device: str) -> Group | None:
    """The process group torchrun describes (RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR,
    MASTER_PORT), initialised (gloo on CPU, nccl on CUDA); None for a single process."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return None
    rank = int(os.environ.get("RANK", "0"))
    local = int(os.environ.get("LOCAL_RANK", str(rank)))
    if device.startswith("cuda"):
        if not torch.cuda.is_available() or local >= torch.cuda.device_count():
            raise DistributedError(f"--device cuda under torchrun: no CUDA device {local} here "
                                   f"(LOCAL_RANK {local}); use --device cpu")
        device = f"cuda:{local}"
        torch.cuda.set_device(local)
    if not dist.is_initialized():
        dist.init_process_group("nccl" if device.startswith("cuda") else "gloo")
    return Group(rank, world, device)


def share(rows: torch.Tensor, group: Group | None) -> torch.Tensor:
    """This process's rows of a global batch."""
    return rows if group is None else rows[group.rank::group.world]


def average_gradients(module: torch.nn.Module, group: Group | None, rows: int,
                      total: int) -> None:
    """Each gradient, that of this process's mean loss over its `rows` of a global batch of
    `total`, replaced by the gradient of the mean over the whole batch: the sum over the
    processes of rows x gradient, divided by `total` (uneven shares weigh by their rows; a
    process with no rows contributes zeros and still takes part)."""
    if group is None:
        return
    for p in module.parameters():
        if not p.requires_grad:
            continue
        if p.grad is None:
            p.grad = torch.zeros_like(p)
        p.grad *= rows
        dist.all_reduce(p.grad, op=dist.ReduceOp.SUM)
        p.grad /= total


def total(values: dict[str, float], group: Group | None) -> dict[str, float]:
    """Per key, the sum over the processes (every process gets it)."""
    if group is None:
        return values
    gathered: list = [None] * group.world  # a process with no rows may lack a key
    dist.all_gather_object(gathered, sorted(values))
    keys = sorted(set().union(*gathered))
    if not keys:
        return values
    # on the process's device: NCCL reduces CUDA tensors only (gloo: CPU)
    t = torch.tensor([values.get(k, 0.0) for k in keys], dtype=torch.float64,
                     device=group.device)
    dist.all_reduce(t, op=dist.ReduceOp.SUM)
    return dict(zip(keys, t.tolist()))


def from_leader(value: Any, group: Group | None) -> Any:
    """Rank 0's `value` on every process (pickled: checkpoints of small models, flags)."""
    if group is None:
        return value
    box = [value if group.leader else None]
    dist.broadcast_object_list(box, src=0)
    return box[0]
