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
from collections.abc import Awaitable, Callable
from datetime import datetime
from pathlib import Path
from typing import Any, TextIO

from bot.render import Buttons, plain, render_blocks, render_message
from bot.runtime import Runtime, StartupError
from bot.shell_input import INTERRUPT, Input, LineSource
from bot.shell_log import NoticeHandler, logging_to_file
from commands.offhours import demo as offhours_demo
from commands.offhours.demo import clock_jump
from core.catalog import Catalog, load_catalog
from core.clock import OffsetClock
from core.config import Settings
from integrations.aws.cost_explorer import CostSource
from integrations.sandbox.kube_api import FakeKube, start_fake_kube
from integrations.sandbox.slack_api import RecordedCall, RunningFakeSlack, start_fake_slack
from integrations.sandbox.slack_payloads import (
    SignedSlackClient,
    SlackIdentity,
    app_home_opened,
    block_actions,
    slash_command,
    view_submission,
)

SANDBOX_TOKEN = "xoxb-sandbox-shell"
MAX_WAIT_SECONDS = 60.0
LIVE_REFRESH_SECONDS = 0.25
CANCEL = ":cancel"

SHELL_HELP = """\
Type a slash command as you would in Slack, e.g. /forge help, /env list, /deploy checkout 1.4.2 to staging.
  <number>      press the button with that number
  :as USER_ID   act as another Slack user (e.g. :as U0PLATFORM)
  :home         open the App Home tab
  :clock +2h    move the bot's clock on (or :clock Tue 18:30 Europe/Berlin) and run its jobs
  :cancel       inside a form: close it without submitting (Ctrl-C does the same)
  :quit         leave (Ctrl-D or Ctrl-C at the prompt work too)"""


