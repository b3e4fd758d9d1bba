"""The operation kinds the fault suite and `bench/faults.py` drive, each as Slack sends it, with
its side effects (the effective Kubernetes writes, each expected exactly once) and the message
that tells the person the outcome (expected at least once, and once only)."""

from __future__ import annotations

import asyncio
import itertools
import re
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from integrations.sandbox.kube_api import KINDS, Change
from integrations.sandbox.slack_api import RecordedCall
from tests.faults.fleet import (
    DEVELOPER,
    IMAGE,
    ONCALL,
    TERMINAL,
    Bot,
    Fleet,
    Flows,
    Ledger,
    Row,
    until,
)
from tests.tcp_proxy import TcpProxy

DEPLOYMENTS = next(k for k in KINDS if k.plural == "deployments")
_tags = itertools.count(1)


@dataclass
class Stage:
    """The bots, the proxy in front of their database, the flows that drive the current bot
    and the ledger that reads what happened."""

    fleet: Fleet
    proxy: TcpProxy
    flows: Flows
    ledger: Ledger
    current: Bot | None = None
    generation: itertools.count[int] = field(default_factory=lambda: itertools.count(1))

    async def boot(self, prefix: str = "bot") -> Bot:
        """A new bot, ready and driven from now on."""
        bot = self.fleet.start(f"{prefix}-{next(self.generation)}")
        await self.fleet.ready(bot)
        self.current = bot
        await self.flows.use(bot)
        return bot


@dataclass
class Mark:
    """Where the fakes' records stood when a case started: what follows is the case's."""

    kube: int
    slack: int
    started: float

    @staticmethod
    def now(ledger: Ledger) -> Mark:
        with ledger.kube.lock:
            kube = len(ledger.kube.changes)
        with ledger.slack.state.lock:
            slack = len(ledger.slack.state.calls)
        return Mark(kube, slack, time.monotonic())


@dataclass
class Scenario:
    """One operation kind. Subclasses say how to start it, what it changes, what it tells."""

    name: str = ""
    ledger: Ledger | None = None
    kind: str = ""
    """The operation kind (`operation.claimed:KIND` etc. at the fault hook)."""
    writes: int = 0
    """How many Kubernetes writes it makes (`kube.write#1..N` at the fault hook)."""

    def __post_init__(self) -> None:
        self.tag = f"{next(_tags)}"

    async def prepare(self, stage: Stage) -> None:
        """What must exist before (not counted as the case's side effects)."""

    async def act(self, stage: Stage) -> None:
        raise NotImplementedError

    def effects(self) -> list[Change]:
        """The effective Kubernetes writes the operation makes, each exactly once."""
        raise NotImplementedError

    def outcome(self) -> str:
        """A regular expression matching the message that tells the person the outcome."""
        raise NotImplementedError

    def mine(self, row: Row) -> bool:
        raise NotImplementedError


def counted(ledger: Ledger, mark: Mark) -> Counter[Change]:
    with ledger.kube.lock:
        changes = list(ledger.kube.changes[mark.kube :])
    return Counter(c for c in changes if c.verb != "same")


def told(ledger: Ledger, mark: Mark, pattern: str) -> int:
    """How many messages matching `pattern` (a regular expression) were sent since `mark`
    (posts, ephemerals, response URLs; updates of one message count once)."""
    with ledger.slack.state.lock:
        calls = list(ledger.slack.state.calls[mark.slack :])
    seen: set[str] = set()
    count = 0
    for call in calls:
        if call.fault is not None or not re.search(pattern, _text(call)):
            continue
        if call.method == "chat.update":
            key = f"{call.args.get('channel')}/{call.args.get('ts')}"
            if key in seen:
                continue
            seen.add(key)
            if any(c.method == "chat.postMessage" and re.search(pattern, _text(c)) for c in calls):
                continue  # posted with it already
        elif call.method not in ("chat.postMessage", "chat.postEphemeral", "response_url"):
            continue
        count += 1
    return count


def _text(call: RecordedCall) -> str:
    return str(call.args.get("text", "")) + " " + str(call.args.get("blocks", ""))


@dataclass
class Verdict:
    rows: list[Row]
    stuck: list[Row]
    never: list[str]
    """Operation kinds the request should have started and did not (a lost request)."""
    duplicated: list[str]
    missing: list[str]
    told: int
    said: list[str] = field(default_factory=list)
    """What the bot sent to Slack meanwhile (shown when a case fails)."""

    def problems(self, *, retold: bool = False) -> list[str]:
        """What breaks the contract. `retold`: the fault hit the instant between Slack's answer
        to the outcome message and its record (the contract's one at-least-once window), where
        the person may be told twice, never more and never zero times."""
        found = [f"stuck: {r.kind} {r.state} {r.error}" for r in self.stuck]
        found += [f"never started: {kind}" for kind in self.never]
        found += [f"side effect more than once: {d}" for d in self.duplicated]
        found += [f"side effect missing: {m}" for m in self.missing]
        if self.told == 0:
            found.append("the person was not told the outcome")
        elif self.told > (2 if retold else 1):
            found.append(f"the outcome was told {self.told} times")
        return found


