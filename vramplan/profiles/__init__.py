"""GPU and model profiles (profiles/ data) and name lookup."""
from .catalog import find_gpu, find_model, gpu_catalog, gpu_count, model_catalog
from .gpus import GpuSpec
from .models import Linear, ModelArch, arch_from_config
from .unmodelled import UnmodelledError

__all__ = ["GpuSpec", "Linear", "ModelArch", "UnmodelledError", "arch_from_config", "find_gpu", "find_model",
           "gpu_catalog", "gpu_count", "model_catalog"]
