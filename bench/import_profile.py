"""Where `forgebot serve` spends its start-up importing: `python -X importtime`, summarised.

`forgebot serve` listens (`/healthz`) after importing `bot.cli` and `bot.server`, then imports
`bot.runtime` in a thread and becomes ready (`/readyz`). This prints, for both phases, the
wall time of the import (median of three fresh interpreters) and the packages that cost the
most (self time summed per top-level package, from `-X importtime`), and which of the heavy
stacks (AWS, Kubernetes, Alembic) were imported at all.

    uv run python bench/import_profile.py [--top 12]
"""

from __future__ import annotations

import argparse
import resource
import statistics
import subprocess
import sys
import time
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.provenance import print_header  # noqa: E402

PHASES = [
    ("listening (/healthz)", "import bot.cli, bot.server"),
    ("ready (/readyz)", "import bot.cli, bot.server, bot.runtime"),
]
HEAVY = {
    "boto3": "AWS (boto3)",
    "kubernetes": "Kubernetes client",
    "alembic": "Alembic",
    "dulwich": "dulwich (GitOps)",
}


def seconds(code: str) -> tuple[float, float]:
    """Median wall and CPU (user + system) seconds of a fresh interpreter running `code`."""
    walls, cpus = [], []
    for _ in range(3):
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        started = time.perf_counter()
        subprocess.run([sys.executable, "-c", code], cwd=ROOT, check=True)
        walls.append(time.perf_counter() - started)
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpus.append(after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime)
    return statistics.median(walls), statistics.median(cpus)


def profile(code: str) -> dict[str, int]:
    """Self time in microseconds per top-level package."""
    done = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", code],
        cwd=ROOT,
        check=True,
        capture_output=True,
        text=True,
    )
    per_package: dict[str, int] = defaultdict(int)
    for line in done.stderr.splitlines():
        if not line.startswith("import time:") or "self [us]" in line:
            continue
        self_us, _cumulative, name = line.removeprefix("import time:").split("|")
        per_package[name.strip().split(".")[0]] += int(self_us)
    return dict(per_package)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--top", type=int, default=12)
    args = parser.parse_args()
    print_header("import_profile")
    _, baseline = seconds("pass")
    print(f"bare interpreter start: {baseline:.2f} s CPU")
    for label, code in PHASES:
        wall, cpu = seconds(code)
        packages = profile(code)
        total = sum(packages.values())
        print(
            f"\n{label}: `{code}` takes {cpu:.2f} s CPU ({wall:.2f} s wall; "
            f"{cpu / baseline:.1f}x a bare interpreter start)"
        )
        print(f"  -X importtime self time {total / 1e6:.2f} s; the {args.top} largest packages:")
        for name, micros in sorted(packages.items(), key=lambda kv: -kv[1])[: args.top]:
            print(f"  {name:<24} {micros / 1000:8.0f} ms  {100 * micros / total:5.1f} %")
        loaded = [what for module, what in HEAVY.items() if module in packages]
        print(f"  heavy stacks imported: {', '.join(loaded) if loaded else 'none'}")


if __name__ == "__main__":
    main()
