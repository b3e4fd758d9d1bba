"""A loopback fake of the Slack Web API, for the demo, the terminal shell and the tests.

`slack_sdk`'s `AsyncWebClient(base_url=<fake>/api/)` and bolt's `respond()` (to a response_url
minted by `new_response_url()`) talk to it over real HTTP. It:

- answers like Slack (`{"ok": true, ...}` or `{"ok": false, "error": ...}`), keeping message,
  view, DM and file state, so `chat.update` of an unknown ts fails with `message_not_found`
  and `views.update` keeps the view id;
- records every request (method, parsed arguments without any token, whether and how it was
  authenticated, a sequence number and receive times, the answer) and tells subscribers;
- checks every payload carrying blocks or a view against Block Kit limits;
- injects faults on demand: 429 with `Retry-After` (seconds or an HTTP-date), 5xx, dropped
  connections, and a per-channel rate limit like Slack's one message per second.

Tests run on another thread and loop than the fake: every query here is thread-safe.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import itertools
import json
import logging
import math
import re
import secrets
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from email.utils import formatdate
from typing import Any, Literal
from urllib.parse import parse_qs

from aiohttp import web

from core.block_limits import Violation, check_message, check_view
from integrations.sandbox.server_thread import RunningServer, serve_in_thread

log = logging.getLogger(__name__)

TEAM_ID = "T0SANDBOX"
TEAM_DOMAIN = "sandbox"
APP_ID = "A0FORGEBOT"
BOT_USER_ID = "U0FORGEBOT"
BOT_ID = "B0FORGEBOT"

RESPONSE_URL_USES = 5
RESPONSE_URL_LIFETIME_SECONDS = 30 * 60
UPLOAD_METHOD = "upload"
"""How a POST to an upload URL (files_upload_v2's second step) is recorded."""
RESPONSE_URL_METHOD = "response_url"

AuthKind = Literal["bearer", "token", "missing", "invalid", "not_needed"]
FaultKind = Literal["rate_limited", "server_error", "dropped", "channel_rate_limited"]


@dataclass
class RecordedCall:
    """One request the fake received. `args` never holds a token."""

    seq: int
    method: str
    args: dict[str, Any]
    at: float
    """time.monotonic() on receipt: compare calls with each other."""
    received_at: float
    """Unix time on receipt."""
    auth: AuthKind = "not_needed"
    status: int = 200
    error: str | None = None
    """Slack's error code when the answer was `ok: false`."""
    fault: FaultKind | None = None
    """Set when the answer was an injected fault rather than Slack's handling."""
    response: dict[str, Any] | None = None
    violations: list[Violation] = field(default_factory=list)
    target: str | None = None
    """The response_url token or upload file id the request was addressed to."""

    @property
    def ok(self) -> bool:
        return self.fault is None and self.error is None

    @property
    def channel(self) -> str | None:
        value = self.args.get("channel") or self.args.get("channel_id")
        return str(value) if value else None

    @property
    def errors(self) -> list[Violation]:
        return [v for v in self.violations if v.severity == "error"]

    def __repr__(self) -> str:
        where = f" channel={self.channel}" if self.channel else ""
        outcome = self.fault or self.error or "ok"
        return f"<RecordedCall #{self.seq} {self.method}{where} auth={self.auth} {outcome}>"


@dataclass
class Fault:
    """Answer the next `count` calls (of `method`, or of any method) with a failure."""

    kind: Literal["rate_limited", "server_error", "dropped"]
    count: int = 1
    method: str | None = None
    status: int = 429
    retry_after: float | None = 1.0
    retry_after_as_date: bool = False


@dataclass
class ChannelRateLimit:
    min_interval: float
    methods: frozenset[str]
    retry_after: int


@dataclass
class FakeUser:
    id: str
    name: str
    real_name: str = ""
    tz: str = "Europe/London"
    tz_offset: int = 0
    email: str | None = None
    is_admin: bool = False
    is_bot: bool = False
    deleted: bool = False

    def as_slack(self, team_id: str) -> dict[str, Any]:
        real_name = self.real_name or self.name
        return {
            "id": self.id,
            "team_id": team_id,
            "name": self.name,
            "real_name": real_name,
            "deleted": self.deleted,
            "tz": self.tz,
            "tz_label": self.tz,
            "tz_offset": self.tz_offset,
            "is_admin": self.is_admin,
            "is_bot": self.is_bot,
            "profile": {
                "display_name": self.name,
                "real_name": real_name,
                **({"email": self.email} if self.email else {}),
            },
        }


class SlackError(Exception):
    """An `ok: false` answer, as Slack gives it (HTTP 200 with an error code)."""

    def __init__(self, code: str) -> None:
        super().__init__(code)
        self.code = code


@dataclass
class _ResponseUrl:
    created_at: float
    channel: str | None
    message_ts: str | None
    uses: int = 0


@dataclass
class _Upload:
    file_id: str
    filename: str
    length: int
    content: bytes | None = None


_JSON_ARGS = ("blocks", "view", "attachments", "files", "metadata")


def parse_args(raw: bytes, content_type: str, query: Mapping[str, str]) -> dict[str, Any]:
    """Arguments as Slack reads them: query string, then a JSON or form body."""
    args: dict[str, Any] = dict(query)
    if raw:
        if "json" in content_type:
            parsed = json.loads(raw)
            if isinstance(parsed, dict):
                args.update(parsed)
        else:
            form = parse_qs(raw.decode("utf-8"), keep_blank_values=True)
            args.update({key: values[-1] for key, values in form.items()})
    for key in _JSON_ARGS:
        value = args.get(key)
        if isinstance(value, str) and value[:1] in ("[", "{"):
            # Unparseable JSON stays a string; the handler refuses it as Slack would.
            with contextlib.suppress(ValueError):
                args[key] = json.loads(value)
    return args


def _truthy(value: Any) -> bool:
    return value is True or str(value).lower() in ("1", "true")


CHANNEL_NAME = re.compile(r"[a-z0-9_\-]+")
CHANNEL_NAME_MAX = 80


@dataclass
class FakeChannel:
    """A channel the fake created (conversations.create), with who is in it."""

    id: str
    name: str
    is_private: bool
    created: int
    members: list[str]

    def as_slack(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "name": self.name,
            "is_channel": not self.is_private,
            "is_group": self.is_private,
            "is_private": self.is_private,
            "created": self.created,
            "creator": BOT_USER_ID,
            "is_archived": False,
            "is_member": BOT_USER_ID in self.members,
            "num_members": len(self.members),
        }


class FakeSlackState:
    """Everything the fake knows and has seen. Thread-safe: the server writes on its thread,
    tests and the shell read from theirs."""

    def __init__(
        self,
        token: str = "xoxb-sandbox",
        *,
        usergroups: Mapping[str, Iterable[str]] | None = None,
        users: Iterable[FakeUser] = (),
        team_id: str = TEAM_ID,
        wall_clock: Callable[[], float] = time.time,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.token = token
        self.team_id = team_id
        self.base_url = ""
        self.wall_clock = wall_clock
        self.monotonic = monotonic
        self.lock = threading.RLock()
        self.changed = threading.Condition(self.lock)
        self._baseline_groups = {k: list(v) for k, v in (usergroups or {}).items()}
        self._baseline_users = {u.id: u for u in users}
        self.usergroups: dict[str, list[str]] = {}
        self.users: dict[str, FakeUser] = {}
        self.calls: list[RecordedCall] = []
        self.messages: dict[tuple[str, str], dict[str, Any]] = {}
        self.ephemeral: list[dict[str, Any]] = []
        self.views: dict[str, dict[str, Any]] = {}
        self.uploads: dict[str, bytes] = {}
        self.faults: list[Fault] = []
        self.channel_limit: ChannelRateLimit | None = None
        self._files: dict[str, _Upload] = {}
        self._response_urls: dict[str, _ResponseUrl] = {}
        self._home_views: dict[str, str] = {}
        self._group_dms: dict[frozenset[str], str] = {}
        self.channels: dict[str, FakeChannel] = {}
        self.pins: dict[str, list[str]] = {}
        self._last_in_channel: dict[str, float] = {}
        self._listeners: list[Callable[[RecordedCall], None]] = []
        # Never reset: sequence numbers, ts and ids stay unique for the life of the fake.
        self._seq = itertools.count(1)
        self._ids = itertools.count(1)
        self._last_ts = 0.0
        self.reset()

    def reset(self) -> None:
        """Forget calls, messages, views, files and faults; restore configured users/groups."""
        with self.lock:
            self.usergroups = copy.deepcopy(self._baseline_groups)
            self.users = dict(self._baseline_users)
            self.calls.clear()
            self.messages.clear()
            self.ephemeral.clear()
            self.views.clear()
            self.uploads.clear()
            self.faults.clear()
            self.channel_limit = None
            self._files.clear()
            self._response_urls.clear()
            self._home_views.clear()
            self._last_in_channel.clear()
            self._listeners.clear()
            self.channels.clear()
            self.pins.clear()

    # --- ids ---------------------------------------------------------------------------------
    def next_id(self, prefix: str) -> str:
        # Zero-padded so ids sort in creation order (the shell relies on it for views).
        return f"{prefix}{next(self._ids):010d}"

    def next_ts(self) -> str:
        with self.lock:
            self._last_ts = max(round(self.wall_clock(), 6), round(self._last_ts + 0.000001, 6))
            return f"{self._last_ts:.6f}"

    # --- recording ---------------------------------------------------------------------------
    def subscribe(self, listener: Callable[[RecordedCall], None]) -> Callable[[], None]:
        """Call `listener(call)` (on the server's thread) for each call; returns unsubscribe."""
        with self.lock:
            self._listeners.append(listener)

        def unsubscribe() -> None:
            with self.lock:
                if listener in self._listeners:
                    self._listeners.remove(listener)

        return unsubscribe

    def begin(self, method: str, args: dict[str, Any], auth: AuthKind) -> RecordedCall:
        return RecordedCall(
            seq=next(self._seq),
            method=method,
            args=args,
            at=self.monotonic(),
            received_at=self.wall_clock(),
            auth=auth,
        )

    def record(self, call: RecordedCall) -> RecordedCall:
        call.violations = _violations_in(call.method, call.args)
        with self.lock:
            self.calls.append(call)
            listeners = list(self._listeners)
            self.changed.notify_all()
        for listener in listeners:
            try:
                listener(call)
            except Exception:
                log.exception("a fake Slack listener failed")
        return call

    # --- faults ------------------------------------------------------------------------------
    def take_fault(self, method: str) -> Fault | None:
        with self.lock:
            for fault in self.faults:
                if fault.count > 0 and fault.method in (None, method):
                    fault.count -= 1
                    return fault
        return None

    def channel_rate_limited(self, call: RecordedCall) -> int | None:
        """Retry-After seconds if this call breaks the per-channel limit, else None."""
        with self.lock:
            limit = self.channel_limit
            channel = call.channel
            if limit is None or channel is None or call.method not in limit.methods:
                return None
            last = self._last_in_channel.get(channel)
            if last is not None and call.at - last < limit.min_interval:
                return limit.retry_after
            self._last_in_channel[channel] = call.at
            return None

    # --- queries -----------------------------------------------------------------------------
    def find(
        self, method: str | None = None, *, include_faults: bool = False, **match: Any
    ) -> list[RecordedCall]:
        """Calls of `method` whose args equal `match`; injected faults only when asked."""
        with self.lock:
            calls = list(self.calls)
        return [
            c
            for c in calls
            if (method is None or c.method == method)
            and (include_faults or c.fault is None)
            and all(c.args.get(k) == v for k, v in match.items())
        ]

    def wait_for(self, predicate: Callable[[list[RecordedCall]], Any], timeout: float = 5.0) -> Any:
        """Block until `predicate(calls)` is truthy and return it; TimeoutError otherwise.
        Only from a thread that is not running the code under test's event loop."""
        deadline = self.monotonic() + timeout
        with self.lock:
            while True:
                result = predicate(list(self.calls))
                if result:
                    return result
                remaining = deadline - self.monotonic()
                if remaining <= 0:
                    raise TimeoutError(f"fake Slack: nothing matched within {timeout}s")
                self.changed.wait(remaining)

    async def until(
        self, predicate: Callable[[list[RecordedCall]], Any], timeout: float = 5.0
    ) -> Any:
        """`wait_for` for code running on an event loop (which must keep running meanwhile)."""
        return await asyncio.to_thread(self.wait_for, predicate, timeout)

    def violations(self) -> list[str]:
        """Every Block Kit error in what was sent (warnings excluded), as readable lines."""
        with self.lock:
            return [f"{c.method}#{c.seq}: {v}" for c in self.calls for v in c.errors]

    def messages_in(self, channel: str) -> dict[str, dict[str, Any]]:
        with self.lock:
            found = {ts: copy.deepcopy(m) for (ch, ts), m in self.messages.items() if ch == channel}
        return dict(sorted(found.items(), key=lambda item: float(item[0])))


def _violations_in(method: str, args: Mapping[str, Any]) -> list[Violation]:
    view = args.get("view")
    if isinstance(view, dict):
        return check_view(view)
    if method in ("files.completeUploadExternal", UPLOAD_METHOD):
        return []
    blocks = args.get("blocks")
    if blocks is None and "text" not in args:
        return []
    if blocks is not None and not isinstance(blocks, list):
        return [Violation(f"{method}.blocks", "blocks must be a JSON array")]
    text = args.get("text")
    return check_message(blocks, text if isinstance(text, str) else None)


class SlackMethods:
    """The Web API methods the bot uses, answered from (and changing) the fake's state."""

    def __init__(self, state: FakeSlackState) -> None:
        self.state = state
        self.handlers: dict[str, Callable[[dict[str, Any]], dict[str, Any]]] = {
            "auth.test": self.auth_test,
            "chat.postMessage": self.chat_post_message,
            "chat.update": self.chat_update,
            "chat.delete": self.chat_delete,
            "chat.postEphemeral": self.chat_post_ephemeral,
            "chat.getPermalink": self.chat_get_permalink,
            "conversations.open": self.conversations_open,
            "views.open": self.views_open,
            "views.push": self.views_push,
            "views.update": self.views_update,
            "views.publish": self.views_publish,
            "usergroups.users.list": self.usergroups_users_list,
            "users.info": self.users_info,
            "files.getUploadURLExternal": self.files_get_upload_url,
            "files.completeUploadExternal": self.files_complete_upload,
            "conversations.create": self.conversations_create,
            "conversations.invite": self.conversations_invite,
            "conversations.info": self.conversations_info,
            "pins.add": self.pins_add,
            "conversations.history": self.conversations_history,
        }

    def answer(self, method: str, args: dict[str, Any]) -> dict[str, Any]:
        handler = self.handlers.get(method)
        if handler is None:
            raise SlackError("unknown_method")
        return handler(args)

    # --- helpers -----------------------------------------------------------------------------
    @staticmethod
    def _required(args: Mapping[str, Any], key: str, error: str = "invalid_arguments") -> str:
        value = args.get(key)
        if value is None or value == "":
            raise SlackError(error)
        return str(value)

    def _dm_channel(self, user: str) -> str:
        return "D" + user[1:] if user[:1] in ("U", "W") else "D" + user

    def _message(self, channel: str, ts: str, args: Mapping[str, Any]) -> dict[str, Any]:
        message: dict[str, Any] = {
            "type": "message",
            "channel": channel,
            "ts": ts,
            "user": BOT_USER_ID,
            "bot_id": BOT_ID,
            "app_id": APP_ID,
            "team": self.state.team_id,
            "text": str(args.get("text") or ""),
            "blocks": list(args.get("blocks") or []),
        }
        if args.get("thread_ts"):
            message["thread_ts"] = str(args["thread_ts"])
        return message

    @staticmethod
    def _has_content(args: Mapping[str, Any]) -> bool:
        return bool(args.get("text") or args.get("blocks") or args.get("attachments"))

    # --- methods -----------------------------------------------------------------------------
    def auth_test(self, args: dict[str, Any]) -> dict[str, Any]:
        return {
            "url": f"{self.state.base_url}/",
            "team": "Sandbox",
            "user": "forgebot",
            "team_id": self.state.team_id,
            "user_id": BOT_USER_ID,
            "bot_id": BOT_ID,
            "is_enterprise_install": False,
        }

    def chat_post_message(self, args: dict[str, Any]) -> dict[str, Any]:
        channel = self._required(args, "channel", "channel_not_found")
        if channel[:1] in ("U", "W"):
            channel = self._dm_channel(channel)  # Slack posts to the user's DM with the app
        if not self._has_content(args):
            raise SlackError("no_text")
        ts = self.state.next_ts()
        message = self._message(channel, ts, args)
        with self.state.lock:
            self.state.messages[(channel, ts)] = message
        return {"channel": channel, "ts": ts, "message": copy.deepcopy(message)}

    def chat_update(self, args: dict[str, Any]) -> dict[str, Any]:
        channel = self._required(args, "channel", "channel_not_found")
        ts = self._required(args, "ts", "message_not_found")
        if not self._has_content(args):
            raise SlackError("no_text")
        with self.state.lock:
            current = self.state.messages.get((channel, ts))
            if current is None:
                raise SlackError("message_not_found")
            current["text"] = str(args.get("text") or "")
            current["blocks"] = list(args.get("blocks") or [])
            current["edited"] = {"user": BOT_USER_ID, "ts": self.state.next_ts()}
            message = copy.deepcopy(current)
        return {"channel": channel, "ts": ts, "text": message["text"], "message": message}

    def chat_delete(self, args: dict[str, Any]) -> dict[str, Any]:
        channel = self._required(args, "channel", "channel_not_found")
        ts = self._required(args, "ts", "message_not_found")
        with self.state.lock:
            if self.state.messages.pop((channel, ts), None) is None:
                raise SlackError("message_not_found")
        return {"channel": channel, "ts": ts}

    def chat_post_ephemeral(self, args: dict[str, Any]) -> dict[str, Any]:
        channel = self._required(args, "channel", "channel_not_found")
        user = self._required(args, "user", "user_not_found")
        if not self._has_content(args):
            raise SlackError("no_text")
        ts = self.state.next_ts()
        with self.state.lock:
            self.state.ephemeral.append({**self._message(channel, ts, args), "to_user": user})
        return {"message_ts": ts}

    def chat_get_permalink(self, args: dict[str, Any]) -> dict[str, Any]:
        channel = self._required(args, "channel", "channel_not_found")
        ts = self._required(args, "message_ts", "message_not_found")
        with self.state.lock:
            if (channel, ts) not in self.state.messages:
                raise SlackError("message_not_found")
        link = f"{self.state.base_url}/archives/{channel}/p{ts.replace('.', '')}"
        return {"channel": channel, "permalink": link}

    def conversations_open(self, args: dict[str, Any]) -> dict[str, Any]:
        if args.get("channel"):
            return {"channel": {"id": str(args["channel"])}, "already_open": True}
        raw = args.get("users")
        users = [u.strip() for u in (raw if isinstance(raw, list) else str(raw or "").split(","))]
        users = [u for u in users if u]
        if not users:
            raise SlackError("users_list_not_supplied")
        if len(users) == 1:
            return {"channel": {"id": self._dm_channel(users[0]), "is_im": True}}
        with self.state.lock:
            group = self.state._group_dms.setdefault(frozenset(users), self.state.next_id("G"))
        return {"channel": {"id": group, "is_mpim": True}}

    def _new_view(self, args: dict[str, Any], view_id: str, root: str | None) -> dict[str, Any]:
        submitted = args.get("view")
        if not isinstance(submitted, dict):
            raise SlackError("invalid_arguments")
        view = copy.deepcopy(submitted)
        view.update(
            id=view_id,
            team_id=self.state.team_id,
            app_id=APP_ID,
            bot_id=BOT_ID,
            hash=f"{int(self.state.wall_clock())}.{secrets.token_hex(4)}",
            root_view_id=root or view_id,
            previous_view_id=None,
            state={"values": {}},
        )
        view.setdefault("private_metadata", "")
        view.setdefault("callback_id", "")
        view.setdefault("external_id", "")
        with self.state.lock:
            self.state.views[view_id] = view
        return {"view": copy.deepcopy(view)}

    def views_open(self, args: dict[str, Any]) -> dict[str, Any]:
        self._required(args, "trigger_id", "invalid_trigger_id")
        if not isinstance(args.get("view"), dict) or args["view"].get("type") != "modal":
            raise SlackError("invalid_arguments")
        return self._new_view(args, self.state.next_id("V"), None)

    def views_push(self, args: dict[str, Any]) -> dict[str, Any]:
        return self.views_open(args)

    def _existing_view(self, args: Mapping[str, Any]) -> dict[str, Any]:
        view_id, external_id = args.get("view_id"), args.get("external_id")
        with self.state.lock:
            if view_id:
                found = self.state.views.get(str(view_id))
            elif external_id:
                found = next(
                    (v for v in self.state.views.values() if v.get("external_id") == external_id),
                    None,
                )
            else:
                raise SlackError("invalid_arguments")
            if found is None:
                raise SlackError("not_found")
            if args.get("hash") and args["hash"] != found.get("hash"):
                raise SlackError("hash_conflict")
            return found

    def views_update(self, args: dict[str, Any]) -> dict[str, Any]:
        current = self._existing_view(args)
        return self._new_view(args, str(current["id"]), str(current.get("root_view_id") or ""))

    def views_publish(self, args: dict[str, Any]) -> dict[str, Any]:
        user = self._required(args, "user_id", "user_not_found")
        if not isinstance(args.get("view"), dict) or args["view"].get("type") != "home":
            raise SlackError("invalid_arguments")
        with self.state.lock:
            view_id = self.state._home_views.get(user)
            current = self.state.views.get(view_id) if view_id else None
            if current is not None and args.get("hash") and args["hash"] != current.get("hash"):
                raise SlackError("hash_conflict")
            if view_id is None:
                view_id = self.state._home_views[user] = self.state.next_id("V")
        return self._new_view(args, view_id, None)

    def usergroups_users_list(self, args: dict[str, Any]) -> dict[str, Any]:
        group = self._required(args, "usergroup", "no_such_subteam")
        with self.state.lock:
            members = self.state.usergroups.get(group)
            if members is None:
                raise SlackError("no_such_subteam")
            return {"users": list(members)}

    def users_info(self, args: dict[str, Any]) -> dict[str, Any]:
        user_id = self._required(args, "user", "user_not_found")
        with self.state.lock:
            user = self.state.users.get(user_id)
        if user is None:
            raise SlackError("user_not_found")
        return {"user": user.as_slack(self.state.team_id)}

    def files_get_upload_url(self, args: dict[str, Any]) -> dict[str, Any]:
        filename = self._required(args, "filename")
        try:
            length = int(self._required(args, "length"))
        except ValueError:
            raise SlackError("invalid_arguments") from None
        file_id = self.state.next_id("F")
        with self.state.lock:
            self.state._files[file_id] = _Upload(file_id, filename, length)
        return {"upload_url": f"{self.state.base_url}/upload/{file_id}", "file_id": file_id}

    def files_complete_upload(self, args: dict[str, Any]) -> dict[str, Any]:
        requested = args.get("files")
        if not isinstance(requested, list) or not requested:
            raise SlackError("invalid_arguments")
        channel = args.get("channel_id") or args.get("channels")
        shared: list[dict[str, Any]] = []
        with self.state.lock:
            for item in requested:
                upload = self.state._files.get(str(item.get("id", "")))
                if upload is None or upload.content is None:
                    raise SlackError("file_not_found")
                shared.append(
                    {
                        "id": upload.file_id,
                        "name": upload.filename,
                        "title": item.get("title") or upload.filename,
                        "size": len(upload.content),
                        "user": BOT_USER_ID,
                        "channels": [str(channel)] if channel else [],
                    }
                )
        if channel:
            ts = self.state.next_ts()
            message = self._message(str(channel), ts, {"text": args.get("initial_comment") or ""})
            message["files"] = copy.deepcopy(shared)
            with self.state.lock:
                self.state.messages[(str(channel), ts)] = message
        return {"files": shared}

    # --- channels and pins (conversations.create / invite / info, pins.add) -------------------
    def conversations_create(self, args: dict[str, Any]) -> dict[str, Any]:
        name = self._required(args, "name", "invalid_name_required")
        if len(name) > CHANNEL_NAME_MAX:
            raise SlackError("invalid_name_maxlength")
        if not CHANNEL_NAME.fullmatch(name):
            raise SlackError("invalid_name_specials")
        private = _truthy(args.get("is_private", False))
        with self.state.lock:
            if any(c.name == name for c in self.state.channels.values()):
                raise SlackError("name_taken")
            channel = FakeChannel(
                id=self.state.next_id("C"),
                name=name,
                is_private=private,
                created=int(self.state.wall_clock()),
                members=[BOT_USER_ID],
            )
            self.state.channels[channel.id] = channel
            return {"channel": channel.as_slack()}

    def _channel_of(self, args: Mapping[str, Any]) -> FakeChannel:
        channel_id = self._required(args, "channel", "channel_not_found")
        channel = self.state.channels.get(channel_id)
        if channel is None:
            raise SlackError("channel_not_found")
        return channel

    def conversations_invite(self, args: dict[str, Any]) -> dict[str, Any]:
        raw = args.get("users")
        users = [u.strip() for u in (raw if isinstance(raw, list) else str(raw or "").split(","))]
        users = [u for u in users if u]
        if not users:
            raise SlackError("no_user")
        if len(users) > 1000:
            raise SlackError("too_many_users")
        with self.state.lock:
            channel = self._channel_of(args)
            if BOT_USER_ID in users:
                raise SlackError("cant_invite_self")
            unknown = [u for u in users if u not in self.state.users]
            if unknown:
                raise SlackError("user_not_found")
            new = [u for u in users if u not in channel.members]
            if not new and len(users) == 1:
                raise SlackError("already_in_channel")
            channel.members.extend(new)
            return {"channel": channel.as_slack()}

    def conversations_info(self, args: dict[str, Any]) -> dict[str, Any]:
        with self.state.lock:
            return {"channel": self._channel_of(args).as_slack()}

    def pins_add(self, args: dict[str, Any]) -> dict[str, Any]:
        channel = self._required(args, "channel", "channel_not_found")
        ts = self._required(args, "timestamp", "no_item_specified")
        with self.state.lock:
            if (channel, ts) not in self.state.messages:
                raise SlackError("message_not_found")
            pinned = self.state.pins.setdefault(channel, [])
            if ts in pinned:
                raise SlackError("already_pinned")
            pinned.append(ts)
        return {}

    def conversations_history(self, args: dict[str, Any]) -> dict[str, Any]:
        channel = self._required(args, "channel", "channel_not_found")
        latest = float(args.get("latest") or "inf")
        oldest = float(args.get("oldest") or 0)
        inclusive = _truthy(args.get("inclusive", False))
        limit = int(args.get("limit") or 100)
        with self.state.lock:
            found = [
                copy.deepcopy(m)
                for (c, ts), m in self.state.messages.items()
                if c == channel
                and (oldest <= float(ts) <= latest if inclusive else oldest < float(ts) < latest)
            ]
        found.sort(key=lambda m: float(m["ts"]), reverse=True)
        return {"messages": found[:limit], "has_more": len(found) > limit}


def _auth_of(request: web.Request, args: dict[str, Any], token: str) -> AuthKind:
    header = request.headers.get("Authorization")
    body_token = args.pop("token", None)
    if header is not None:
        return "bearer" if header == f"Bearer {token}" else "invalid"
    if body_token is not None:
        return "token" if body_token == token else "invalid"
    return "missing"


def _retry_after_value(fault: Fault, wall_clock: Callable[[], float]) -> str | None:
    if fault.retry_after is None:
        return None
    if fault.retry_after_as_date:
        # Dates have one-second resolution; round up so the client never waits too little.
        return formatdate(math.ceil(wall_clock() + fault.retry_after), usegmt=True)
    return str(math.ceil(fault.retry_after))


def _faulted(
    state: FakeSlackState, call: RecordedCall, request: web.Request
) -> web.StreamResponse | None:
    fault = state.take_fault(call.method)
    if fault is not None:
        if fault.kind == "dropped":
            call.fault, call.status = "dropped", 0
            state.record(call)
            if request.transport is not None:
                request.transport.abort()
            raise asyncio.CancelledError  # aiohttp ends the handler without a response
        call.fault = fault.kind
        call.status = fault.status
        call.error = "ratelimited" if fault.status == 429 else "internal_error"
        retry_after = _retry_after_value(fault, state.wall_clock) if fault.status == 429 else None
        headers = {"Retry-After": retry_after} if retry_after else {}
        call.response = {"ok": False, "error": call.error}
        state.record(call)
        return web.json_response(call.response, status=fault.status, headers=headers)
    retry_after_seconds = state.channel_rate_limited(call)
    if retry_after_seconds is not None:
        call.fault, call.status, call.error = "channel_rate_limited", 429, "ratelimited"
        call.response = {"ok": False, "error": "ratelimited"}
        state.record(call)
        return web.json_response(
            call.response, status=429, headers={"Retry-After": str(retry_after_seconds)}
        )
    return None


def build_app(state: FakeSlackState) -> web.Application:
    methods = SlackMethods(state)
    app = web.Application(client_max_size=50 * 1024 * 1024)

    async def api(request: web.Request) -> web.StreamResponse:
        method = request.match_info["method"]
        raw = await request.read()
        try:
            args = parse_args(raw, request.content_type, request.query)
        except (ValueError, UnicodeDecodeError):
            return web.json_response({"ok": False, "error": "invalid_json"})
        call = state.begin(method, args, _auth_of(request, args, state.token))
        if call.auth in ("missing", "invalid"):
            call.error = "invalid_auth"
            call.response = {"ok": False, "error": "invalid_auth"}
            state.record(call)
            return web.json_response(call.response)
        faulted = _faulted(state, call, request)
        if faulted is not None:
            return faulted
        try:
            call.response = {"ok": True, **methods.answer(method, args)}
        except SlackError as exc:
            call.error = exc.code
            call.response = {"ok": False, "error": exc.code}
        state.record(call)
        return web.json_response(call.response)

    async def upload(request: web.Request) -> web.StreamResponse:
        file_id = request.match_info["file_id"]
        with state.lock:
            pending = state._files.get(file_id)
        if pending is None:
            return web.Response(status=404, text="not found")
        if request.content_type.startswith("multipart/"):
            form = await request.post()
            part = next((v for v in form.values() if isinstance(v, web.FileField)), None)
            body = part.file.read() if part is not None else b""
        else:
            body = await request.read()
        call = state.begin(
            UPLOAD_METHOD,
            {
                "file_id": file_id,
                "filename": pending.filename,
                "length": pending.length,
                "size": len(body),
            },
            "not_needed",
        )
        call.target = file_id
        faulted = _faulted(state, call, request)
        if faulted is not None:
            return faulted
        with state.lock:
            pending.content = body
            state.uploads[file_id] = body
        state.record(call)
        return web.Response(text=f"OK - {len(body)}", content_type="text/plain")

    async def response_url(request: web.Request) -> web.StreamResponse:
        token = request.match_info["token"]
        raw = await request.read()
        try:
            body = json.loads(raw) if raw else {}
        except ValueError:
            body = {}
        call = state.begin(
            RESPONSE_URL_METHOD, body if isinstance(body, dict) else {}, "not_needed"
        )
        call.target = token
        error = _use_response_url(state, token, call.args)
        if error is not None:
            call.error, call.status = error, 404
        call.response = {"ok": error is None, **({"error": error} if error else {})}
        state.record(call)
        return web.json_response(call.response, status=call.status)

    app.router.add_route("*", "/api/{method}", api)
    app.router.add_post("/upload/{file_id}", upload)
    app.router.add_post("/response/{token}", response_url)
    return app


def _use_response_url(state: FakeSlackState, token: str, body: dict[str, Any]) -> str | None:
    """Apply a response_url post like Slack: replace/delete the original or post anew."""
    with state.lock:
        hook = state._response_urls.get(token)
        if hook is None:
            return "no_active_hooks"
        if state.wall_clock() - hook.created_at > RESPONSE_URL_LIFETIME_SECONDS:
            return "expired_url"
        if hook.uses >= RESPONSE_URL_USES:
            return "used_url"
        hook.uses += 1
        original = (hook.channel or "", hook.message_ts or "")
        if _truthy(body.get("delete_original")):
            state.messages.pop(original, None)
            return None
        message = state.messages.get(original)
        if _truthy(body.get("replace_original")) and message is not None:
            message["text"] = str(body.get("text") or "")
            message["blocks"] = list(body.get("blocks") or [])
            return None
        if body.get("response_type") == "in_channel" and hook.channel:
            ts = state.next_ts()
            posted = SlackMethods(state)._message(hook.channel, ts, body)
            state.messages[(hook.channel, ts)] = posted
        return None


class RunningFakeSlack:
    """A started fake: its URLs, the query API for tests and the shell, and fault injection."""

    def __init__(self, server: RunningServer, state: FakeSlackState) -> None:
        self.server = server
        self.state = state

    @property
    def url(self) -> str:
        return self.server.url

    @property
    def api_url(self) -> str:
        return self.server.url + "/api/"

    def stop(self) -> None:
        self.server.stop()

    def reset(self) -> None:
        self.state.reset()

    # --- payload helpers ---------------------------------------------------------------------
    def new_response_url(self, channel: str | None = None, message_ts: str | None = None) -> str:
        """A response_url for a test payload; give the message it belongs to (for
        `replace_original`/`delete_original`) when there is one."""
        token = secrets.token_urlsafe(12)
        with self.state.lock:
            self.state._response_urls[token] = _ResponseUrl(
                self.state.wall_clock(), channel, message_ts
            )
        return f"{self.server.url}/response/{token}"

    # --- configuration -----------------------------------------------------------------------
    def set_usergroup(self, group_id: str, members: Iterable[str]) -> None:
        with self.state.lock:
            self.state.usergroups[group_id] = list(members)

    def add_user(self, user: FakeUser) -> None:
        with self.state.lock:
            self.state.users[user.id] = user

    # --- fault injection ---------------------------------------------------------------------
    def rate_limit_next(
        self,
        count: int = 1,
        *,
        method: str | None = None,
        retry_after: float | None = 1,
        as_http_date: bool = False,
    ) -> None:
        """Answer the next `count` calls with 429 and `Retry-After` (seconds or an HTTP-date)."""
        self._add_fault(Fault("rate_limited", count, method, 429, retry_after, as_http_date))

    def fail_next(self, count: int = 1, *, method: str | None = None, status: int = 500) -> None:
        """Answer the next `count` calls with a server error (500, 502, 503...)."""
        self._add_fault(Fault("server_error", count, method, status, None))

    def drop_next(self, count: int = 1, *, method: str | None = None) -> None:
        """Close the connection on the next `count` calls without answering."""
        self._add_fault(Fault("dropped", count, method, 0, None))

    def _add_fault(self, fault: Fault) -> None:
        with self.state.lock:
            self.state.faults.append(fault)

    def limit_channel_rate(
        self,
        min_interval: float = 1.0,
        methods: Iterable[str] = ("chat.postMessage",),
        retry_after: int = 1,
    ) -> None:
        """Like Slack: a second message to a channel within `min_interval` gets a 429."""
        with self.state.lock:
            self.state.channel_limit = ChannelRateLimit(
                min_interval, frozenset(methods), retry_after
            )
            self.state._last_in_channel.clear()

    def clear_faults(self) -> None:
        with self.state.lock:
            self.state.faults.clear()
            self.state.channel_limit = None

    # --- queries -----------------------------------------------------------------------------
    def calls(
        self,
        method: str | None = None,
        channel: str | None = None,
        *,
        include_faults: bool = False,
    ) -> list[RecordedCall]:
        return [
            c
            for c in self.state.find(method, include_faults=include_faults)
            if channel is None or c.channel == channel
        ]

    def wait_for(self, predicate: Callable[[list[RecordedCall]], Any], timeout: float = 5.0) -> Any:
        return self.state.wait_for(predicate, timeout)

    async def until(
        self, predicate: Callable[[list[RecordedCall]], Any], timeout: float = 5.0
    ) -> Any:
        return await self.state.until(predicate, timeout)

    async def until_call(
        self, method: str, *, count: int = 1, timeout: float = 5.0, **match: Any
    ) -> list[RecordedCall]:
        """Wait (from an event loop) until `count` delivered calls of `method` match."""

        def matching(calls: list[RecordedCall]) -> list[RecordedCall] | None:
            found = [
                c
                for c in calls
                if c.method == method
                and c.fault is None
                and all(c.args.get(k) == v for k, v in match.items())
            ]
            return found if len(found) >= count else None

        result: list[RecordedCall] = await self.until(matching, timeout)
        return result

    def messages_in(self, channel: str) -> dict[str, dict[str, Any]]:
        """The current state of each message in `channel` (after updates), by ts."""
        return self.state.messages_in(channel)

    def uploaded(self, file_id: str) -> bytes | None:
        with self.state.lock:
            return self.state.uploads.get(file_id)

    def subscribe(self, listener: Callable[[RecordedCall], None]) -> Callable[[], None]:
        return self.state.subscribe(listener)

    def violations(self) -> list[str]:
        return self.state.violations()

    def assert_no_violations(self) -> None:
        found = self.state.violations()
        if found:
            raise AssertionError("Block Kit limits broken:\n  " + "\n  ".join(found))


def start_fake_slack(
    token: str = "xoxb-sandbox",
    *,
    usergroups: Mapping[str, Iterable[str]] | None = None,
    users: Iterable[FakeUser] = (),
    team_id: str = TEAM_ID,
) -> RunningFakeSlack:
    """Start the fake on 127.0.0.1 (a free port) in a thread of its own."""
    state = FakeSlackState(token, usergroups=usergroups, users=users, team_id=team_id)
    server = serve_in_thread(build_app(state))
    state.base_url = server.url
    return RunningFakeSlack(server, state)
