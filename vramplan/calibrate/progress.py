"""A calibration sweep's progress on stderr: run i of n, the time left, each run's measured peak against its
prediction as it lands.

On a terminal the running run's line is redrawn in place once a second (carriage return, erase to the end of the
line) with its elapsed time; anywhere else (a log file, a pipe, CI) each event is one plain line. stdout is never
written, so `calibrate --json` keeps it for its one JSON object.

The time left is the design's per-run estimate (vramplan.calibrate.design.estimated_seconds) of the runs still to
go, scaled by how the finished runs' wall time compared with their estimates: a measured pace, not a guess, once
one run has landed.
"""
from __future__ import annotations

import sys
import threading
import time

from ..units import GiB
from .design import SweepRun, estimated_seconds

ERASE_LINE = "\r\x1b[K"


def clock_text(seconds: float) -> str:
    """0:42, 12:05, 1:02:05."""
    s = max(0, int(round(seconds)))
    h, rest = divmod(s, 3600)
    m, s = divmod(rest, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m}:{s:02d}"


def peak_words(record: dict, predicted_bytes: int | None) -> str:
    """'ok: peak 12.31 GiB, predicted 12.10 GiB (-1.7%) in 45 s', or the failure and its reason."""
    peak = (record.get("nvml") or {}).get("peak")
    wall = f" in {record.get('wall_s', 0):.0f} s"
    if not peak:
        return f"{record.get('status', 'error')}: {str(record.get('error', ''))[:300]}{wall}"
    out = f"{record['status']}: peak {peak / GiB:.2f} GiB"
    if predicted_bytes:
        out += f", predicted {predicted_bytes / GiB:.2f} GiB ({100 * (predicted_bytes - peak) / peak:+.1f}%)"
    else:
        out += ", no prediction (this GPU has no catalog profile)"
    return out + wall


class SweepProgress:
    """Tells a stream (stderr by default) how a sweep of `runs` goes: start(i) before run i, done(i, record,
    predicted_bytes) after it, say(text) for anything else; close() at the end."""

    def __init__(self, runs: list[SweepRun], stream=None, clock=time.monotonic, live: bool | None = None,
                 estimate=estimated_seconds):
        self.stream = stream or sys.stderr
        self.clock = clock
        self.live = self.stream.isatty() if live is None else live
        self.estimates = [estimate(r) for r in runs]
        self.runs = runs
        self.spent = 0.0  # wall seconds of the finished runs
        self.finished = 0
        self._lock = threading.Lock()
        self._ticker: threading.Thread | None = None
        self._stop = threading.Event()
        self._running: tuple[int, float] | None = None  # (index, start time) of the run under way

    def seconds_left(self, i: int) -> float:
        """Before run i (1-based): the estimates of runs i..n, at the pace the finished runs kept."""
        estimated_done = sum(self.estimates[:self.finished])
        pace = self.spent / estimated_done if self.finished and estimated_done else 1.0
        return pace * sum(self.estimates[i - 1:])

    def status(self, i: int, elapsed: float | None = None) -> str:
        left = self.seconds_left(i) - (elapsed or 0.0)
        paced = "" if self.finished else " (estimated)"
        running = f" {clock_text(elapsed)} running," if elapsed is not None else ""
        return (f"[{i}/{len(self.runs)}] {self.runs[i - 1].describe()} ...{running} about {clock_text(left)} left"
                f"{paced}")

    def say(self, text: str) -> None:
        with self._lock:
            self._write((ERASE_LINE if self.live and self._running else "") + text + "\n")
            if self.live and self._running:
                self._redraw()

    def start(self, i: int) -> None:
        with self._lock:
            self._running = (i, self.clock())
            if self.live:
                self._redraw()
            else:
                self._write(self.status(i) + "\n")
        if self.live and self._ticker is None:  # one redraw thread for the whole sweep, ended by close()
            self._ticker = threading.Thread(target=self._tick, daemon=True)
            self._ticker.start()

    def done(self, i: int, record: dict, predicted_bytes: int | None) -> None:
        with self._lock:
            started = self._running[1] if self._running else self.clock()
            self.spent += record.get("wall_s") or (self.clock() - started)
            self.finished += 1
            self._running = None
            head = f"{ERASE_LINE}[{i}/{len(self.runs)}] {self.runs[i - 1].describe()}\n" if self.live else ""
            self._write(f"{head}    {peak_words(record, predicted_bytes)}\n")

    def close(self) -> None:
        with self._lock:
            self._running = None
        self._stop.set()
        if self._ticker is not None:
            self._ticker.join(timeout=2)
            self._ticker = None

    def _redraw(self) -> None:
        i, started = self._running
        self._write(ERASE_LINE + self.status(i, self.clock() - started))

    def _tick(self) -> None:
        while not self._stop.wait(1.0):
            with self._lock:
                if self._running is not None:
                    self._redraw()

    def _write(self, text: str) -> None:
        self.stream.write(text)
        self.stream.flush()
