"""What a benchmark ran on, printed first by every benchmark so that a figure can be reproduced.

A figure without its commit, interpreter, core count and the machine's load at the start is
not comparable with anything: the same burst of 100 deploys measures 40 ms or 400 ms depending
on what else the two cores are doing. `bench/report.py` copies these lines into the docs page.
"""

from __future__ import annotations

import os
import platform
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def commit() -> str:
    """The checked-out commit (short), with `+dirty` when the work tree has changes."""
    try:
        head = subprocess.run(
            ["git", "rev-parse", "--short=10", "HEAD"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown (not a git checkout)"
    return head + ("+dirty" if dirty else "")


def load_average() -> tuple[float, float, float]:
    try:
        return os.getloadavg()
    except OSError:
        return (float("nan"),) * 3


def header(name: str) -> str:
    """One line per fact; `name` is the benchmark, e.g. `deploy_throughput`."""
    one, five, fifteen = load_average()
    cores = os.cpu_count() or 0
    return "\n".join(
        [
            f"# bench: {name}",
            f"# when: {datetime.now(UTC).strftime('%Y-%m-%d %H:%M UTC')}",
            f"# commit: {commit()}",
            f"# python: {platform.python_implementation()} {platform.python_version()} "
            f"on {platform.system()} {platform.machine()}",
            f"# cores: {cores}; load average at start: {one:.2f} / {five:.2f} / {fifteen:.2f} "
            f"(1 / 5 / 15 min){busy_note(one, cores)}",
        ]
    )


def busy_note(load: float, cores: int) -> str:
    """A warning when the machine was not quiet: timings then measure the neighbours too."""
    if cores and load > 0.5 * cores:
        return " (busy machine: timings are noisy)"
    return ""


def print_header(name: str) -> None:
    print(header(name), flush=True)


if __name__ == "__main__":
    print_header(sys.argv[1] if len(sys.argv) > 1 else "provenance")
