"""How long a newcomer waits in `forgebot demo`: process start to the first prompt (target:
under 5 s), to the line saying the bot is up (a command typed at the prompt runs from then on;
the bot loads behind the prompt), and to the lines saying SLOs and costs are ready.

Runs the demo in a pseudo-terminal, as a person would, presses Enter every half second until
the lines have appeared, then leaves with `:quit`. Prints the provenance header (with the load
average at the start) and the load average at the end.

    uv run python bench/demo_start.py [--runs 3]
"""

from __future__ import annotations

import argparse
import os
import pty
import select
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from bench.provenance import print_header  # noqa: E402

PROMPT = b"U0DEVELOPER> "
SLOS, COSTS = b"SLOs are ready", b"Costs are ready"
BOT_READY = b"the bot is ready"


def one_run(timeout: float) -> dict[str, float]:
    started = time.monotonic()
    pid, fd = pty.fork()
    if pid == 0:  # the demo, in the terminal
        os.chdir(ROOT)
        os.execv(sys.executable, [sys.executable, "-c", "from bot.cli import main; main(['demo'])"])
    seen = b""
    figures: dict[str, float] = {}
    next_enter = 0.0
    try:
        while time.monotonic() - started < timeout:
            ready, _, _ = select.select([fd], [], [], 0.1)
            if ready:
                try:
                    chunk = os.read(fd, 65536)
                except OSError:
                    break
                if not chunk:
                    break
                seen += chunk
            now = time.monotonic() - started
            if "prompt" not in figures and PROMPT in seen:
                figures["prompt"] = now
            for name, token in (
                ("bot ready", BOT_READY),
                ("SLOs ready", SLOS),
                ("costs ready", COSTS),
            ):
                if name not in figures and token in seen:
                    figures[name] = now
            if "prompt" in figures and now >= next_enter:
                os.write(fd, b"\n")
                next_enter = now + 0.5
            if all(n in figures for n in ("bot ready", "SLOs ready", "costs ready")):
                break
        os.write(fd, b":quit\n")
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            ready, _, _ = select.select([fd], [], [], 0.2)
            if ready:
                try:
                    if not os.read(fd, 65536):
                        break
                except OSError:
                    break
    finally:
        os.waitpid(pid, 0)
    if os.environ.get("BENCH_DEBUG"):
        print(seen[-3000:].decode(errors="replace"))
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--timeout", type=float, default=180.0)
    args = parser.parse_args()
    print_header("demo_start")
    runs = [one_run(args.timeout) for _ in range(args.runs)]
    print(f"forgebot demo start-up, {args.runs} runs (seconds from process start):")
    for name in ("prompt", "bot ready", "SLOs ready", "costs ready"):
        values = [r[name] for r in runs if name in r]
        if values:
            print(
                f"  {name:26} median {statistics.median(values):6.1f}  "
                f"min {min(values):6.1f}  max {max(values):6.1f}  ({len(values)} runs)"
            )
        else:
            print(f"  {name:26} not seen")
    print(f"load average: {' '.join(f'{v:.2f}' for v in os.getloadavg())}")


if __name__ == "__main__":
    main()
