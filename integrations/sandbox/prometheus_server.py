"""A real Prometheus on loopback, its history backfilled with `promtool` from synthetic stories.

Used by the tests (session fixture), `bench/slo_query.py` and `forgebot demo` when the
`prometheus` and `promtool` binaries are on PATH. Prometheus serves backfilled blocks only where
they do not overlap its head, so the data ends in the past (`end`) and every query passes an
evaluation time at or before it.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from integrations.sandbox.slo_data import Counters, Story, generate, openmetrics

CONFIG = "global:\n  scrape_interval: 1h\n"


class PrometheusNotInstalled(Exception):
    """The binaries are missing; the message says how to get them."""


HOW_TO_INSTALL = (
    "install Prometheus to see SLOs from synthetic data: `apt-get install prometheus` "
    "(Debian/Ubuntu), `brew install prometheus` (macOS), or put the `prometheus` and "
    "`promtool` binaries from https://prometheus.io/download/ on PATH"
)


@dataclass
class RunningPrometheus:
    url: str
    process: subprocess.Popen[bytes]
    data: dict[str, Counters]
    end: datetime
    workdir: Path

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def binaries() -> tuple[str, str]:
    prometheus, promtool = shutil.which("prometheus"), shutil.which("promtool")
    if prometheus is None or promtool is None:
        raise PrometheusNotInstalled(HOW_TO_INSTALL)
    return prometheus, promtool


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def start_prometheus(
    stories: list[Story],
    end: datetime,
    workdir: Path,
    *,
    ready_timeout: float = 60.0,
    port: int | None = None,
) -> RunningPrometheus:
    """Backfill and start Prometheus on `port` (a free one when None; the demo picks it ahead
    so the bot can be configured before Prometheus is ready)."""
    prometheus, promtool = binaries()
    workdir.mkdir(parents=True, exist_ok=True)
    data = generate(stories, end)
    source = workdir / "series.om"
    with source.open("w", encoding="utf-8") as out:
        out.writelines(openmetrics(stories, data))
    tsdb = workdir / "tsdb"
    tsdb.mkdir(exist_ok=True)
    subprocess.run(  # noqa: S603 - our own arguments, binaries found on PATH
        [
            promtool,
            "tsdb",
            "create-blocks-from",
            "openmetrics",
            "--max-block-duration=240h",
            str(source),
            str(tsdb),
        ],
        check=True,
        capture_output=True,
    )
    source.unlink()
    config = workdir / "prometheus.yml"
    config.write_text(CONFIG, encoding="utf-8")
    port = port or free_port()
    log = (workdir / "prometheus.log").open("wb")
    process = subprocess.Popen(  # noqa: S603 - our own arguments
        [
            prometheus,
            f"--config.file={config}",
            f"--storage.tsdb.path={tsdb}",
            "--storage.tsdb.retention.time=3650d",
            f"--web.listen-address=127.0.0.1:{port}",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    running = RunningPrometheus(url, process, data, end, workdir)
    deadline = time.monotonic() + ready_timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"prometheus exited; see {workdir / 'prometheus.log'}")
        try:
            with urllib.request.urlopen(url + "/-/ready", timeout=1) as response:  # noqa: S310
                if response.status == 200:
                    return running
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(0.1)
    running.stop()
    raise RuntimeError(f"prometheus did not become ready; see {workdir / 'prometheus.log'}")
