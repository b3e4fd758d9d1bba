"""One forgebot replica as its own process, for fault tests that kill replicas.

It runs the bot as `forgebot serve` does (Runtime.start, SIGTERM -> Runtime.stop), plus a
`heartbeat` job every second whose body appends `start`/`end` lines for its fire time to the
file `FORGEBOT_TEST_HEARTBEAT` and takes `FORGEBOT_TEST_JOB_SECONDS` in between, so a test can
kill a leader in the middle of a run and see which replica finished which fire time.

    python -m tests.bot.replica PORT
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
from datetime import datetime, timedelta
from pathlib import Path

from bot.runtime import Runtime
from core.catalog import load_catalog
from core.config import Settings
from core.logs import configure_logging
from core.scheduler import JobSpec


async def main(port: int) -> int:
    settings = Settings()
    configure_logging("json", settings.log_level)
    runtime = Runtime(settings, load_catalog(settings.catalog_path))
    await runtime.prepare()
    assert runtime.scheduler is not None
    beats = Path(os.environ["FORGEBOT_TEST_HEARTBEAT"])
    seconds = float(os.environ.get("FORGEBOT_TEST_JOB_SECONDS", "0.5"))
    replica = runtime.scheduler.replica

    def write(line: str) -> None:
        with beats.open("a", encoding="utf-8") as out:
            out.write(line + "\n")

    async def heartbeat(slot: datetime) -> None:
        write(f"{slot.isoformat()} {replica} start")
        await asyncio.sleep(seconds)
        write(f"{slot.isoformat()} {replica} end")

    runtime.scheduler.add(JobSpec("heartbeat", timedelta(seconds=1), heartbeat))
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await runtime.start("127.0.0.1", port)
    print(f"ready {runtime.url}", file=sys.stderr, flush=True)
    await stop.wait()
    await runtime.stop()
    return 0


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):
        raise SystemExit(asyncio.run(main(int(sys.argv[1]))))
