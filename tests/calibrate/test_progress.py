"""calibrate's progress: run i of n, the time left, each run's peak against its prediction, on stderr."""
import io
import json

from vramplan.calibrate import sweep as S
from vramplan.calibrate.design import SweepRun, sweep
from vramplan.calibrate.progress import ERASE_LINE, SweepProgress, clock_text, peak_words
from vramplan.units import GiB
from tests.profiles.checkpointing_gate import checkpointing_gate_closed  # noqa: F401  (the fixture)

RUNS = sweep("quick")[:3]


class Clock:
    def __init__(self):
        self.t = 0.0

    def __call__(self):
        return self.t


class Terminal(io.StringIO):
    def isatty(self):
        return True


def test_plain_lines_when_the_stream_is_not_a_terminal():
    out, clock = io.StringIO(), Clock()
    p = SweepProgress(RUNS, stream=out, clock=clock, estimate=lambda r: 100.0)
    p.start(1)
    clock.t = 50
    p.done(1, {"status": "ok", "nvml": {"peak": 10 * GiB}, "wall_s": 50.0}, int(10.5 * GiB))
    p.start(2)
    p.close()
    lines = out.getvalue().splitlines()
    assert lines[0].startswith("[1/3] ") and lines[0].endswith("about 5:00 left (estimated)")
    assert lines[1] == "    ok: peak 10.00 GiB, predicted 10.50 GiB (+5.0%) in 50 s"
    # one run took half its estimate: the two left are paced at that, 100 s
    assert lines[2].startswith("[2/3] ") and lines[2].endswith("about 1:40 left")
    assert "\r" not in out.getvalue() and "\x1b" not in out.getvalue()


def test_a_terminal_gets_one_line_redrawn_in_place():
    out, clock = Terminal(), Clock()
    p = SweepProgress(RUNS, stream=out, clock=clock, estimate=lambda r: 60.0)
    p.start(1)
    clock.t = 30
    p.say("building random-weight checkpoint")
    p.done(1, {"status": "oom", "error": "CUDA out of memory", "wall_s": 30.0}, None)
    p.close()
    text = out.getvalue()
    assert text.startswith(ERASE_LINE + "[1/3] ") and "0:30 running, about 2:30 left" in text
    assert ERASE_LINE + "building random-weight checkpoint\n" in text
    assert text.endswith("    oom: CUDA out of memory in 30 s\n")


def test_peak_words_and_clock():
    assert clock_text(42) == "0:42" and clock_text(725) == "12:05" and clock_text(3725) == "1:02:05"
    assert "no prediction" in peak_words({"status": "ok", "nvml": {"peak": GiB}, "wall_s": 1}, None)


def test_the_sweep_reports_each_run_on_stderr_and_nothing_on_stdout(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(S, "detect_gpu", lambda: {"name": "NVIDIA H200", "memory_total_mib": 143771,
                                                  "driver": "570"})
    monkeypatch.setattr(S, "software_versions", lambda: {"torch": "test"})
    monkeypatch.setattr(S, "ensure_checkpoint", lambda model, cache, log: tmp_path / model)
    peaks = iter([12 * GiB, None])

    def fake_run(run, checkpoint, key, timeout_s):
        peak = next(peaks)
        return ({"run_key": key, "status": "ok", "nvml": {"peak": peak}, "wall_s": 3.0} if peak else
                {"run_key": key, "status": "crash", "error": "exit 1", "wall_s": 1.0})

    monkeypatch.setattr(S, "run_one", fake_run)
    path = S.run_sweep(RUNS[:2], tmp_path, tmp_path / "cache")
    out, err = capsys.readouterr()
    assert out == ""
    predicted = S.predicted_peak(RUNS[0], "NVIDIA H200")
    assert f"peak 12.00 GiB, predicted {predicted / GiB:.2f} GiB" in err
    assert "[1/2]" in err and "[2/2]" in err and "crash: exit 1" in err
    assert [json.loads(x)["status"] for x in path.read_text().splitlines()] == ["ok", "crash"]


def test_no_prediction_for_a_gpu_without_a_profile():
    assert S.predicted_peak(RUNS[0], "Some Future GPU 9000") is None
    assert S.predicted_peak(RUNS[0], "NVIDIA H100 80GB HBM3") > GiB


def test_no_prediction_for_a_plan_the_planner_refuses(checkpointing_gate_closed):
    refused = SweepRun(RUNS[0].model, "partial checkpointing, not yet measured", RUNS[0].plan.with_(checkpoint_every=2))
    assert S.predicted_peak(refused, "NVIDIA H200") is None
