"""Which fitted speed parameters a GPU plans with, and where they come from.

calibration/speed/<gpu>.json holds the fits vramplan.calibrate.speed_solve wrote from the shipped step times; a
GPU without one takes its datasheet at the shares the Hopper fits reached, with their launch costs; a user's
calibration folder may hold a host fit (vramplan.calibrate.speed_host: `vramplan calibrate` on that machine)
that scales the host's terms. speed_source and not_measured say what a figure rests on; vramplan.speed computes
the figures from these parameters.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field, replace
from functools import lru_cache
from pathlib import Path

from .calibrate.records import gpu_slug
from .errors import VramplanError
from .plan import TrainPlan
from .profiles.gpus import GpuSpec
from .profiles.models import ModelArch
from .resources import data_dir
from .speed_experts import expert_speed_fit

LINK_EFFICIENCY = 0.7  # share of the link's datasheet rate that NCCL collectives reach
# FSDP1 as peft wraps it makes every LoRA linear its own unit: ~15 units per decoder layer, each unsharded in
# every pass (forward, backward, the recompute) by its hooks, a collective launch and stream wait each. That is
# host-side work on the thread that launches the compute, so it adds to the step rather than overlapping it.
# Without a multi-GPU fit: 1.3 ms per unit and pass (2 x H200 steps as they were first read: 1.5-2.0 s per
# micro-batch whatever the tokens, 2048-8192).
FSDP_UNIT_S = 1.3e-3

# What a GPU without a speed fit and without a Hopper fit to scale from reaches: the hand-set roofline
# efficiencies vramplan used before any step time was fitted, with no launch terms.
ROOFLINE_MATMUL_EFFICIENCY = 0.55
ROOFLINE_MEMORY_EFFICIENCY = 0.75


@dataclass(frozen=True)
class SpeedParams:
    matmul_tflops: float
    """Fitted rate of the training matmuls (TFLOP/s)."""
    stream_gbs: float
    """Fitted bandwidth of the streaming kernels: dequantization, activations, the loss path (GB/s)."""
    kernel_s: float = 0.0
    """Seconds per kernel launch of the decoder layers (KERNELS_PER_CALL): the host-side cost of the module calls
    and launches that, at these sizes, the GPU waits on."""
    micro_batch_s: float = 0.0
    """Seconds per micro-batch beyond the layers: the Trainer's loop, the data collator, embedding, loss."""
    step_s: float = 0.0
    """Seconds per optimizer step: the optimizer over the adapter, gradient clipping, zero_grad."""
    fsdp_unit_s: float = FSDP_UNIT_S
    """FSDP: seconds per wrapped unit and pass (its hooks, all-gather launch and wait)."""
    ddp_step_s: float = 0.0
    """DDP: seconds per optimizer step beyond the gradient all-reduce's bytes (its hooks and buckets)."""
    offload_gbs: float = 0.0
    """Offloaded checkpoints: GB/s of the copies to and from pinned host memory, the blocking pack and the unpack
    (0: none charged; params_from_speed_fits always sets it)."""
    overlap: float = 1.0
    """How a micro-batch's host time H (launches, the loop) and device time D (matmuls, streaming) combine:
    (H^p + D^p)^(1/p) with this p. The host launches ahead of the GPU, so the longer one hides most of the other;
    1 adds them (the built-in roofline)."""
    multi_gpu_from: str = ""
    """The GPU whose multi-GPU runs fitted fsdp_unit_s and ddp_step_s ('' when built in)."""
    multi_gpu_layouts: tuple = ()
    """(gpus, parallel, offload) of each layout those runs measured."""
    source: str = "built-in roofline (no speed fit)"
    measured: bool = False
    """True when the GPU's own runs fitted these; False when derived from a datasheet or built in."""
    runs: int = 0
    error: dict = field(default_factory=dict)

    @property
    def coefficients(self) -> tuple[float, ...]:
        """Seconds per unit of each FEATURES column."""
        return (1.0 / self.matmul_tflops, 1.0 / self.stream_gbs, self.kernel_s, self.micro_batch_s, self.step_s,
                1.0 / self.offload_gbs if self.offload_gbs > 0 else 0.0)

    @classmethod
    def from_coefficients(cls, coefs, **meta) -> "SpeedParams":
        """From the solver's fitted seconds per unit (a zero rate coefficient: that term was not seen to cost)."""
        inv_rate, inv_bw, c_kernel, c_micro, c_step, inv_offload = (float(c) for c in coefs)
        return cls(matmul_tflops=1.0 / inv_rate if inv_rate > 0 else float("inf"),
                   stream_gbs=1.0 / inv_bw if inv_bw > 0 else float("inf"), kernel_s=c_kernel,
                   micro_batch_s=c_micro, step_s=c_step, offload_gbs=1.0 / inv_offload if inv_offload > 0 else 0.0,
                   **meta)

    def to_dict(self) -> dict:
        return {"matmul_tflops": self.matmul_tflops, "stream_gbs": self.stream_gbs,
                "kernel_s": self.kernel_s, "micro_batch_s": self.micro_batch_s, "step_s": self.step_s,
                "offload_gbs": self.offload_gbs, "fsdp_unit_s": self.fsdp_unit_s, "ddp_step_s": self.ddp_step_s,
                "overlap": self.overlap}


