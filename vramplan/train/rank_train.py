"""The full training of `vramplan train --gpus N` on one rank, under `accelerate launch`:

    accelerate launch --config_file OUT/accelerate_config.yaml -m vramplan.train.rank_train OUT/launch.json

Each rank loads the model by the plan's recipe (FSDP or DDP), trains its share of every batch with the same
Trainer as one-GPU `vramplan train`, and writes OUT/ranks/rank<r>.json with its own measured peak. Rank 0 saves
the adapter (gathered from the FSDP shards) and the tokenizer.
"""
from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

from ..layout import layout_dict, resolve


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    spec_path = Path(argv[0])
    spec = json.loads(spec_path.read_text())
    out = spec_path.parent
    from ..calibrate.measure import NvmlPeak, apply_allocator
    from ..calibrate.rank_measure import load_rank_model, rank_identity
    from ..gpu_info import detect_gpu
    from ..plan import TrainPlan
    from .data import load_examples
    from .progress import progress_callback
    from .run import build_trainer, encode, load_tokenizer, result_fields, tokens_per_step

    plan = TrainPlan.from_dict(spec["plan"])
    apply_allocator(plan.to_dict())
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    rank, local, world = rank_identity()
    import torch
    torch.cuda.set_device(local)
    tok = load_tokenizer(spec["source"])
    examples = load_examples(spec["data"])
    model = load_rank_model(spec["source"], layout_dict(plan), local)
    data = [encode(e, tok, plan.seq) for e in examples]
    callbacks = [progress_callback(tokens_per_step(data, plan))] if rank == 0 else []  # one bar, rank 0's
    trainer = build_trainer(model, tok, data, plan, out, max_steps=spec["max_steps"], epochs=spec["epochs"],
                            save_steps=spec["save_steps"], callbacks=callbacks)
    torch.cuda.reset_peak_memory_stats()
    t0 = time.time()
    with NvmlPeak(index=local) as poller:
        result = trainer.train()
    elapsed = time.time() - t0
    if resolve(plan).fsdp:  # the adapter's full weights, gathered from the shards onto rank 0
        trainer.accelerator.state.fsdp_plugin.set_state_dict_type("FULL_STATE_DICT")
    trainer.save_model(str(out / "adapter"))
    if rank == 0:
        tok.save_pretrained(out / "adapter")
    record = {"rank": rank, "local_rank": local, "world_size": world, "gpu": detect_gpu(local),
              **result_fields(result, data, plan, elapsed), "measured_nvml_peak_bytes": poller.peak,
              "measured_max_allocated": torch.cuda.max_memory_allocated(),
              "measured_max_reserved": torch.cuda.max_memory_reserved(),
              "alloc_conf": os.environ.get("PYTORCH_CUDA_ALLOC_CONF")}
    (out / "ranks").mkdir(exist_ok=True)
    (out / "ranks" / f"rank{rank}.json").write_text(json.dumps(record, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
