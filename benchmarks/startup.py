"""Start-up time of the light commands: `zoo --help`, `zoo plugins`, `zoo cache ls`.

    python benchmarks/startup.py            # 5 runs of each
    python benchmarks/startup.py --runs 9

Each run is a fresh `zoo` process (nothing cached in the interpreter). Prints, per command, the
median wall time and its spread (min-max), the median CPU time (user + system, which other jobs on
the machine change less than wall time) and the machine's load average, and says whether the
median meets the 1.5 s target. The target assumes an idle machine: on a loaded one read the CPU
column. Exit status 1 when a median misses the target.
"""
from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
COMMANDS = (["--help"], ["plugins"], ["cache", "ls"])
TARGET_S = 1.5


def _run_once(args: list[str]) -> tuple[float, float]:
    """Wall and CPU seconds of one `zoo ARGS` process."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    subprocess.run([sys.executable, "-m", "zoo.cli", *args], cwd=ROOT, check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5, help="processes per command (default 5)")
    runs = parser.parse_args().runs
    print(f"load average before: {' '.join(f'{x:.2f}' for x in os.getloadavg())}; {runs} runs per command")
    print(f"{'command':<16}{'wall median':>12}{'wall min-max':>16}{'CPU median':>12}  target {TARGET_S} s")
    missed = False
    for args in COMMANDS:
        _run_once(args)  # warm the file cache: the first process after an install reads from disk
        times = [_run_once(args) for _ in range(runs)]
        walls, cpus = [w for w, _ in times], [c for _, c in times]
        median = statistics.median(walls)
        missed |= median > TARGET_S
        print(f"{'zoo ' + ' '.join(args):<16}{median:>11.2f}s{min(walls):>8.2f}-{max(walls):.2f} s"
              f"{statistics.median(cpus):>11.2f}s  {'ok' if median <= TARGET_S else 'MISSED'}")
    print(f"load average after: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    return int(missed)


if __name__ == "__main__":
    sys.exit(main())
