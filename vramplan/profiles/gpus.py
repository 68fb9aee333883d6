"""GPU specifications."""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from ..errors import VramplanError
from ..units import MiB

# GPU-to-GPU bandwidth per direction without NVLink: the PCIe x16 link of the card's generation (PCI-SIG:
# 3.0 ~16 GB/s, 4.0 ~32 GB/s, 5.0 ~64 GB/s). Profiles with NVLink state link_gbs themselves.
PCIE_GBS = {"volta": 16.0, "turing": 16.0, "ampere": 32.0, "ada": 32.0, "hopper": 64.0, "blackwell": 64.0}


@dataclass(frozen=True)
class GpuSpec:
    name: str
    memory_mib: int
    """Total memory as nvidia-smi reports it."""
    compute_capability: float
    bf16: bool
    bandwidth_gbs: float
    tensor_tflops_16bit: float
    """Dense fp16/bf16 tensor-core rate with fp32 accumulation (what autocast training runs at)."""
    fp32_tflops: float = 0.0
    """Dense CUDA-core fp32 rate: what fp32 matmuls without TF32 run at (PyTorch's default for fp32 matmul)."""
    fp32_source: str = ""
    architecture: str = ""
    aliases: tuple[str, ...] = ()
    source: str = ""
    memory_source: str = ""
    link_gbs: float = 0.0
    """GPU-to-GPU bandwidth per direction (NVLink where the profile says so); 0: the PCIe link."""
    link_source: str = ""
    torch_total_gib: float = 0.0
    """The card's total as PyTorch reports it (cudaMemGetInfo; its out-of-memory message prints it), where the
    profile cites one: what one process can allocate. 0: not cited."""
    torch_total_source: str = ""

    @property
    def memory_bytes(self) -> int:
        return self.memory_mib * MiB

    @property
    def torch_total_bytes(self) -> int:
        return int(self.torch_total_gib * 2**30)

    @property
    def default_dtype(self) -> str:
        """bf16 where the card has it (wider range, no loss scaling), else fp16."""
        return "bf16" if self.bf16 else "fp16"

    @property
    def interconnect_gbs(self) -> float:
        return self.link_gbs or self.pcie_gbs

    @property
    def pcie_gbs(self) -> float:
        """Host-to-device bandwidth (CPU offload moves shards over it)."""
        return PCIE_GBS.get(self.architecture, 32.0)

    def summary(self) -> dict:
        return {"name": self.name, "memory_mib": self.memory_mib, "memory_bytes": self.memory_bytes,
                "compute_capability": self.compute_capability, "bf16": self.bf16,
                "bandwidth_gbs": self.bandwidth_gbs, "tensor_tflops_16bit": self.tensor_tflops_16bit,
                "fp32_tflops": self.fp32_tflops, "architecture": self.architecture,
                "interconnect_gbs": self.interconnect_gbs, "source": self.source,
                "torch_total_gib": self.torch_total_gib or None}


REQUIRED = ("name", "memory_mib", "compute_capability", "bf16", "bandwidth_gbs", "tensor_tflops_16bit",
            "fp32_tflops")


def load_gpu_file(path: Path) -> GpuSpec:
    d = json.loads(path.read_text())
    missing = [k for k in REQUIRED if k not in d]
    if missing:
        raise VramplanError(f"GPU profile {path.name} lacks {', '.join(missing)}",
                            hint="every profile states these datasheet figures, each with its source")
    return GpuSpec(name=d["name"], memory_mib=int(d["memory_mib"]), compute_capability=float(d["compute_capability"]),
                   bf16=bool(d["bf16"]), bandwidth_gbs=float(d["bandwidth_gbs"]),
                   tensor_tflops_16bit=float(d["tensor_tflops_16bit"]),
                   fp32_tflops=float(d["fp32_tflops"]), fp32_source=d.get("fp32_source", ""),
                   architecture=d.get("architecture", ""),
                   aliases=tuple(d.get("aliases", ())), source=d.get("source", ""),
                   memory_source=d.get("memory_source", ""), link_gbs=float(d.get("link_gbs", 0.0)),
                   link_source=d.get("link_source", ""), torch_total_gib=float(d.get("torch_total_gib", 0.0)),
                   torch_total_source=d.get("torch_total_source", ""))