class ShellSession:
    def __init__(
        self,
        runtime: Runtime,
        fake: RunningFakeSlack,
        secret: str,
        who: SlackIdentity,
        out: TextIO,
        *,
        charts_dir: Path | None = None,
        notices: NoticeHandler | None = None,
    ) -> None:
        self.runtime = runtime
        self.fake = fake
        self.client = SignedSlackClient(runtime.url, secret)
        self.who = who
        self.out = out
        self.buttons = Buttons()
        self.charts_dir = charts_dir
        self.notices = notices
        self.extra_notices: list[str] = []
        self._seen = 0
        self._views: dict[str, dict[str, Any]] = {}
        self._opened: dict[str, Any] | None = None
        self._form_view_id = ""
        # The message printed last and how many lines it took: an update of it is redrawn in
        # place on a terminal instead of printed again.
        self._last_shown: tuple[tuple[str, str], int] | None = None
        self.live = out is sys.stdout and out.isatty()

    def say(self, text: str) -> None:
        print(text, file=self.out, flush=True)
        self._last_shown = None

    def notice(self, text: str) -> None:
        """A line for the user, shown between commands (never inside a form)."""
        self.extra_notices.append(text)

    def show_notices(self) -> None:
        taken = self.extra_notices + (self.notices.take() if self.notices else [])
        self.extra_notices = []
        for text in taken:
            self.say(f"({text})")

    # --- waiting for the bot ---------------------------------------------------------------
    async def settle(self, *, live: bool = True) -> None:
        """Wait for everything the bot started for the last request: its handler, operations
        and queued messages (awaited, not guessed); on a terminal, show progress meanwhile."""
        if self.runtime.ctx is None:
            return
        work = asyncio.ensure_future(self.runtime.ctx.settle())
        live = live and self.live
        deadline = time.monotonic() + MAX_WAIT_SECONDS
        while not work.done():
            await asyncio.wait({work}, timeout=LIVE_REFRESH_SECONDS if live else MAX_WAIT_SECONDS)
            if live:
                self.show_calls()
            if time.monotonic() >= deadline and not work.done():
                self.say(
                    "(the bot is still working; what it sends next shows after your next command)"
                )
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

    def take_opened(self) -> dict[str, Any] | None:
        """The modal the bot opened (or updated while it is shown as a form), once."""
        opened, self._opened = self._opened, None
        return opened

    def show_calls(self) -> None:
        """Print what the bot sent since last time; keep the modal it opened (`take_opened`).

        A message and its updates in one batch print once, as they ended; on a terminal an
        update of the message shown last is redrawn in place."""
        calls = self.new_calls()
        merged: set[tuple[str, str]] = set()  # posted with their final content already
        final: dict[tuple[str, str], int] = {}
        for index, call in enumerate(calls):
            if call.method in ("chat.postMessage", "chat.update"):
                final[self._message_key(call)] = index
        for index, call in enumerate(calls):
            args = call.args
            where = str(args.get("channel", ""))
            if call.method in ("chat.postMessage", "chat.update"):
                key = self._message_key(call)
                if call.method == "chat.update" and (final[key] != index or key in merged):
                    continue  # shown with a later content already, or about to be
                latest = calls[final[key]].args
                if call.method == "chat.postMessage" and final[key] != index:
                    args = {**args, "text": latest.get("text", ""), "blocks": latest.get("blocks")}
                    merged.add(key)
                source = {
                    "channel": where,
                    "ts": key[1],
                    "text": args.get("text", ""),
                    "blocks": args.get("blocks") or [],
                }
                body = render_message(
                    str(args.get("text", "")), args.get("blocks"), self.buttons, source
                )
                if call.method == "chat.update" and self.live and self._last_shown:
                    shown_key, lines = self._last_shown
                    if shown_key == key:
                        self.out.write(f"\x1b[{lines}F\x1b[J")  # up to its start, clear below
                        self._show_message(key, f"#{where}:\n{body}")
                        continue
                label = "(updated)" if call.method == "chat.update" else ""
                self._show_message(key, f"\n#{where}{' ' + label if label else ''}:\n{body}")
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
                self._opened = self._stored_view(call)
            elif call.method == "views.update":
                view = self._stored_view(call)
                shown = self._form_view_id or (self._opened or {}).get("id")
                if shown and view.get("id") == shown:
                    self._opened = view  # the form on screen (or about to be) continues with it
                    continue
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
                self.show_files(call)

    def _message_key(self, call: RecordedCall) -> tuple[str, str]:
        channel = str(call.args.get("channel", ""))
        if call.method == "chat.update":
            return channel, str(call.args.get("ts", ""))
        ts = str((call.response or {}).get("ts", "")) or self._ts_of(call)
        return channel, ts

    def _show_message(self, key: tuple[str, str], text: str) -> None:
        print(text, file=self.out, flush=True)
        self._last_shown = (key, text.lstrip("\n").count("\n") + 1)

    def show_files(self, call: RecordedCall) -> None:
        """A file the bot shared: saved in the demo's folder, its path printed."""
        where = str(call.args.get("channel_id") or call.args.get("channel") or "")
        files = (call.response or {}).get("files") or call.args.get("files") or []
        for shared in files:
            title = str(shared.get("title") or shared.get("name") or "file")
            content = self.fake.state.uploads.get(str(shared.get("id", "")))
            if self.charts_dir is None or content is None:
                self.say(f"\n#{where}: [file uploaded: {title}]")
                continue
            self.charts_dir.mkdir(parents=True, exist_ok=True)
            name = Path(str(shared.get("name") or "file")).name
            path = self.charts_dir / f"{shared.get('id', '')}-{name}"
            path.write_bytes(content)
            self.say(f"\n#{where}: [file uploaded: {title}] saved as {path}")

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
        self.show_calls()
        view = self.take_opened()
        if view is not None and self.lines is not None:
            await self.fill_modal(view)

    lines: LineSource | None = None

    async def ask(self, prompt: str) -> Input:
        """One line typed at `prompt`, `INTERRUPT` for Ctrl-C, or None at the end of input."""
        self.out.write(prompt)
        self.out.flush()
        self._last_shown = None
        assert self.lines is not None
        line = await self.lines.next()
        if line is INTERRUPT:
            self.out.write("\n" if self.live else "^C\n")  # a terminal echoes ^C itself
        elif line is None:
            self.out.write("\n")
        elif not sys.stdin.isatty() or self.out is not sys.stdout:
            self.out.write(line + "\n")
        return line

    async def ask_field(self, prompt: str) -> str | None:
        """A form's answer; None when the form is cancelled (:cancel, Ctrl-C or end of input)."""
        line = await self.ask(prompt)
        if line is None or line is INTERRUPT or line.strip() == CANCEL:
            return None
        return line

    async def fill_modal(self, view: dict[str, Any]) -> None:
        """A modal as a form: its fields asked one by one, then submitted. A view without
        fields (a confirmation) asks before it submits; a view without a Submit button (the
        bot is still working) waits for the bot to update it. :cancel or Ctrl-C closes it."""
        self._form_view_id = str(view.get("id", ""))
        try:
            await self._fill(view)
        finally:
            self._form_view_id = ""

    async def _fill(self, view: dict[str, Any]) -> None:
        title = plain(str(view.get("title", {}).get("text", "")))
        self.say(
            f"\n┌ {title} " + "─" * max(0, 36 - len(title)) + f" ({CANCEL} or Ctrl-C closes it)"
        )
        values: dict[str, dict[str, Any]] = {}
        index, asked = 0, False
        while index < len(view.get("blocks", [])):
            block = view["blocks"][index]
            index += 1
            if block.get("type") != "input":
                for line in render_blocks([block], self.buttons, view):
                    self.say("│ " + line)
                continue
            asked = True
            answer = await self.answer_field(block)
            if answer is None:
                self.say("└ cancelled: nothing was submitted")
                return
            if answer:
                values[str(block.get("block_id", ""))] = answer
            if block.get("dispatch_action") and answer:
                view = await self.dispatch(view, block, answer, values)
        if not view.get("submit"):
            # Nothing to submit: the bot is working on this view and will update it.
            await self.settle(live=False)
            self.show_calls()
            updated = self.take_opened()
            if updated is None:
                self.say("└ closed")
                return
            self.say("└ updated by the bot")
            await self._fill(updated)
            return
        if not asked:
            submit_label = plain(str(view["submit"].get("text", "Submit")))
            close_label = plain(str((view.get("close") or {}).get("text", "Cancel")))
            while True:
                reply = await self.ask_field(
                    f"│ [Enter] {submit_label}   [{CANCEL}] {close_label}: "
                )
                if reply is None:
                    self.say("└ cancelled: nothing was submitted")
                    return
                if not reply.strip():
                    break
                self.say(f"│ press Enter to {submit_label.lower()}, or type {CANCEL}")
        while True:
            submit = await self.client.send(view_submission(self.who, view, values))
            body = submit.json() if submit.body else None
            if isinstance(body, dict) and body.get("response_action") == "errors":
                for block_id, message in body.get("errors", {}).items():
                    self.say(f"│ ✗ {block_id}: {message}")
                    block = next(b for b in view["blocks"] if b.get("block_id") == block_id)
                    answer = await self.answer_field(block)
                    if answer is None:
                        self.say("└ cancelled: nothing was submitted")
                        return
                    values[block_id] = answer
                continue
            self.say("└ submitted")
            if isinstance(body, dict) and body.get("response_action") in ("update", "push"):
                next_view = {**body["view"], "id": view.get("id", "")}
                await self._fill(next_view)
                return
            self._form_view_id = ""  # a plain ack closes the modal
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
        await self.settle(live=False)
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
                reply = await self.ask_field(f"│ choose 1-{len(options)}{default}: ")
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
        reply = await self.ask_field(
            f"│ {label}{suffix}{' (optional)' if optional else ''}{default}: "
        )
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

    async def run(self, lines: LineSource, interactive: bool) -> None:
        self.lines = lines
        self.say(
            f"forgebot shell: you are {self.who.user_id} in #{self.who.channel_name}. Type :help for help."
        )
        while True:
            self.show_calls()  # what background work (scheduled jobs) posted meanwhile
            self.show_notices()
            line = await self.ask(f"{self.who.user_id}> " if interactive else "> ")
            if line is None or line is INTERRUPT:
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
    on_start: Callable[[Runtime, ShellSession], Awaitable[None]] | None = None,
    charts_dir: Path | None = None,
    notices: NoticeHandler | None = None,
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
    source = stdin or sys.stdin
    lines = LineSource.open(source, script)
    lines.catch_interrupts()
    session: ShellSession | None = None
    try:
        try:
            await runtime.start("127.0.0.1", 0)
        except StartupError as exc:
            print(f"forgebot: {exc}", file=sys.stderr)
            return 2
        who = SlackIdentity(user_id=user, channel_id=channel, channel_name=channel_name)
        session = ShellSession(
            runtime, fake, secret, who, output, charts_dir=charts_dir, notices=notices
        )
        if on_start is not None:
            await on_start(runtime, session)
        interactive = script is None and source.isatty()
        await session.run(lines, interactive)
    finally:
        lines.release_interrupts()
        if session is not None:
            await session.client.close()
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
    folder: Path | None = None,
) -> int:
    """The shell on the built-in sandbox: SQLite in a temp dir and the example catalog.

    The prompt comes as soon as the bot runs; Prometheus and moto start behind it and say
    when they are ready (a script waits for them first, so its output does not depend on
    timing). The bot's log goes to a file in the demo folder, with warnings shown in one line
    between commands; charts the bot posts are saved there too, and the folder stays."""
    started = time.monotonic()
    output = out or sys.stdout
    folder = folder or Path(
        tempfile.mkdtemp(prefix=f"forgebot-demo-{datetime.now():%Y%m%d-%H%M%S}-")
    )
    workdir = folder / "state"
    workdir.mkdir(parents=True, exist_ok=True)
    catalog_path = demo_catalog_path()
    catalog = load_catalog(catalog_path)
    print(
        "forgebot demo: a sandbox with a fake Slack and the example catalog "
        f"({catalog_path.name}). Users: U0DEVELOPER (payments developer), U0ONCALL (payments on-call), "
        "U0PLATFORM (platform team).",
        file=output,
    )
    print(
        "Starting: the fake Kubernetes API and Slack, the bot on SQLite...", file=output, flush=True
    )
    kube = start_fake_kube()
    seed_demo_cluster(kube.state, catalog)
    preview = catalog.template("web-preview")
    offhours_demo.seed_cluster(kube.state, preview.offhours if preview else None)
    from bot.demo_services import DemoServices

    with logging_to_file(folder / "forgebot.log") as notices:
        services = DemoServices(workdir, notices.add)
        settings = Settings(
            PROMETHEUS_URL=services.prometheus_url,
            FORGEBOT_DATABASE_URL=f"sqlite:///{workdir / 'demo.db'}",
            FORGEBOT_CATALOG=str(catalog_path),
            FORGEBOT_LOG_FORMAT="console",
            FORGEBOT_COST_FORECAST="linear",
            KUBECONFIG=str(kube.write_kubeconfig(workdir / "kubeconfig", catalog.clusters())),
            _env_file=None,
        )
        interactive = script is None and (stdin or sys.stdin).isatty()

        async def begin(runtime: Runtime, session: ShellSession) -> None:
            assert runtime.db is not None
            await offhours_demo.seed_environment(runtime.db, runtime.clock.now())
            services.start(runtime)
            session.notice(f"the bot's log and the charts it posts are saved in {folder}")
            if services.slo_note:
                session.notice(services.slo_note)
            if services.starting and interactive:
                session.notice(
                    f"ready in {time.monotonic() - started:.1f} s; "
                    f"{' and '.join(services.starting)} start in the background "
                    "(you will see a line when SLOs and costs are ready)"
                )
            elif services.starting:
                print(
                    f"Starting {' and '.join(services.starting)} (SLOs and costs)...",
                    file=output,
                    flush=True,
                )
                await services.ready()

        try:
            return await run_session(
                settings,
                catalog,
                user=user or "U0DEVELOPER",
                script=script,
                out=output,
                stdin=stdin,
                cost_source=services.cost_source(),
                on_start=begin,
                charts_dir=folder / "charts",
                notices=notices,
            )
        finally:
            await services.stop()
            kube.stop()
            if keep:
                print(f"(demo database kept in {workdir})", file=output)
            else:
                shutil.rmtree(workdir, ignore_errors=True)


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
