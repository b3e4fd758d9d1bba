"""The terminal adapter: `forgebot shell` and `forgebot demo`.

The shell plays Slack's part. It runs the real bot (`Runtime`) on loopback, sends it signed
requests with real payload shapes, and renders what the bot sends back, through the HTTP ack,
the response_url, or the (fake) Web API: messages, updates, DMs, modals (as forms you fill
in) and buttons (pressed by number). So what you try in a terminal is what Slack would get.
"""

from __future__ import annotations

import asyncio
import json
import secrets
import shutil
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TextIO

from bot.catalog import Catalog, load_catalog
from bot.clock import OffsetClock
from bot.config import Settings
from bot.render import Buttons, plain, render_blocks, render_message
from bot.runtime import Runtime, StartupError
from commands.offhours import demo as offhours_demo
from commands.offhours.demo import clock_jump
from integrations.aws.cost_explorer import CostSource
from integrations.sandbox.kube_api import FakeKube, start_fake_kube
from integrations.sandbox.prometheus_server import (
    PrometheusNotInstalled,
    RunningPrometheus,
    start_prometheus,
)
from integrations.sandbox.slack_api import RecordedCall, RunningFakeSlack, start_fake_slack
from integrations.sandbox.slack_payloads import (
    SignedSlackClient,
    SlackIdentity,
    app_home_opened,
    block_actions,
    slash_command,
    view_submission,
)
from integrations.sandbox.slo_data import demo_stories

SANDBOX_TOKEN = "xoxb-sandbox-shell"
QUIET_SECONDS = 0.35
MAX_WAIT_SECONDS = 30.0

SHELL_HELP = """\
Type a slash command as you would in Slack, e.g. /forge help, /env list, /deploy checkout 1.4.2 to staging.
  <number>      press the button with that number
  :as USER_ID   act as another Slack user (e.g. :as U0PLATFORM)
  :home         open the App Home tab
  :clock +2h    move the bot's clock on (or :clock Tue 18:30 Europe/Berlin) and run its jobs
  :quit         leave (Ctrl-D works too)"""


