"""What GPU this is and what software drives it, from NVML (pynvml) and torch."""
from __future__ import annotations

import platform


def nvml_handle(index: int = 0):
    import pynvml
    pynvml.nvmlInit()
    return pynvml, pynvml.nvmlDeviceGetHandleByIndex(index)


def nvml_memory(index: int = 0) -> dict:
    """total / used / free / reserved bytes as nvidia-smi shows them (v2 API separates the driver's reserve)."""
    pynvml, h = nvml_handle(index)
    try:
        info = pynvml.nvmlDeviceGetMemoryInfo(h, version=pynvml.nvmlMemory_v2)
        return {"total": int(info.total), "used": int(info.used), "free": int(info.free),
                "reserved": int(getattr(info, "reserved", 0))}
    except Exception:  # older drivers: v1 only, reserved counted as used
        info = pynvml.nvmlDeviceGetMemoryInfo(h)
        return {"total": int(info.total), "used": int(info.used), "free": int(info.free), "reserved": 0}


def nvml_used(index: int = 0) -> int:
    return nvml_memory(index)["used"]


def detect_gpu(index: int = 0) -> dict:
    """Name, memory and capability of the GPU, without creating a CUDA context."""
    pynvml, h = nvml_handle(index)
    name = pynvml.nvmlDeviceGetName(h)
    name = name.decode() if isinstance(name, bytes) else name
    driver = pynvml.nvmlSystemGetDriverVersion()
    driver = driver.decode() if isinstance(driver, bytes) else driver
    major, minor = pynvml.nvmlDeviceGetCudaComputeCapability(h)
    mem = nvml_memory(index)
    return {"name": name, "memory_total_bytes": mem["total"], "memory_total_mib": mem["total"] // 2**20,
            "nvml_reserved_bytes": mem["reserved"], "driver": driver, "compute_capability": f"{major}.{minor}",
            "count": pynvml.nvmlDeviceGetCount()}


def software_versions() -> dict:
    import importlib.metadata as md
    out = {"python": platform.python_version()}
    for pkg in ("torch", "transformers", "peft", "bitsandbytes", "accelerate"):
        try:
            out[pkg] = md.version(pkg)
        except md.PackageNotFoundError:
            out[pkg] = None
    try:
        import torch
        out["cuda"] = torch.version.cuda
    except ImportError:
        out["cuda"] = None
    return out
