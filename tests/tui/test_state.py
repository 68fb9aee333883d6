"""PlanState: the TUI's plan edits, without Textual."""
from vramplan.tui.state import PlanState



def test_gpus_key_cycles_gpu_counts_keeping_the_effective_batch():
    s = PlanState.create("llama-3.1-8b", "RTX-4090")
    assert s.plan.effective_batch == 16
    s.cycle("gpus")
    assert s.plan.gpus == 2 and s.plan.effective_batch == 16 and s.plan.parallel == "fsdp"
    assert s.breakdown().peak_allocated_bytes < PlanState.create("llama-3.1-8b", "RTX-4090").breakdown().peak_allocated_bytes
    s.cycle("parallel")
    assert s.plan.parallel == "ddp" and s.plan.kbit_prepare
    assert "--gpus 2 --parallel ddp" in s.train_command()
    for _ in range(3):
        s.cycle("gpus")
    assert s.plan.gpus == 1 and s.plan.kbit_prepare and "--gpus" not in s.train_command()
