"""The record-keeping both measuring runners (one GPU and FSDP ranks) share; pure enough for the CPU."""
from vramplan.calibrate.measure import record_failure, record_steps


def test_steps_give_peaks_and_the_median_steady_step_time():
    record = {"torch": {}}
    steps = [{"max_allocated": 5, "max_reserved": 9, "time_s": 10.0},
             {"max_allocated": 7, "max_reserved": 8, "time_s": 2.0},
             {"max_allocated": 6, "max_reserved": 8, "time_s": 3.0},
             {"max_allocated": 6, "max_reserved": 8, "time_s": 4.0}]
    record_steps(record, steps)
    assert record["torch"]["max_allocated"] == 7 and record["torch"]["max_reserved"] == 9
    assert record["step_time_s"] == 3.0  # step 1 (optimizer state creation) is left out
    one = {"torch": {}}
    record_steps(one, steps[:1])
    assert one["step_time_s"] == 10.0


def test_oom_is_recorded_without_traceback_and_a_crash_with_one():
    import torch
    oom, crash = {}, {}
    record_failure(oom, torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB"))
    assert oom["status"] == "oom" and "traceback" not in oom and oom["error"].startswith("OutOfMemoryError")
    try:
        raise ValueError("bad shape")
    except ValueError as exc:
        record_failure(crash, exc)
    assert crash["status"] == "error" and "bad shape" in crash["traceback"]