class ShellSession:
    def __init__(
        self, runtime: Runtime, fake: RunningFakeSlack, secret: str, who: SlackIdentity, out: TextIO
    ) -> None:
        self.runtime = runtime
        self.fake = fake
        self.client = SignedSlackClient(runtime.url, secret)
        self.who = who
        self.out = out
        self.buttons = Buttons()
        self._seen = 0
        self._views: dict[str, dict[str, Any]] = {}

    def say(self, text: str) -> None:
        print(text, file=self.out, flush=True)

    # --- waiting for the bot ---------------------------------------------------------------
    async def settle(self) -> None:
        """Wait until the bot has finished reacting: no new calls and no running operations."""
        deadline = time.monotonic() + MAX_WAIT_SECONDS
        last_count, quiet_since = -1, time.monotonic()
        while time.monotonic() < deadline:
            await asyncio.sleep(0.05)
            count = len(self.fake.state.calls)
            busy = bool(
                self.runtime.ctx
                and (self.runtime.ctx.operations._tasks or self.runtime.ctx.boundary.in_flight)
            )
            if count != last_count or busy:
                last_count, quiet_since = count, time.monotonic()
            elif time.monotonic() - quiet_since >= QUIET_SECONDS:
                # Paced messages may still wait their turn in the outbox: deliver them too.
                if self.runtime.ctx is not None:
                    await self.runtime.ctx.slack.flush()
                if len(self.fake.state.calls) == count:
                    return

    def new_calls(self) -> list[RecordedCall]:
        calls = self.fake.state.calls[self._seen :]
        self._seen += len(calls)
        return calls

    # --- showing what the bot sent ---------------------------------------------------------
    def show_response(self, body: str, source: dict[str, Any]) -> None:
        if not body:
            return
        try:
            payload = json.loads(body)
        except ValueError:
            self.say(plain(body))
            return
        if isinstance(payload, dict) and (payload.get("text") or payload.get("blocks")):
            prefix = "(only you) " if payload.get("response_type") == "ephemeral" else ""
            self.say(
                prefix
                + render_message(
                    str(payload.get("text", "")), payload.get("blocks"), self.buttons, source
                )
            )

    def show_calls(self) -> dict[str, Any] | None:
        """Print what the bot sent; return the modal it opened, if any."""
        opened: dict[str, Any] | None = None
        for call in self.new_calls():
            args = call.args
            where = str(args.get("channel", ""))
            if call.method == "chat.postMessage":
                ts = self._ts_of(call)
                source = {
                    "channel": where,
                    "ts": ts,
                    "text": args.get("text", ""),
                    "blocks": args.get("blocks") or [],
                }
                self.say(
                    f"\n#{where}:\n"
                    + render_message(
                        str(args.get("text", "")), args.get("blocks"), self.buttons, source
                    )
                )
            elif call.method == "chat.update":
                source = {
                    "channel": where,
                    "ts": args.get("ts", ""),
                    "text": args.get("text", ""),
                    "blocks": args.get("blocks") or [],
                }
                self.say(
                    f"\n#{where} (updated):\n"
                    + render_message(
                        str(args.get("text", "")), args.get("blocks"), self.buttons, source
                    )
                )
            elif call.method == "chat.postEphemeral":
                self.say(
                    "\n(only you) "
                    + render_message(
                        str(args.get("text", "")),
                        args.get("blocks"),
                        self.buttons,
                        {"channel": where},
                    )
                )
            elif call.method == "response_url":
                self.show_response(
                    json.dumps(args), {"channel": self.who.channel_id, "response_url": True}
                )
            elif call.method in ("views.open", "views.push"):
                opened = self._stored_view(call)
            elif call.method == "views.update":
                view = self._stored_view(call)
                self.say(
                    "\n(modal updated)\n"
                    + "\n".join(
                        render_blocks(
                            [b for b in view.get("blocks", []) if b.get("type") != "input"],
                            self.buttons,
                            view,
                        )
                    )
                )
            elif call.method == "views.publish":
                self.say(
                    "\n[App Home]\n"
                    + "\n".join(
                        render_blocks(
                            args.get("view", {}).get("blocks", []),
                            self.buttons,
                            args.get("view", {}),
                        )
                    )
                )
            elif call.method == "files.completeUploadExternal":
                self.say(
                    f"\n#{where or args.get('channel_id', '')}: [file uploaded: {', '.join(str(f.get('title')) for f in args.get('files', []))}]"
                )
        return opened

    def _ts_of(self, call: RecordedCall) -> str:
        channel = str(call.args.get("channel", ""))
        matches = [
            ts
            for (ch, ts), msg in self.fake.state.messages.items()
            if ch == channel and msg.get("text") == call.args.get("text")
        ]
        return matches[-1] if matches else ""

    def _stored_view(self, call: RecordedCall) -> dict[str, Any]:
        view_id = str(call.args.get("view_id", ""))
        if not view_id:
            ids = sorted(self.fake.state.views)
            view_id = ids[-1] if ids else ""
        view = dict(self.fake.state.views.get(view_id, call.args.get("view", {})))
        self._views[view_id] = view
        return view

    # --- acting as the user ----------------------------------------------------------------
    async def command(self, line: str) -> None:
        command, _, text = line.partition(" ")
        response_url = self.fake.new_response_url()
        response = await self.client.send(
            slash_command(self.who, command, text.strip(), response_url)
        )
        if response.status != 200:
            self.say(f"(Slack would show an error: HTTP {response.status})")
        self.show_response(response.body, {"channel": self.who.channel_id})
        await self.after_request()

    async def press(self, number: int) -> None:
        button = self.buttons.by_number.get(number)
        if button is None:
            self.say(f"There is no button [{number}].")
            return
        action = {
            "action_id": button.action.get("action_id", ""),
            "block_id": button.block_id,
            "value": button.action.get("value", ""),
            "text": button.action.get("text", {}),
        }
        source = button.source
        if source.get("type") in ("modal", "home"):
            body = block_actions(self.who, action, response_url="", view=source)
        else:
            body = block_actions(
                self.who,
                action,
                response_url=self.fake.new_response_url(),
                message={
                    "ts": source.get("ts", ""),
                    "text": source.get("text", ""),
                    "blocks": source.get("blocks", []),
                },
                channel_id=str(source.get("channel") or self.who.channel_id),
            )
        response = await self.client.send(body)
        self.show_response(response.body, source)
        await self.after_request()

    async def home(self) -> None:
        await self.client.send(app_home_opened(self.who))
        await self.after_request()

    async def move_clock(self, text: str) -> None:
        """Simulated time: jump the bot's clock, then run every scheduled job for the new time
        (as the scheduler would when it fires), and show what the bot sent."""
        clock, scheduler = self.runtime.clock, self.runtime.scheduler
        if not isinstance(clock, OffsetClock):
            self.say("(the clock can only be moved in the shell and the demo)")
            return
        if text.strip():
            try:
                delta = clock_jump(text, clock.now())
            except ValueError as exc:
                self.say(f"({exc})")
                return
            clock.advance(delta)
            self.client.clock_offset += delta.total_seconds()
        self.say(f"(the bot's clock: {clock.now():%a %d %b %H:%M} UTC)")
        if scheduler is not None:
            for job_id in scheduler.jobs:
                await scheduler.run_now(job_id)
        if self.runtime.ctx is not None:
            await self.runtime.ctx.slack.flush()
        await self.after_request()

    async def after_request(self) -> None:
        await self.settle()
        view = self.show_calls()
        if view is not None and self.lines is not None:
            await self.fill_modal(view)

    lines: AsyncIterator[str] | None = None

    async def ask(self, prompt: str) -> str | None:
        self.out.write(prompt)
        self.out.flush()
        assert self.lines is not None
        try:
            line = await anext(self.lines)
        except StopAsyncIteration:
            return None
        if not sys.stdin.isatty() or self.out is not sys.stdout:
            self.out.write(line + "\n")
        return line

    async def fill_modal(self, view: dict[str, Any]) -> None:
        title = plain(str(view.get("title", {}).get("text", "")))
        self.say(f"\n┌ {title} " + "─" * max(0, 36 - len(title)))
        values: dict[str, dict[str, Any]] = {}
        index = 0
        while index < len(view.get("blocks", [])):
            block = view["blocks"][index]
            index += 1
            if block.get("type") != "input":
                for line in render_blocks([block], self.buttons, view):
                    self.say("│ " + line)
                continue
            answer = await self.answer_field(block)
            if answer is None:
                self.say("└ (modal closed)")
                return
            if answer:
                values[str(block.get("block_id", ""))] = answer
            if block.get("dispatch_action") and answer:
                view = await self.dispatch(view, block, answer, values)
        while True:
            submit = await self.client.send(view_submission(self.who, view, values))
            body = submit.json() if submit.body else None
            if isinstance(body, dict) and body.get("response_action") == "errors":
                for block_id, message in body.get("errors", {}).items():
                    self.say(f"│ ✗ {block_id}: {message}")
                    block = next(b for b in view["blocks"] if b.get("block_id") == block_id)
                    answer = await self.answer_field(block)
                    if answer is None:
                        self.say("└ (modal closed)")
                        return
                    values[block_id] = answer
                continue
            self.say("└ submitted")
            if isinstance(body, dict) and body.get("response_action") in ("update", "push"):
                await self.fill_modal(body["view"])
                return
            await self.after_request()
            return

    async def dispatch(
        self,
        view: dict[str, Any],
        block: dict[str, Any],
        answer: dict[str, Any],
        values: dict[str, dict[str, Any]],
    ) -> dict[str, Any]:
        action_id, element_value = next(iter(answer.items()))
        action = {
            "action_id": action_id,
            "block_id": block.get("block_id", ""),
            "type": element_value.get("type"),
            **element_value,
        }
        current = {**view, "state": {"values": values}}
        await self.client.send(block_actions(self.who, action, response_url="", view=current))
        await self.settle()
        for call in self.new_calls():
            if call.method == "views.update":
                updated = self._stored_view(call)
                for extra in updated.get("blocks", []):
                    if extra.get("type") == "section" and extra.get("block_id", "").startswith(
                        "price"
                    ):
                        self.say("│ " + " ".join(render_blocks([extra], self.buttons, updated)))
                return {**updated, "id": view.get("id", updated.get("id"))}
        return view

    async def answer_field(self, block: dict[str, Any]) -> dict[str, Any] | None:
        element = block.get("element", {})
        action_id = str(element.get("action_id", "value"))
        kind = element.get("type")
        label = plain(str(block.get("label", {}).get("text", "")))
        optional = bool(block.get("optional"))
        hint = plain(str(block.get("hint", {}).get("text", ""))) if block.get("hint") else ""
        if kind in ("static_select", "radio_buttons"):
            options = element.get("options", [])
            initial = element.get("initial_option")
            self.say(f"│ {label}{' (optional)' if optional else ''}:")
            for n, option in enumerate(options, 1):
                self.say(f"│   {n}) {plain(str(option['text']['text']))}")
            while True:
                default = f" [{plain(str(initial['text']['text']))}]" if initial else ""
                reply = await self.ask(f"│ choose 1-{len(options)}{default}: ")
                if reply is None:
                    return None
                reply = reply.strip()
                if not reply and (initial or optional):
                    return (
                        {action_id: {"type": kind, "selected_option": initial}} if initial else {}
                    )
                if reply.isdigit() and 1 <= int(reply) <= len(options):
                    return {action_id: {"type": kind, "selected_option": options[int(reply) - 1]}}
                chosen = [o for o in options if o.get("value") == reply]
                if chosen:
                    return {action_id: {"type": kind, "selected_option": chosen[0]}}
                self.say("│ pick one of the numbers above")
        initial_value = element.get("initial_value") or element.get("initial_date") or ""
        default = f" [{initial_value}]" if initial_value else ""
        suffix = f" ({hint})" if hint else ""
        reply = await self.ask(f"│ {label}{suffix}{' (optional)' if optional else ''}{default}: ")
        if reply is None:
            return None
        value = reply.strip() or str(initial_value)
        if not value and optional:
            return {}
        if kind == "datepicker":
            return {action_id: {"type": kind, "selected_date": value}}
        if kind == "users_select":
            return {action_id: {"type": kind, "selected_user": value}}
        return {action_id: {"type": kind or "plain_text_input", "value": value}}

    async def run(self, lines: AsyncIterator[str], interactive: bool) -> None:
        self.lines = lines
        self.say(
            f"forgebot shell: you are {self.who.user_id} in #{self.who.channel_name}. Type :help for help."
        )
        while True:
            line = await self.ask(f"{self.who.user_id}> " if interactive else "> ")
            if line is None:
                break
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            if line in (":quit", ":q", "exit"):
                break
            if line == ":help":
                self.say(SHELL_HELP)
            elif line.startswith(":as "):
                self.who = SlackIdentity(
                    user_id=line[4:].strip(),
                    channel_id=self.who.channel_id,
                    channel_name=self.who.channel_name,
                )
                self.say(f"(now acting as {self.who.user_id})")
            elif line == ":home":
                await self.home()
            elif line.startswith(":clock"):
                await self.move_clock(line[6:])
            elif line.isdigit():
                await self.press(int(line))
            elif line.startswith("/"):
                await self.command(line)
            else:
                self.say(
                    "Commands start with '/', e.g. /forge help. Type :help for the shell's own commands."
                )
        await self.client.close()


