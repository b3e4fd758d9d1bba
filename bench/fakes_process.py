"""The sandbox's fake Kubernetes API server and fake Slack Web API in a process of their own,
for the benchmarks that measure the bot at scale.

In the bot's process the fakes compete with it for the one interpreter lock: at 20,000
Deployments the fake API server's copying and patching cost as much CPU as the bot's sweep, so
the sweep's time measured both. Here the benchmark process is the bot alone (its time, its
memory); the fakes run in a child started with `python -m bench.fakes_process`, driven by one
JSON command per line on its stdin, answering one JSON line each on its stdout.

    fakes = FakesProcess.start(slack_token="xoxb-bench")
    fakes.create_many("Namespace", [("", body), ...])
    fakes.set_latency(0.02)
    ...
    fakes.stop()
"""

from __future__ import annotations

import contextlib
import json
import subprocess
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]


class FakesProcess:
    """The parent's handle on the child: each method is one command and its answer."""

    def __init__(self, child: subprocess.Popen[str], kube_url: str, slack_url: str) -> None:
        self.child, self.kube_url, self.slack_url = child, kube_url, slack_url

    @classmethod
    def start(cls, *, slack_token: str) -> FakesProcess:
        child = subprocess.Popen(
            [sys.executable, "-m", "bench.fakes_process", slack_token],
            cwd=ROOT,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            bufsize=1,
        )
        assert child.stdout is not None
        hello = json.loads(child.stdout.readline())
        return cls(child, hello["kube"], hello["slack"])

    def _ask(self, op: str, **args: Any) -> Any:
        assert self.child.stdin is not None and self.child.stdout is not None
        self.child.stdin.write(json.dumps({"op": op, **args}) + "\n")
        self.child.stdin.flush()
        line = self.child.stdout.readline()
        if not line:
            raise RuntimeError(f"the fakes' process exited ({self.child.poll()}) during {op}")
        answer = json.loads(line)
        if "error" in answer:
            raise RuntimeError(f"the fakes' process failed {op}: {answer['error']}")
        return answer.get("value")

    def create_many(self, kind: str, objects: Iterable[tuple[str, dict[str, Any]]]) -> int:
        """Create (namespace, body) objects of `kind` directly in the fake's state."""
        return int(self._ask("create", kind=kind, objects=[list(o) for o in objects]))

    def set_latency(self, seconds: float) -> None:
        self._ask("latency", seconds=seconds)

    def kube_stats(self, *, reset_in_flight: bool = False) -> tuple[int, int]:
        """(requests served so far, most in flight since the last reset)."""
        requests, most = self._ask("stats", reset=reset_in_flight)
        return int(requests), int(most)

    def replicas(self, kind: str = "Deployment") -> dict[tuple[str, str], int]:
        return {
            (namespace, name): int(count)
            for namespace, name, count in self._ask("replicas", kind=kind)
        }

    def slack_calls(self, method: str) -> int:
        return int(self._ask("slack_calls", method=method))

    def write_kubeconfig(self, path: Path, contexts: list[str]) -> Path:
        self._ask("kubeconfig", path=str(path), contexts=contexts)
        return path

    def rss_mb(self) -> float:
        return float(self._ask("rss"))

    def stop(self) -> None:
        if self.child.poll() is None:
            with contextlib.suppress(RuntimeError, OSError, ValueError):
                self._ask("stop")
            try:
                self.child.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.child.kill()
                self.child.wait()


def _serve(slack_token: str) -> None:
    """The child: start both fakes, print their URLs, then answer commands until `stop`."""
    sys.path.insert(0, str(ROOT))
    from integrations.sandbox.kube_api import KINDS, start_fake_kube
    from integrations.sandbox.slack_api import start_fake_slack

    kinds = {k.kind: k for k in KINDS}
    kube = start_fake_kube()
    slack = start_fake_slack(slack_token)
    print(json.dumps({"kube": kube.url, "slack": slack.api_url}), flush=True)
    state = kube.state

    def handle(command: dict[str, Any]) -> Any:
        op = command["op"]
        if op == "create":
            kind = kinds[command["kind"]]
            for namespace, body in command["objects"]:
                state.create(kind, namespace, body)
            return len(command["objects"])
        if op == "latency":
            state.faults.latency = float(command["seconds"])
            return None
        if op == "stats":
            with state.lock:
                answer = [len(state.requests), state.max_in_flight]
                if command.get("reset"):
                    state.max_in_flight = 0
            return answer
        if op == "replicas":
            return [
                [o["metadata"]["namespace"], o["metadata"]["name"], o["spec"].get("replicas", 1)]
                for o in state.list(kinds[command["kind"]], None)
            ]
        if op == "slack_calls":
            return len(slack.state.find(command["method"]))
        if op == "kubeconfig":
            kube.write_kubeconfig(Path(command["path"]), list(command["contexts"]))
            return None
        if op == "rss":
            for line in Path("/proc/self/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
            return float("nan")
        raise ValueError(f"unknown command {op}")

    try:
        for line in sys.stdin:
            command = json.loads(line)
            if command["op"] == "stop":
                print(json.dumps({"value": None}), flush=True)
                break
            try:
                answer = {"value": handle(command)}
            except Exception as exc:  # reported to the parent, which raises it
                answer = {"error": f"{type(exc).__name__}: {exc}"}
            print(json.dumps(answer), flush=True)
    finally:
        kube.stop()
        slack.stop()


if __name__ == "__main__":
    _serve(sys.argv[1] if len(sys.argv) > 1 else "xoxb-bench")
