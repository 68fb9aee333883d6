"""Optimizer state, by transformers' `optim` name, for the LoRA tensors it updates."""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

from ._round import ceil_div, r512

MIN_8BIT_SIZE = 4096  # bitsandbytes keeps smaller tensors' state in fp32
PAGED_MIN_NUMEL = 100_000  # bitsandbytes pages state buffers from 1e5 elements up
BLOCK_8BIT = 256


@dataclass(frozen=True)
class OptimizerMemory:
    device: int
    """State in ordinary device memory (torch's allocator)."""
    managed: int
    """State in CUDA managed memory (paged optimizers): invisible to torch, counted by nvidia-smi."""
    managed_tensors: int
    step_temp: int
    """Temporaries of one optimizer step."""


def optimizer_memory(shapes: list[tuple[int, int]], optim: str, managed_min_bytes: int,
                     param_itemsize: int = 4) -> OptimizerMemory:
    """param_itemsize: torch's AdamW keeps its states in the parameters' dtype; bitsandbytes' 32-bit states are
    fp32 whatever the parameter (bitsandbytes/optim/optimizer.py, Optimizer2State.init_state)."""
    return _optimizer_memory(tuple(shapes), optim, managed_min_bytes, param_itemsize)


@lru_cache(maxsize=256)  # fit's search asks for the same adapter shapes under many plans
def _optimizer_memory(shapes: tuple[tuple[int, int], ...], optim: str, managed_min_bytes: int,
                      param_itemsize: int) -> OptimizerMemory:
    numels = [r * c for r, c in shapes]
    device = managed = tensors = 0
    total = sum(numels)
    paged = optim.startswith("paged_")
    eight_bit = optim.endswith("8bit")

    def state(n: int, itemsize: int):
        nonlocal device, managed, tensors
        if paged and n >= PAGED_MIN_NUMEL:
            managed += n * itemsize
            tensors += 1
        else:
            device += r512(n * itemsize)

    if optim in ("adamw_8bit", "paged_adamw_8bit", "adamw_torch", "adamw_torch_fused", "paged_adamw_32bit"):
        for n in numels:
            if eight_bit and n >= MIN_8BIT_SIZE:
                state(n, 1)
                state(n, 1)
                device += 2 * r512(4 * ceil_div(n, BLOCK_8BIT))  # absmax1, absmax2
            else:
                size = param_itemsize if optim.startswith("adamw_torch") else 4
                state(n, size)
                state(n, size)
        if optim == "adamw_torch":
            temp = param_itemsize * total  # foreach implementation: one fp32 list (sqrt of exp_avg_sq) alive at a time
        elif optim == "adamw_torch_fused":
            device += r512(4) * len(numels)  # per-tensor step counters on the device
            temp = 0
        else:
            temp = 0
        if managed:
            managed = max(managed, managed_min_bytes)
        return OptimizerMemory(device, managed, tensors, temp)
    if optim == "adafactor":
        # transformers' Adafactor, beta1=None: factored second moment (row + column vectors) per matrix
        for rows, cols in shapes:
            device += r512(4 * rows) + r512(4 * cols) + r512(4)  # exp_avg_sq_row, _col, RMS
        # per tensor: grad**2 + eps and the update, fp32, one tensor at a time
        return OptimizerMemory(device, 0, 0, 8 * max(numels, default=0))
    if optim == "sgd":
        return OptimizerMemory(0, 0, 0, 0)
    raise ValueError(optim)