async def _lines_from(source: TextIO | None, path: str | None) -> AsyncIterator[str]:
    if path and path != "-":
        for line in Path(path).read_text(encoding="utf-8").splitlines():
            yield line
        return
    stream = source or sys.stdin
    while True:
        line = await asyncio.to_thread(stream.readline)
        if not line:
            return
        yield line.rstrip("\n")


async def run_session(
    settings: Settings,
    catalog: Catalog,
    *,
    user: str,
    channel: str = "C0PAYMENTS",
    channel_name: str = "payments",
    script: str | None = None,
    out: TextIO | None = None,
    stdin: TextIO | None = None,
    cost_source: CostSource | None = None,
    on_start: Callable[[Runtime], Awaitable[None]] | None = None,
) -> int:
    """Run the bot on loopback with a local stand-in for Slack, and drive it from a terminal."""
    output = out or sys.stdout
    fake = start_fake_slack(SANDBOX_TOKEN)
    # The stand-in Slack knows the catalog's user groups, so group membership works locally.
    for team in catalog.teams:
        for group in (team.usergroup, team.oncall_usergroup):
            if group:
                fake.state.usergroups[group] = list(
                    team.oncall if group == team.oncall_usergroup else team.members
                )
    secret = secrets.token_hex(16)
    shell_settings = settings.model_copy(
        update={
            "slack_api_url": fake.api_url,
            "slack_bot_token": _secret(SANDBOX_TOKEN),
            "slack_signing_secret": _secret(secret),
            "allowed_app_ids": [],
            "allowed_team_ids": [],
            "allowed_enterprise_ids": [],
            # The sandbox's Cost Explorer (moto) cannot forecast: project linearly.
            **({"cost_forecast": "linear"} if cost_source is not None else {}),
        }
    )
    runtime = Runtime(shell_settings, catalog, clock=OffsetClock(), cost_source=cost_source)
    try:
        await runtime.start("127.0.0.1", 0)
        if on_start is not None:
            await on_start(runtime)
    except StartupError as exc:
        print(f"forgebot: {exc}", file=sys.stderr)
        fake.stop()
        return 2
    try:
        who = SlackIdentity(user_id=user, channel_id=channel, channel_name=channel_name)
        session = ShellSession(runtime, fake, secret, who, output)
        interactive = script is None and (stdin or sys.stdin).isatty()
        await session.run(_lines_from(stdin, script), interactive)
    finally:
        await runtime.stop()
        fake.stop()
    return 0


