"""What a benchmark ran on, printed first by every benchmark so that a figure can be reproduced.

A figure without its commit, interpreter, core count and the machine's load at the start is
not comparable with anything: the same burst of 100 deploys measures 40 ms or 400 ms depending
on what else the two cores are doing. `bench/report.py` copies these lines into the docs page.

Bytecode is compiled before anything is timed, as the container image does at build time
(deploy/Dockerfile, `UV_COMPILE_BYTECODE=1`): with `PYTHONDONTWRITEBYTECODE=1` set and no
`.pyc` files, every process start compiles every module again, which more than doubles the
start-up and says nothing about forgebot.
"""

from __future__ import annotations

import compileall
import os
import platform
import subprocess
import sys
import sysconfig
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


def commit_or_override() -> str:
    """`FORGEBOT_BENCH_COMMIT` names the commit of an exported tree (`git archive`), which
    has no repository to ask."""
    return os.environ.get("FORGEBOT_BENCH_COMMIT") or commit()


def compile_bytecode() -> str:
    """Compile the project and its dependencies (skips what is up to date)."""
    targets = [ROOT / name for name in ("bot", "commands", "integrations", "storage")]
    targets.append(Path(sysconfig.get_paths()["purelib"]))
    ok = all(compileall.compile_dir(str(t), quiet=2) for t in targets if t.exists())
    return "compiled ahead, as the image does" if ok else "compiled ahead (some files failed)"


def load_average() -> tuple[float, float, float]:
    try:
        return os.getloadavg()
    except OSError:
        return (float("nan"),) * 3


def header(name: str) -> str:
    """One line per fact; `name` is the benchmark, e.g. `deploy_throughput`."""
    one, five, fifteen = load_average()
    bytecode = compile_bytecode()
    cores = os.cpu_count() or 0
    return "\n".join(
        [
            f"# bench: {name}",
            f"# when: {datetime.now(UTC).strftime('%Y-%m-%d %H:%M UTC')}",
            f"# commit: {commit_or_override()}",
            f"# python: {platform.python_implementation()} {platform.python_version()} "
            f"on {platform.system()} {platform.machine()}",
            f"# cores: {cores}; load average at start: {one:.2f} / {five:.2f} / {fifteen:.2f} "
            f"(1 / 5 / 15 min){busy_note(one, cores)}",
            f"# bytecode: {bytecode}",
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
