"""--memory-cap: a process whose nvidia-smi footprint stays within a smaller card's, on a larger GPU."""
from __future__ import annotations


def cap_process(cap_bytes: int, used_before_bytes: int, index: int = 0) -> dict:
    """Start CUDA and cap PyTorch's allocator at cap_bytes less the CUDA context this process just made (NVML's
    used memory after the start minus used_before_bytes): what nvidia-smi shows for the process then stays
    within cap_bytes, as on a card of that size (the allocator frees its cache before it runs out)."""
    import torch

    from ..gpu_info import nvml_used
    torch.zeros(1, device=f"cuda:{index}")
    torch.cuda.synchronize(index)
    context = max(0, nvml_used(index) - used_before_bytes)
    total = torch.cuda.get_device_properties(index).total_memory
    allocator = cap_bytes - context
    torch.cuda.set_per_process_memory_fraction(max(0.0, min(1.0, allocator / total)), index)
    return {"memory_cap_bytes": cap_bytes, "context_bytes": context, "allocator_cap_bytes": allocator}