@lru_cache(maxsize=None)
def load_speed_fits(calib_dir: str | None = None) -> tuple[dict, ...]:
    folder = (Path(calib_dir) if calib_dir else data_dir("calibration")) / "speed"
    return tuple(json.loads(p.read_text()) for p in sorted(folder.glob("*.json")))


def _own(fit: dict, gpu: GpuSpec) -> bool:
    names = {gpu_slug(n) for n in (gpu.name, *gpu.aliases)}
    return fit.get("profile") == gpu.name or gpu_slug(fit.get("gpu_name", "")) in names


def _multi_gpu_terms(fits: tuple[dict, ...], own: dict | None) -> dict:
    """fsdp_unit_s and ddp_step_s: the GPU's own multi-GPU fit, else the first fit that has one."""
    for fit in ([own] if own else []) + [f for f in fits if f is not own]:
        if "multi_gpu" in fit and "fsdp_unit_s" in fit.get("params", {}):
            layouts = tuple((d["gpus"], d["parallel"], d["offload"]) for d in fit["multi_gpu"].get("layouts", ()))
            return {"fsdp_unit_s": fit["params"]["fsdp_unit_s"], "ddp_step_s": fit["params"].get("ddp_step_s", 0.0),
                    "multi_gpu_from": fit["gpu_name"], "multi_gpu_layouts": layouts}
    return {}


ONE_GPU_TERMS = ("matmul_tflops", "stream_gbs", "kernel_s", "micro_batch_s", "step_s")


def offload_rate(fits: tuple[dict, ...], own: dict | None, gpu: GpuSpec) -> float:
    """GB/s of offloaded checkpoints' copies: the GPU's own fit where its runs offloaded; else its PCIe datasheet x
    the mean efficiency fitted where runs did (said in the fit); else x LINK_EFFICIENCY, as FSDP's CPU offload."""
    if own and own["params"].get("offload_gbs"):
        return own["params"]["offload_gbs"]
    measured = [f["efficiency"]["offload"] for f in fits if "offload" in f.get("efficiency", {})]
    return gpu.pcie_gbs * (sum(measured) / len(measured) if measured else LINK_EFFICIENCY)


def held_out_words(fit: dict) -> str:
    """How far the fit's tokens/s land from the measured ones for models left out of it (its leave-one-
    architecture-out MAE), in words; fits written before tokens/s was reported give the step time's."""
    tokens = fit.get("tokens_error", {})
    if tokens.get("loao_mae_pct") is not None:
        worst = tokens.get("loao_worst_pct", 0.0)
        return (f"predicted tokens/s off by {tokens['loao_mae_pct']:.1f}% on average, at worst {abs(worst):.0f}% too "
                f"{'fast' if worst > 0 else 'slow'}, for each model predicted by a fit without it")
    return f"step time off by {fit.get('error', {}).get('loao_mae_pct', float('nan')):.1f}% on average for " \
           f"models left out of the fit"


