"""A real Alertmanager (and a real Prometheus evaluating alert rules into it) on loopback.

Used by the tests and `bench/alerts.py`. The binary is the Debian package's
`prometheus-alertmanager` (upstream names it `alertmanager`); both names are looked up on PATH.
Clustering is off (`--cluster.listen-address=`) so nothing binds a fixed port.
"""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

HOW_TO_INSTALL = (
    "install Alertmanager: `apt-get install prometheus-alertmanager` (Debian/Ubuntu) or put the "
    "`alertmanager` binary from https://prometheus.io/download/ on PATH"
)


class AlertmanagerNotInstalled(Exception):
    pass


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def alertmanager_binary() -> str:
    found = shutil.which("alertmanager") or shutil.which("prometheus-alertmanager")
    if found is None:
        raise AlertmanagerNotInstalled(HOW_TO_INSTALL)
    return found


@dataclass
class RunningProcess:
    url: str
    process: subprocess.Popen[bytes]
    workdir: Path

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def get(self, path: str) -> Any:
        with urllib.request.urlopen(self.url + path, timeout=5) as response:  # noqa: S310
            return json.loads(response.read())

    def post(self, path: str, body: Any) -> Any:
        request = urllib.request.Request(  # noqa: S310 - loopback
            self.url + path,
            data=json.dumps(body).encode(),
            headers={"Content-Type": "application/json"},
            method="POST",
        )
        with urllib.request.urlopen(request, timeout=5) as response:  # noqa: S310
            raw = response.read()
            return json.loads(raw) if raw else None


def _wait_ready(running: RunningProcess, log: Path, timeout: float) -> RunningProcess:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if running.process.poll() is not None:
            raise RuntimeError(f"{log.stem} exited; see {log}")
        try:
            with urllib.request.urlopen(running.url + "/-/ready", timeout=1) as response:  # noqa: S310
                if response.status == 200:
                    return running
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(0.1)
    running.stop()
    raise RuntimeError(f"{log.stem} did not become ready; see {log}")


def alertmanager_config(
    webhook_url: str,
    token: str,
    *,
    group_by: list[str],
    group_wait: str = "1s",
    group_interval: str = "1s",
    repeat_interval: str = "1h",
) -> dict[str, Any]:
    return {
        "route": {
            "receiver": "forgebot",
            "group_by": group_by,
            "group_wait": group_wait,
            "group_interval": group_interval,
            "repeat_interval": repeat_interval,
        },
        "receivers": [
            {
                "name": "forgebot",
                "webhook_configs": [
                    {
                        "url": webhook_url,
                        "send_resolved": True,
                        "max_alerts": 0,
                        "http_config": {"authorization": {"type": "Bearer", "credentials": token}},
                    }
                ],
            }
        ],
    }


def start_alertmanager(
    config: dict[str, Any], workdir: Path, *, port: int | None = None, ready_timeout: float = 30.0
) -> RunningProcess:
    binary = alertmanager_binary()
    workdir.mkdir(parents=True, exist_ok=True)
    path = workdir / "alertmanager.yml"
    path.write_text(json.dumps(config), encoding="utf-8")  # JSON is YAML
    port = port or free_port()
    log = workdir / "alertmanager.log"
    process = subprocess.Popen(  # noqa: S603 - our own arguments, binary found on PATH
        [
            binary,
            f"--config.file={path}",
            f"--storage.path={workdir / 'data'}",
            f"--web.listen-address=127.0.0.1:{port}",
            "--cluster.listen-address=",
            f"--web.external-url=http://127.0.0.1:{port}",
        ],
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
    )
    return _wait_ready(
        RunningProcess(f"http://127.0.0.1:{port}", process, workdir), log, ready_timeout
    )


def start_rule_prometheus(
    rules: dict[str, Any], alertmanager_url: str, workdir: Path, *, ready_timeout: float = 60.0
) -> RunningProcess:
    """A Prometheus with no data of its own that evaluates `rules` every second and sends the
    alerts to `alertmanager_url`, as a production Prometheus does."""
    prometheus = shutil.which("prometheus")
    if prometheus is None:
        raise AlertmanagerNotInstalled("install Prometheus: `apt-get install prometheus`")
    workdir.mkdir(parents=True, exist_ok=True)
    (workdir / "rules.yml").write_text(json.dumps(rules), encoding="utf-8")
    target = alertmanager_url.removeprefix("http://")
    config = {
        "global": {"evaluation_interval": "1s", "scrape_interval": "1h"},
        "rule_files": [str(workdir / "rules.yml")],
        "alerting": {"alertmanagers": [{"static_configs": [{"targets": [target]}]}]},
    }
    (workdir / "prometheus.yml").write_text(json.dumps(config), encoding="utf-8")
    port = free_port()
    log = workdir / "prometheus.log"
    process = subprocess.Popen(  # noqa: S603 - our own arguments
        [
            prometheus,
            f"--config.file={workdir / 'prometheus.yml'}",
            f"--storage.tsdb.path={workdir / 'tsdb'}",
            f"--web.listen-address=127.0.0.1:{port}",
            "--rules.alert.resend-delay=1s",
        ],
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
    )
    return _wait_ready(
        RunningProcess(f"http://127.0.0.1:{port}", process, workdir), log, ready_timeout
    )