def _secret(value: str) -> Any:
    from pydantic import SecretStr

    return SecretStr(value)


async def run_shell(
    settings: Settings, catalog: Catalog, *, user: str | None, script: str | None
) -> int:
    if user is None:
        print("forgebot shell: pass --user U... (the Slack user id to act as)", file=sys.stderr)
        return 2
    return await run_session(settings, catalog, user=user, script=script)


def demo_catalog_path() -> Path:
    packaged = Path(__file__).parent / "data" / "catalog.example.yaml"
    if packaged.exists():
        return packaged
    return Path(__file__).parents[1] / "catalog.example.yaml"


async def run_demo(
    *,
    script: str | None,
    user: str | None,
    keep: bool,
    out: TextIO | None = None,
    stdin: TextIO | None = None,
) -> int:
    """The shell on the built-in sandbox: SQLite in a temp dir and the example catalog."""
    workdir = Path(tempfile.mkdtemp(prefix="forgebot-demo-"))
    catalog_path = demo_catalog_path()
    catalog = load_catalog(catalog_path)
    kube = start_fake_kube()
    seed_demo_cluster(kube.state, catalog)
    preview = catalog.template("web-preview")
    offhours_demo.seed_cluster(kube.state, preview.offhours if preview else None)
    aws = _demo_aws()

    async def seed(runtime: Runtime) -> None:
        assert runtime.db is not None
        await offhours_demo.seed_environment(runtime.db, runtime.clock.now())
        if aws:
            await aws[1](runtime)

    output = out or sys.stdout
    prometheus, slo_note = _demo_prometheus(workdir)
    settings = Settings(
        PROMETHEUS_URL=prometheus.url if prometheus else None,
        FORGEBOT_DATABASE_URL=f"sqlite:///{workdir / 'demo.db'}",
        FORGEBOT_CATALOG=str(catalog_path),
        FORGEBOT_LOG_FORMAT="console",
        FORGEBOT_COST_FORECAST="linear",
        KUBECONFIG=str(kube.write_kubeconfig(workdir / "kubeconfig", catalog.clusters())),
        _env_file=None,
    )
    print(
        "forgebot demo: a sandbox with a fake Slack and the example catalog "
        f"({catalog_path.name}). Users: U0DEVELOPER (payments developer), U0ONCALL (payments on-call), "
        "U0PLATFORM (platform team).",
        file=output,
    )
    print(slo_note, file=output)
    try:
        return await run_session(
            settings,
            catalog,
            user=user or "U0DEVELOPER",
            script=script,
            out=output,
            stdin=stdin,
            cost_source=aws[0] if aws else None,
            on_start=seed,
        )
    finally:
        kube.stop()
        if prometheus is not None:
            prometheus.stop()
        if aws:
            aws[2]()
        if keep:
            print(f"(demo database kept in {workdir})", file=output)
        else:
            shutil.rmtree(workdir, ignore_errors=True)