async def settle(stage: Stage, scenario: Scenario, mark: Mark, *, within: float) -> Verdict:
    """Wait (bounded by `within` seconds from the case's start) for the scenario's operations
    to be terminal and the person told; then judge."""

    scenario.ledger = stage.ledger

    def mine() -> list[Row]:
        return [r for r in stage.ledger.rows() if scenario.mine(r)]

    def done() -> bool:
        rows = mine()
        return {scenario.kind} <= {r.kind for r in rows} and all(r.state in TERMINAL for r in rows)

    left = max(within - (time.monotonic() - mark.started), 1.0)
    try:
        await until(done, left, f"{scenario.name} terminal")
        left = max(within - (time.monotonic() - mark.started), 1.0)
        await until(lambda: told(stage.ledger, mark, scenario.outcome()), left, "the outcome told")
    except AssertionError:
        pass  # judged below
    rows = mine()
    changes = counted(stage.ledger, mark)
    expected = scenario.effects()
    duplicated = [f"{c} x{n}" for c, n in changes.items() if n > 1]
    missing = [str(c) for c in expected if changes[c] == 0]
    never = [] if any(r.kind == scenario.kind for r in rows) else [scenario.kind]
    with stage.ledger.slack.state.lock:
        said = [
            f"{c.method}: {str(c.args.get('text', ''))[:160]}"
            for c in stage.ledger.slack.state.calls[mark.slack :]
            if c.method in ("chat.postMessage", "chat.postEphemeral", "chat.update", "response_url")
        ]
    return Verdict(
        rows,
        [r for r in rows if r.state not in TERMINAL],
        never,
        duplicated,
        missing,
        told(stage.ledger, mark, scenario.outcome()),
        said,
    )


# --- the kinds ----------------------------------------------------------------------------------
class Provision(Scenario):
    def __init__(self) -> None:
        super().__init__(name="provision", kind="env.provision", writes=5)
        self.env = f"f{self.tag}"
        self.namespace = f"pv-{self.env}"

    async def act(self, stage: Stage) -> None:
        await stage.flows.request_environment(DEVELOPER, self.env)

    def effects(self) -> list[Change]:
        ns = self.namespace
        return [
            Change("create", "namespaces", "", ns),
            Change("create", "resourcequotas", ns, "forgebot-quota"),
            Change("create", "limitranges", ns, "forgebot-defaults"),
            Change("create", "rolebindings", ns, "forgebot-team-edit"),
            Change("create", "networkpolicies", ns, "forgebot-isolate"),
        ]

    def outcome(self) -> str:
        return re.escape(f"*{self.namespace}* is ready")

    def mine(self, row: Row) -> bool:
        if row.kind == "env.request":
            return row.payload.get("name") == self.namespace
        return row.kind == self.kind and row.payload.get("env_id") == self.env_id

    @property
    def env_id(self) -> int | None:
        assert self.ledger is not None
        return self.ledger.env_id(self.namespace)


class Delete(Scenario):
    def __init__(self) -> None:
        super().__init__(name="delete", kind="env.delete", writes=1)
        self.env = f"d{self.tag}"
        self.namespace = f"pv-{self.env}"

    async def prepare(self, stage: Stage) -> None:
        before = Mark.now(stage.ledger)
        await stage.flows.request_environment(DEVELOPER, self.env)
        await until(
            lambda: told(stage.ledger, before, re.escape(f"*{self.namespace}* is ready")),
            60,
            "provisioned",
        )

    async def act(self, stage: Stage) -> None:
        token = await stage.flows.command(DEVELOPER, "/env", f"delete {self.namespace}")
        button = await stage.flows.confirm_button(token, "env_confirm_delete")
        await stage.flows.press(DEVELOPER, button["action_id"], button["value"])

    def effects(self) -> list[Change]:
        return [Change("delete", "namespaces", "", self.namespace)]

    def outcome(self) -> str:
        return re.escape(f"*{self.namespace}* was deleted")

    def mine(self, row: Row) -> bool:
        assert self.ledger is not None
        return row.kind == self.kind and row.payload.get("env_id") == self.ledger.env_id(
            self.namespace
        )


class Extend(Scenario):
    def __init__(self) -> None:
        super().__init__(name="extend", kind="env.extend", writes=1)
        self.env = f"e{self.tag}"
        self.namespace = f"pv-{self.env}"

    async def prepare(self, stage: Stage) -> None:
        await Delete.prepare(self, stage)  # type: ignore[arg-type]

    async def act(self, stage: Stage) -> None:
        await stage.flows.command(DEVELOPER, "/env", f"extend {self.namespace} 1d")

    def effects(self) -> list[Change]:
        return [Change("change", "namespaces", "", self.namespace)]

    def outcome(self) -> str:
        name = re.escape(self.namespace)
        return f"{name} now expires|restarted while extending {name}: it now expires"

    def mine(self, row: Row) -> bool:
        return row.kind == self.kind and row.payload.get("name") == self.namespace


