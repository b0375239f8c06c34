"""Single process or torchrun: process group, device, model wrapping and cross-rank helpers.

Under torchrun (RANK / WORLD_SIZE in the environment) the process group is NCCL on GPUs and
gloo on CPUs; DDP wraps the stage model, or FSDP2 shards the vision tower block by block for
the big preset. State dicts go through torch.distributed.checkpoint's helpers so checkpoints
hold full, unsharded tensors whatever the strategy.
"""

from __future__ import annotations

import os
from contextlib import nullcontext
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import nn


@dataclass(frozen=True)
class Dist:
    rank: int = 0
    world: int = 1
    local_rank: int = 0
    device: torch.device = torch.device("cpu")

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def enabled(self) -> bool:
        return self.world > 1


def setup(device: str) -> Dist:
    """Join the torchrun process group if there is one; pick the device."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    use_cuda = device == "cuda" or (device == "auto" and torch.cuda.is_available())
    if use_cuda and not torch.cuda.is_available():
        raise RuntimeError("run.device is cuda but no CUDA device is available")
    dev = torch.device(f"cuda:{local_rank}") if use_cuda else torch.device("cpu")
    if use_cuda:
        torch.cuda.set_device(dev)
    if world > 1 and not dist.is_initialized():
        dist.init_process_group(backend="nccl" if use_cuda else "gloo")
    return Dist(rank, world, local_rank, dev)


def teardown() -> None:
    if dist.is_initialized():
        dist.destroy_process_group()


def wrap(model: nn.Module, d: Dist, strategy: str) -> nn.Module:
    """DDP, or FSDP2 (each vision block, then the whole model); unchanged in one process."""
    if not d.enabled:
        return model
    if strategy == "fsdp":
        from torch.distributed.fsdp import fully_shard

        for block in model.vision.blocks:
            fully_shard(block)
        return fully_shard(model)
    from torch.nn.parallel import DistributedDataParallel

    ids = [d.device.index] if d.device.type == "cuda" else None
    return DistributedDataParallel(model, device_ids=ids)


def no_sync(model: nn.Module, last_micro: bool):
    """Skip the gradient all-reduce on all but the last micro-batch of an accumulated step."""
    if last_micro or not hasattr(model, "no_sync"):
        return nullcontext()
    return model.no_sync()


def unwrap(model: nn.Module) -> nn.Module:
    return model.module if hasattr(model, "module") and isinstance(model.module, nn.Module) else model


def full_state(model: nn.Module, optimizer: torch.optim.Optimizer) -> tuple[dict, dict]:
    """Full (unsharded, CPU) model and optimizer state dicts, keyed by parameter names."""
    from torch.distributed.checkpoint.state_dict import StateDictOptions, get_state_dict

    options = StateDictOptions(full_state_dict=True, cpu_offload=True)
    return get_state_dict(model, optimizer, options=options)


def load_optimizer(model: nn.Module, optimizer: torch.optim.Optimizer, state: dict) -> None:
    from torch.distributed.checkpoint.state_dict import StateDictOptions, set_optimizer_state_dict

    set_optimizer_state_dict(model, optimizer, state, options=StateDictOptions(full_state_dict=True))


def all_reduce_mean(values: list[float], d: Dist) -> list[float]:
    if not d.enabled:
        return values
    t = torch.tensor(values, dtype=torch.float64, device=d.device)
    dist.all_reduce(t)
    return (t / d.world).tolist()


def all_reduce_sum(values: list[float], d: Dist) -> list[float]:
    if not d.enabled:
        return values
    t = torch.tensor(values, dtype=torch.float64, device=d.device)
    dist.all_reduce(t)
    return t.tolist()


def gather_objects(obj: object, d: Dist) -> list[object]:
    if not d.enabled:
        return [obj]
    out: list[object] = [None] * d.world
    dist.all_gather_object(out, obj)
    return out


def gather_with_grad(x: torch.Tensor, d: Dist) -> tuple[torch.Tensor, torch.Tensor, int]:
    """Rows of every rank (gradients flow back to their owners), padded to the largest rank.

    Returns (gathered [world * n_max, ...], valid [world * n_max] bool, offset of this rank's rows).
    """
    if not d.enabled:
        return x, torch.ones(x.shape[0], dtype=torch.bool, device=x.device), 0
    from torch.distributed._functional_collectives import all_gather_single_autograd

    sizes = [int(s) for s in all_reduce_sizes(x.shape[0], d)]
    n_max = max(sizes)
    padded = torch.cat([x, x.new_zeros(n_max - x.shape[0], *x.shape[1:])]) if x.shape[0] < n_max else x
    # Functional collective with a backward (the public torch.distributed.nn one is deprecated).
    gathered = all_gather_single_autograd(padded.contiguous(), gather_dim=0, group=dist.group.WORLD)
    valid = torch.cat([torch.arange(n_max, device=x.device) < s for s in sizes])
    return gathered, valid, d.rank * n_max


def all_reduce_sizes(n: int, d: Dist) -> list[int]:
    t = torch.zeros(d.world, dtype=torch.long, device=d.device)
    t[d.rank] = n
    dist.all_reduce(t)
    return t.tolist()


def barrier(d: Dist) -> None:
    if d.enabled:
        dist.barrier()
