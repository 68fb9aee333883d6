import pytest

from vramplan.errors import NotFoundError, VramplanError
from vramplan.profiles import find_gpu, gpu_catalog

REQUIRED = ["T4", "V100-16GB", "V100-32GB", "A10G", "A10", "L4", "L40S", "A100-40GB", "A100-80GB", "H100-PCIe",
            "H100-80GB", "H200", "RTX-3060", "RTX-3080", "RTX-3090", "RTX-4060Ti-16GB", "RTX-4070", "RTX-4080",
            "RTX-4090", "RTX-5090", "RTX-A4000", "RTX-A5000", "RTX-A6000", "RTX-6000-Ada"]


def test_catalog_has_the_required_gpus_and_at_least_25():
    names = {g.name for g in gpu_catalog()}
    assert len(names) >= 25
    assert set(REQUIRED) <= names


@pytest.mark.parametrize("gpu", gpu_catalog(), ids=lambda g: g.name)
def test_every_gpu_profile_is_complete_and_sourced(gpu):
    assert gpu.memory_mib > 8000 and gpu.bandwidth_gbs > 0 and gpu.tensor_tflops_16bit > 0
    assert gpu.source.startswith("https://")
    assert gpu.bf16 == (gpu.compute_capability >= 8.0)


@pytest.mark.parametrize("gpu", gpu_catalog(), ids=lambda g: g.name)
def test_every_gpu_profile_has_a_sourced_cuda_core_fp32_rate_below_its_tensor_rate(gpu):
    assert gpu.fp32_tflops is not None and 0 < gpu.fp32_tflops < gpu.tensor_tflops_16bit
    assert gpu.fp32_source.startswith(("https://", "http://"))
    assert gpu.summary()["fp32_tflops"] == gpu.fp32_tflops


def test_a_gpu_file_without_an_fp32_rate_is_refused_naming_it(tmp_path):
    from vramplan.errors import VramplanError
    from vramplan.profiles.gpus import load_gpu_file
    path = tmp_path / "card.json"
    path.write_text('{"name": "Card", "memory_mib": 16384, "compute_capability": 8.0, "bf16": true, '
                    '"bandwidth_gbs": 900, "tensor_tflops_16bit": 100}')
    with pytest.raises(VramplanError, match="lacks fp32_tflops"):
        load_gpu_file(path)


@pytest.mark.parametrize("name, expected", [
    ("t4", "T4"), ("Tesla-T4", "T4"), ("h100", "H100-80GB"), ("H100-80GB", "H100-80GB"),
    ("NVIDIA H100 80GB HBM3", "H100-80GB"), ("NVIDIA H200", "H200"), ("rtx4090", "RTX-4090"),
    ("NVIDIA GeForce RTX 4090", "RTX-4090"),
])
def test_names_match_case_insensitively(name, expected):
    assert find_gpu(name).name == expected


def test_measured_gpus_carry_their_measured_totals():
    # nvidia-smi totals read by vramplan calibrate on the device runs (calibration/runs)
    assert find_gpu("H100-80GB").memory_mib == 81559
    assert find_gpu("H200").memory_mib == 143771


def test_unknown_gpu_suggests_close_names():
    with pytest.raises(NotFoundError) as err:
        find_gpu("rtx-4900")
    assert err.value.suggestions and err.value.exit_code == 2


def test_multi_gpu_names_name_the_card_and_the_count():
    from vramplan.profiles import gpu_count
    assert find_gpu("2xRTX4090") == find_gpu("RTX-4090") and gpu_count("2xRTX4090") == 2
    assert gpu_count("4 x H200") == 4 and gpu_count("RTX-4090") is None
    with pytest.raises(VramplanError, match="out of range"):
        find_gpu("32xH200")


@pytest.mark.parametrize("gpu", [g for g in gpu_catalog() if g.torch_total_gib], ids=lambda g: g.name)
def test_a_cited_torch_total_is_below_nvidia_smis_and_names_its_reports(gpu):
    assert 0.95 * gpu.memory_bytes < gpu.torch_total_bytes < gpu.memory_bytes
    assert gpu.torch_total_source.count("https://github.com/") >= 1 and "total capacity" in gpu.torch_total_source


def test_a_cited_torch_total_is_the_capacity_a_plan_is_judged_against():
    from vramplan.planner import Planner
    from vramplan.store.calibrations import Calibrations
    t4, h200 = find_gpu("T4"), find_gpu("H200")
    assert t4.torch_total_gib == 14.56 and Planner(t4, Calibrations.shipped()).capacity_bytes == t4.torch_total_bytes
    # a calibrated GPU without a cited total: nvidia-smi's less the driver's share its runs measured
    assert not h200.torch_total_gib and Planner(h200, Calibrations.shipped()).capacity_bytes < h200.memory_bytes