class Deploy(Scenario):
    def __init__(self) -> None:
        super().__init__(name="deploy", kind="deploy.rollout", writes=1)
        self.version = f"1.5.{self.tag}"

    async def act(self, stage: Stage) -> None:
        await stage.flows.command(DEVELOPER, "/deploy", f"checkout {self.version} to staging")

    def effects(self) -> list[Change]:
        return [Change("change", "deployments", "checkout-staging", "checkout")]

    def outcome(self) -> str:
        return f"checkout staging: deploy of {re.escape(self.version)} succeeded"

    def mine(self, row: Row) -> bool:
        return row.kind in (self.kind, "deploy.request") and self.version in str(row.payload)


class Rollback(Scenario):
    def __init__(self) -> None:
        super().__init__(name="rollback", kind="deploy.rollback", writes=1)
        self.version = f"2.0.{self.tag}"

    async def prepare(self, stage: Stage) -> None:
        """A release to roll back from, made behind forgebot's back (not a counted write)."""
        stage.ledger.kube.patch(
            DEPLOYMENTS,
            "checkout",
            "checkout",
            "application/strategic-merge-patch+json",
            {
                "spec": {
                    "template": {
                        "spec": {
                            "containers": [{"name": "app", "image": f"{IMAGE}:{self.version}"}]
                        }
                    }
                }
            },
        )

    async def act(self, stage: Stage) -> None:
        token = await stage.flows.command(ONCALL, "/rollback", "checkout prod")
        button = await stage.flows.confirm_button(token, "deploy_rollback_confirm")
        await stage.flows.press(
            ONCALL, button["action_id"], button["value"], block_id="rollback-confirm"
        )

    def effects(self) -> list[Change]:
        return [Change("change", "deployments", "checkout", "checkout")]

    def outcome(self) -> str:
        return r"checkout prod: rollback of \S+ succeeded"

    def mine(self, row: Row) -> bool:
        return row.kind == self.kind and self.version in str(row.payload)


SCENARIOS: dict[str, type[Scenario]] = {
    "provision": Provision,
    "delete": Delete,
    "extend": Extend,
    "deploy": Deploy,
    "rollback": Rollback,
}


def steps(scenario: Scenario) -> list[str]:
    """Every named step of the kind where a process can die (the fault hook's names)."""
    if isinstance(scenario, Extend):  # answered in place: no claim, no handler of its own
        return ["operation.accepted:env.extend", "kube.write#1"]
    kill = ["operation.accepted:env.request"] if isinstance(scenario, Provision) else []
    kill += [f"operation.claimed:{scenario.kind}"]
    kill += [f"kube.write#{n}" for n in range(1, scenario.writes + 1)]
    if isinstance(scenario, Provision):
        kill.append("slack.dm#2")  # state written `active`; the "ready" message not yet sent
    if isinstance(scenario, Delete):
        kill.append("slack.dm#1")  # state written `deleted`; the "deleted" message not yet sent
    if isinstance(scenario, Deploy):
        kill.insert(0, "slack.post#1")  # the rollout recorded and announced, its row not written
    kill += [f"operation.handled:{scenario.kind}", f"operation.finished:{scenario.kind}"]
    return kill


def describe(verdict: Verdict, *, retold: bool = False) -> dict[str, Any]:
    return {
        "rows": [(r.kind, r.state, r.attempts, r.error) for r in verdict.rows],
        "problems": verdict.problems(retold=retold),
        "said": verdict.said[-8:],
    }


class Outage:
    """Cuts the database (the proxy) from inside a fake, at a precise step of an operation:
    right after the n-th Kubernetes write is applied (before the bot hears the answer), or
    when a Slack message matching a pattern arrives. `restore` ends the outage."""

    def __init__(self, stage: Stage) -> None:
        self.stage = stage
        self.loop = asyncio.get_running_loop()
        self.cut = asyncio.Event()
        self._unsubscribe: Callable[[], None] | None = None

    def _cut_now(self) -> None:
        if self.cut.is_set():
            return
        asyncio.run_coroutine_threadsafe(self.stage.proxy.cut(), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.cut.set)

    def at_kube_write(self, nth: int) -> None:
        seen = 0

        def after(change: Change) -> None:
            nonlocal seen
            seen += 1
            if seen == nth:
                self.stage.ledger.kube.after_write = None
                self._cut_now()

        self.stage.ledger.kube.after_write = after

    def at_message(self, pattern: str) -> None:
        def listener(call: RecordedCall) -> None:
            if call.method not in ("chat.update", "chat.postMessage", "response_url"):
                return
            if re.search(pattern, _text(call)):
                self._cut_now()

        self._unsubscribe = self.stage.ledger.slack.subscribe(listener)

    async def restore(self) -> None:
        self.stage.ledger.kube.after_write = None
        if self._unsubscribe is not None:
            self._unsubscribe()
        await self.stage.proxy.restore()
