"""Processes under ``torch.distributed`` (``torchrun``): who this process is, and the two
collective steps the data-level methods need. Without an initialised process group every
function is the one-process case."""

from __future__ import annotations

import torch
from torch import Tensor


def world() -> tuple[int, int]:
    """``(rank, world_size)``: ``(0, 1)`` outside ``torch.distributed``."""
    dist = torch.distributed
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def barrier(size: int) -> None:
    """Wait for every process (nothing to wait for in one process)."""
    if size > 1:
        torch.distributed.barrier()


def summed(t: Tensor) -> Tensor:
    """The sum of ``t`` over the processes, on every process (``t`` itself in one process).
    gloo reduces on the CPU: a tensor elsewhere goes there and back."""
    if world()[1] == 1:
        return t
    dist = torch.distributed
    on_cpu = dist.get_backend() == "gloo" and t.device.type != "cpu"
    buffer = t.detach().to("cpu", copy=True) if on_cpu else t.detach().clone()
    dist.all_reduce(buffer, op=dist.ReduceOp.SUM)
    return buffer.to(t.device) if on_cpu else buffer