def _demo_prometheus(workdir: Path) -> tuple[RunningPrometheus | None, str]:
    """A real Prometheus with 35 days of synthetic metrics when it is installed; the demo works
    without it (and says how to get it), it only has no SLO data then."""
    # The data runs two hours past now, so the demo's windows stay full while you try it.
    shift = timedelta(hours=2)
    end = datetime.now(UTC).replace(second=0, microsecond=0) + shift
    try:
        running = start_prometheus(demo_stories(shift), end, workdir / "prometheus")
    except PrometheusNotInstalled as exc:
        return None, f"SLOs: no SLO data in this demo: {exc}."
    except Exception as exc:  # the demo must start whatever happens to Prometheus
        return None, f"SLOs: no SLO data in this demo: Prometheus did not start ({exc})."
    return running, (
        "SLOs: a local Prometheus holds 35 days of synthetic metrics; try /slo "
        "(checkout is burning its budget now, ledger spent its budget last week)."
    )


def _demo_aws() -> (
    tuple[CostSource, Callable[[Runtime], Awaitable[None]], Callable[[], None]] | None
):
    """moto as the demo's AWS, with seeded Cost Explorer results: the cost source, the
    start-up step that seeds and warms the cost cache, and how to stop moto. None (and no
    cost commands' data) where moto is not installed."""
    from bot.clock import SystemClock
    from integrations.aws.cost_explorer import CostExplorerGateway
    from integrations.sandbox.aws_seed import sandbox_clients, start_moto

    try:
        url, stop = start_moto()
    except RuntimeError:
        return None
    source = CostExplorerGateway(sandbox_clients(url), SystemClock())

    async def warm(runtime: Runtime) -> None:
        from commands.cost.demo import seed_and_warm

        assert runtime.ctx is not None
        await seed_and_warm(runtime.ctx.extras["cost"], url, runtime.ctx.catalog)

    return source, warm, stop


def seed_demo_cluster(kube: FakeKube, catalog: Catalog) -> None:
    """Every catalog service running at version 1.4.1 where the catalog says it runs. Rollouts
    take a few seconds, so progress shows, and an image tagged `broken` fails after 10 s."""
    kube.rollout_seconds = 3.0
    for service in catalog.services:
        for workload in service.workloads.values():
            kube.seed_deployment(
                workload.namespace,
                workload.deployment,
                f"{service.image}:1.4.1",
                container=workload.container,
                progress_deadline_seconds=10,
            )