def params_from_speed_fits(fits: tuple[dict, ...], gpu: GpuSpec) -> SpeedParams:
    """The GPU's own fit; else its datasheet scaled by the mean fitted efficiency of the Hopper fits (or of every
    fit when none is Hopper), with their mean call costs; else the built-in roofline. A host fit of the GPU (one
    `vramplan calibrate` wrote, vramplan.calibrate.speed_host) scales the host's terms of that. The source says
    which."""
    host = next((f for f in reversed(fits) if f.get("kind") == "host" and _own(f, gpu)), None)
    fits = tuple(f for f in fits if f.get("kind") != "host")
    if host:
        return with_host_fit(params_from_speed_fits(fits, gpu), host)
    own = next((f for f in fits if _own(f, gpu)), None)
    multi = {**_multi_gpu_terms(fits, own), "offload_gbs": offload_rate(fits, own, gpu)}
    if own:
        err = own.get("error", {})
        return SpeedParams(**{k: own["params"][k] for k in ONE_GPU_TERMS}, **multi,
                           overlap=own["params"].get("overlap", 1.0), measured=True,
                           runs=own.get("runs", 0), error=err,
                           source=f"step times fitted on {own['gpu_name']} ({own.get('runs', 0)} runs; "
                                  f"{held_out_words(own)})")
    pool = [f for f in fits if f.get("architecture") == "hopper"] or list(fits)
    if not pool:
        return SpeedParams(matmul_tflops=gpu.tensor_tflops_16bit * ROOFLINE_MATMUL_EFFICIENCY,
                           stream_gbs=gpu.bandwidth_gbs * ROOFLINE_MEMORY_EFFICIENCY, offload_gbs=multi["offload_gbs"],
                           source=f"built-in roofline on {gpu.name}'s datasheet (no speed fit)")
    k = len(pool)
    mm = sum(f["efficiency"]["matmul"] for f in pool) / k
    bw = sum(f["efficiency"]["bandwidth"] for f in pool) / k
    calls = {c: sum(f["params"][c] for f in pool) / k for c in ONE_GPU_TERMS[2:]}
    calls["overlap"] = sum(f["params"].get("overlap", 1.0) for f in pool) / k
    names = ", ".join(f["gpu_name"] for f in pool)
    return SpeedParams(matmul_tflops=gpu.tensor_tflops_16bit * mm, stream_gbs=gpu.bandwidth_gbs * bw, **calls,
                       **multi, source=f"{gpu.name} not measured: its datasheet ({gpu.tensor_tflops_16bit:g} "
                                       f"TFLOP/s, {gpu.bandwidth_gbs:g} GB/s) at the shares reached on {names} "
                                       f"({mm:.2f} of the matmul rate, {bw:.2f} of the bandwidth), with their "
                                       f"launch costs; its error on {gpu.name} is not measured")


HOST_TERMS = ("kernel_s", "micro_batch_s", "step_s")
"""What the host spends launching, per launch, micro-batch and optimizer step: what a host fit scales."""
HOST_FACTOR_BOUNDS = (0.2, 5.0)
"""The host factors a fit may take (vramplan.calibrate.speed_host) and a planning command accepts."""
HOST_FOLDER = "speed_host"
"""Where in a calibration folder `vramplan calibrate` writes host fits: speed_host/<gpu>.json (calibration/speed is
speed_solve's full fits)."""


def host_scaled(base: SpeedParams, factor: float) -> SpeedParams:
    """base with its host terms times factor."""
    return replace(base, **{k: getattr(base, k) * factor for k in HOST_TERMS})


def with_host_fit(base: SpeedParams, host: dict) -> SpeedParams:
    """base scaled by a host fit, and a source that says so."""
    err = host["tokens_error"]
    return replace(host_scaled(base, host["host_factor"]),
                   source=f"{base.source}; launch costs x{host['host_factor']:.2f} for this machine, fitted on "
                          f"{host['runs']} of its calibration runs in {host['_folder']} (their tokens/s off by "
                          f"{err['calibrated']['mae_pct']:.1f}% on average, {err['shipped']['mae_pct']:.1f}% before)")


def _number(value, low: float = 0.0, high: float = float("inf")) -> bool:
    return not isinstance(value, bool) and isinstance(value, (int, float)) and low <= value <= high


def _read_host_fit(path: Path) -> dict:
    """One host fit, checked before any figure is planned from it (a one-line error naming the file if not)."""
    def bad(what: str) -> VramplanError:
        return VramplanError(f"{path}: not a vramplan host speed fit ({what})",
                             hint="`vramplan calibrate --refit` rewrites it from the recorded runs; or remove it")
    try:
        fit = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise VramplanError(f"{path}: cannot be read as JSON ({type(exc).__name__})",
                            hint="`vramplan calibrate --refit` rewrites it from the recorded runs; or remove it") from None
    if not isinstance(fit, dict) or fit.get("kind") != "host":
        raise bad('no "kind": "host"')
    if not isinstance(fit.get("gpu_name"), str) or not fit["gpu_name"].strip():
        raise bad("no gpu_name")
    if not _number(fit.get("host_factor"), *HOST_FACTOR_BOUNDS):
        raise bad(f"host_factor is {fit.get('host_factor')!r}, not a number in {HOST_FACTOR_BOUNDS[0]}.."
                  f"{HOST_FACTOR_BOUNDS[1]}")
    if isinstance(fit.get("runs"), bool) or not isinstance(fit.get("runs"), int) or fit["runs"] < 1:
        raise bad(f"runs is {fit.get('runs')!r}")
    err = fit.get("tokens_error")
    for which in ("calibrated", "shipped"):
        if not isinstance(err, dict) or not isinstance(err.get(which), dict) or not _number(err[which].get("mae_pct")):
            raise bad(f"no tokens_error.{which}.mae_pct")
    return {**fit, "_folder": str(path.parent.parent)}


