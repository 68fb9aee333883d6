"""How fast `vramplan fit llama-3.1-8b --gpu T4` answers, wall clock, as a user runs it; ratio to the 0.25 s goal.

    python bench/fit_speed.py [--runs 10]
"""
import argparse
import statistics
import subprocess
import sys
import time

GOAL_S = 0.25


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=10)
    args = ap.parse_args()
    cmd = [sys.executable, "-m", "vramplan", "fit", "llama-3.1-8b", "--gpu", "T4"]
    subprocess.run(cmd, capture_output=True, check=False)  # warm the file cache
    times = []
    for _ in range(args.runs):
        t0 = time.perf_counter()
        subprocess.run(cmd, capture_output=True, check=True)
        times.append(time.perf_counter() - t0)
    med = statistics.median(times)
    print(f"vramplan fit llama-3.1-8b --gpu T4: median {med:.3f} s over {args.runs} runs "
          f"(min {min(times):.3f}, max {max(times):.3f}); {med / GOAL_S:.2f}x of the {GOAL_S} s goal")


if __name__ == "__main__":
    main()
