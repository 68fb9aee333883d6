"""The torch workers: each runs in a fresh process (one measured run, one rank), started by name from here.

    subprocess.run(worker_command("measure", "SPEC.json", "OUT.json"))
    launch_command(config, gpus, WORKERS["rank_train"], [spec])      # accelerate launch -m ...
"""
from __future__ import annotations

import sys

WORKERS = {
    "measure": "vramplan.calibrate.measure",  # one measured QLoRA run (sweeps, train's verification): SPEC OUT
    "measure_stack": "vramplan.calibrate.measure_stack",  # one run through a stack, with evaluation: SPEC OUT
    "rank_measure": "vramplan.calibrate.rank_measure",  # the same on every rank of an accelerate launch: SPEC DIR
    "build_model": "vramplan.calibrate.build_model",  # a random-weight checkpoint of a profile, once: PROFILE DIR
    "rank_train": "vramplan.train.rank_train",  # one rank of `vramplan train --gpus N`: LAUNCH.json
    "preflight_job": "vramplan.calibrate.preflight_job",  # a job trained under the PreflightCallback: SPEC_JSON
}


def worker_command(name: str, *args: str) -> list[str]:
    """The command line that runs a worker in a fresh Python process."""
    return [sys.executable, "-m", WORKERS[name], *args]