def _host_fit_files(folders: tuple[str, ...]) -> tuple[tuple[str, int], ...]:
    """(path, modification time) of each host fit in the folders, in their order: what the caches are keyed on, so
    a fit written, rewritten or removed while a process plans is read afresh."""
    out = []
    for folder in folders:
        for path in sorted((Path(folder) / HOST_FOLDER).glob("*.json")):
            try:
                out.append((str(path), path.stat().st_mtime_ns))
            except OSError:
                continue
    return tuple(out)


@lru_cache(maxsize=None)
def _host_fits(files: tuple[tuple[str, int], ...]) -> tuple[dict, ...]:
    return tuple(_read_host_fit(Path(path)) for path, _ in files)


def user_calibration_folders() -> tuple[str, ...]:
    """The folders a planning command reads the user's calibrations from, lowest first: the user data folder,
    VRAMPLAN_CALIBRATION, the command's --calibration (store.calibrations reads their memory fits)."""
    from .store import user
    folders = [user.user_calibration_dir(), user.env_calibration(), user.selected_calibration()]
    return tuple(str(f) for f in folders if f is not None and Path(f).is_dir())


_CACHE: dict[tuple, SpeedParams] = {}


def speed_params(gpu: GpuSpec, calib_dir: str | None = None) -> SpeedParams:
    """The speed parameters of one GPU: the shipped fits with the host fits of the user's calibration folders
    on top; calib_dir's fits alone when named."""
    files = () if calib_dir else _host_fit_files(user_calibration_folders())
    key = (gpu.name, calib_dir, files)
    if key not in _CACHE:
        _CACHE[key] = params_from_speed_fits(load_speed_fits(calib_dir) + _host_fits(files), gpu)
    return _CACHE[key]


def shipped_speed_params(gpu: GpuSpec) -> SpeedParams:
    """The shipped fits' parameters alone, whatever the user's folders hold: what benches predict with and what
    a host fit scales."""
    return speed_params(gpu, str(data_dir("calibration")))


def speed_source(gpu: GpuSpec, plan: TrainPlan | None = None, model: ModelArch | None = None) -> str:
    """Where the figure comes from, with what several GPUs add on top of the one-GPU fit, and an MoE model's
    experts."""
    params = speed_params(gpu)
    source = params.source
    if model is not None and model.experts is not None:
        fit = expert_speed_fit()
        source += (f"; the experts' fp32 time fitted on {fit.runs} MoE runs on {fit.gpu} (MAE {fit.mae_pct}%, "
                   f"{fit.lofo_mae_pct}% leaving a family out)")
    if plan is not None and plan.gpus > 1:
        counts = sorted({n for n, _, _ in params.multi_gpu_layouts})
        on = f"{params.multi_gpu_from} x {'/'.join(map(str, counts)) or '?'}"
        fitted = f"fitted on {on}" if params.multi_gpu_from else "built in, not fitted"
        source += f"; {plan.gpus} GPUs: FSDP's per-unit and DDP's per-step costs {fitted} (plain Trainer)"
    return source


def not_measured(gpu: GpuSpec, plan: TrainPlan, params: SpeedParams | None = None,
                 model: ModelArch | None = None) -> list[dict]:
    """What a plan's speed figure rests on that no recorded run measured, as codes with their names
    (vramplan.present.time_cost words them): the GPU itself, and on several GPUs the GPU, the count and the
    layout the FSDP/DDP costs were fitted on."""
    params = params or speed_params(gpu)
    out = [] if params.measured else [{"code": "gpu", "gpu": gpu.name}]
    if model is not None and model.experts is not None and gpu_slug(expert_speed_fit().gpu) not in {
            gpu_slug(n) for n in (gpu.name, *gpu.aliases)}:
        out.append({"code": "moe_speed_gpu", "gpu": gpu.name, "fitted_on": expert_speed_fit().gpu})
    if plan.gpus == 1:
        return out
    if not params.multi_gpu_from:
        return out + [{"code": "multi_gpu_built_in", "gpus": plan.gpus}]
    if gpu_slug(params.multi_gpu_from) not in {gpu_slug(n) for n in (gpu.name, *gpu.aliases)}:
        out.append({"code": "multi_gpu_gpu", "gpu": gpu.name, "fitted_on": params.multi_gpu_from})
    counts = sorted({n for n, _, _ in params.multi_gpu_layouts})
    if plan.gpus not in counts:
        out.append({"code": "gpu_count", "gpus": plan.gpus, "measured_counts": counts})
    if (plan.parallel, plan.offload) not in {(p, o) for _, p, o in params.multi_gpu_layouts}:
        out.append({"code": "layout", "parallel": plan.parallel, "offload": plan.offload})
    return out
