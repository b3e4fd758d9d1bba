"""Block Kit for environments: the request modal with its live price tag, the approval card,
progress, lists and reminders. Pure functions from data to dicts."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

from commands.environments import parse
from core.block_limits import escape, truncate
from core.catalog import Catalog, Template
from core.durations import format_duration, format_for_people
from core.pricing import PriceTag, money
from core.times import DATE_TIME, shown
from storage.models import EnvironmentRecord, EnvState

REQUEST_CALLBACK = "env_request"
DENY_CALLBACK = "env_deny_reason"
APPROVE, DENY = "env_approve", "env_deny"
EXTEND_DAY, DELETE_NOW, CONFIRM_DELETE = "env_extend_day", "env_delete_now", "env_confirm_delete"
CANCEL_DELETE = "env_cancel_delete"
OPEN_REQUEST = "env_open_request"
EXTEND_APPROVE, EXTEND_DENY = "env_extend_approve", "env_extend_deny"

STATE_ICON = {
    EnvState.PENDING: ":hourglass_flowing_sand:",
    EnvState.APPROVED: ":white_check_mark:",
    EnvState.PROVISIONING: ":gear:",
    EnvState.ACTIVE: ":large_green_circle:",
    EnvState.DENIED: ":no_entry:",
    EnvState.FAILED: ":x:",
    EnvState.DELETING: ":wastebasket:",
    EnvState.DELETED: ":white_circle:",
    EnvState.CANCELLED: ":white_circle:",
}


def _plain(text: str) -> dict[str, str]:
    return {"type": "plain_text", "text": text}


def _option(text: str, value: str) -> dict[str, Any]:
    return {"text": _plain(truncate(text, 75)), "value": value}


def _section(text: str, block_id: str | None = None) -> dict[str, Any]:
    block: dict[str, Any] = {
        "type": "section",
        "text": {"type": "mrkdwn", "text": truncate(text, 3000)},
    }
    if block_id:
        block["block_id"] = block_id
    return block


def _button(text: str, action_id: str, value: str, style: str | None = None) -> dict[str, Any]:
    button: dict[str, Any] = {
        "type": "button",
        "text": _plain(truncate(text, 75)),
        "action_id": action_id,
        "value": value,
    }
    if style:
        button["style"] = style
    return button


def expires_text(expires_at: datetime | None, now: datetime) -> str:
    if expires_at is None:
        return "not yet running"
    left = expires_at - now
    if left <= timedelta(0):
        return "expired"
    # Rounded for people: "in 3d" right after provisioning, never "in 2d23h59m".
    return f"in {format_for_people(left)}"


def request_modal(
    catalog: Catalog,
    template: Template,
    size: str,
    ttl_text: str,
    price: PriceTag | None,
    metadata: dict[str, str],
) -> dict[str, Any]:
    size_options = [
        _option(f"{name}: {q.cpu} vCPU, {q.memory_gib} GiB", name)
        for name, q in template.sizes.items()
    ]
    chosen_size = next((o for o in size_options if o["value"] == size), size_options[0])
    template_options = [_option(t.name, t.name) for t in catalog.templates]
    chosen_template = next(o for o in template_options if o["value"] == template.name)
    approval = (
        "provisioned at once" if template.approval == "auto" else "approved by the platform team"
    )
    price_text = (
        f":moneybag: *Estimated cost* {price.describe(_ttl_or_default(ttl_text, template))}"
        if price is not None
        else ":moneybag: *Estimated cost*: enter a valid time to live to see it"
    )
    blocks: list[dict[str, Any]] = [
        _section(
            f"*{escape(template.name)}*: {escape(template.description)}\n_Requests are {approval}._",
            "intro",
        ),
        {
            "type": "input",
            "block_id": parse.TEMPLATE,
            "dispatch_action": True,
            "label": _plain("Template"),
            "element": {
                "type": "static_select",
                "action_id": "value",
                "options": template_options,
                "initial_option": chosen_template,
            },
        },
        {
            "type": "input",
            "block_id": parse.NAME,
            "label": _plain("Name"),
            "hint": _plain(
                f"lowercase letters, digits and '-'; it becomes {template.name_prefix}<name>"
            ),
            "element": {
                "type": "plain_text_input",
                "action_id": "value",
                "max_length": 63,
                "placeholder": _plain("checkout-feature-x"),
            },
        },
        {
            "type": "input",
            "block_id": parse.SIZE,
            "dispatch_action": True,
            "label": _plain("Size"),
            "element": {
                "type": "static_select",
                "action_id": "value",
                "options": size_options,
                "initial_option": chosen_size,
            },
        },
        {
            "type": "input",
            "block_id": parse.TTL,
            "dispatch_action": True,
            "label": _plain("Time to live"),
            "hint": _plain(f"like 3d or 12h; at most {format_duration(template.max_ttl)}"),
            "element": {
                "type": "plain_text_input",
                "action_id": "value",
                "initial_value": ttl_text,
                "dispatch_action_config": {"trigger_actions_on": ["on_enter_pressed"]},
            },
        },
        {
            "type": "input",
            "block_id": parse.PURPOSE,
            "optional": True,
            "label": _plain("Purpose"),
            "element": {
                "type": "plain_text_input",
                "action_id": "value",
                "multiline": True,
                "max_length": 500,
            },
        },
        _section(price_text, "price"),
    ]
    return {
        "type": "modal",
        "callback_id": REQUEST_CALLBACK,
        "title": _plain("Request environment"),
        "submit": _plain("Request"),
        "close": _plain("Cancel"),
        "private_metadata": json.dumps(metadata),
        "blocks": blocks,
    }


def _ttl_or_default(ttl_text: str, template: Template) -> timedelta:
    from core.durations import DurationError, parse_duration

    try:
        return parse_duration(ttl_text)
    except DurationError:
        return template.default_ttl


def _facts(record: EnvironmentRecord, now: datetime) -> list[dict[str, str]]:
    return [
        {"type": "mrkdwn", "text": f"*Template*\n{escape(record.template)}"},
        {"type": "mrkdwn", "text": f"*Size*\n{record.size}"},
        {"type": "mrkdwn", "text": f"*Team*\n{escape(record.team)}"},
        {"type": "mrkdwn", "text": f"*Owner*\n<@{record.owner_user_id}>"},
        {
            "type": "mrkdwn",
            "text": f"*Time to live*\n{format_duration(timedelta(seconds=record.ttl_seconds))}",
        },
        {
            "type": "mrkdwn",
            "text": f"*Estimated cost*\n{money(_decimal(record.monthly_cost), record.currency)}/month",
        },
    ]


def _decimal(value: str) -> Any:
    from decimal import Decimal

    return Decimal(value or "0")


def request_card(record: EnvironmentRecord, now: datetime) -> tuple[str, list[dict[str, Any]]]:
    text = f"<@{record.owner_user_id}> requests environment {record.name}"
    blocks: list[dict[str, Any]] = [
        _section(
            f":inbox_tray: <@{record.owner_user_id}> requests the environment *{escape(record.name)}*"
        ),
        {"type": "section", "fields": _facts(record, now)},
    ]
    if record.purpose:
        blocks.append(_section(f"*Purpose*: {escape(record.purpose)}"))
    if record.state == EnvState.PENDING:
        blocks.append(
            {
                "type": "actions",
                "block_id": f"decide-{record.id}",
                "elements": [
                    _button("Approve", APPROVE, str(record.id), "primary"),
                    _button("Deny…", DENY, str(record.id), "danger"),
                ],
            }
        )
    else:
        when = shown(record.decided_at, DATE_TIME) if record.decided_at else ""
        who = (
            f"<@{record.decided_by}>"
            if record.decided_by.startswith(("U", "W"))
            else record.decided_by
        )
        reason = f": {escape(record.decision_reason)}" if record.decision_reason else ""
        verdict = "Denied" if record.state == EnvState.DENIED else "Approved"
        blocks.append(
            {
                "type": "context",
                "elements": [{"type": "mrkdwn", "text": f"{verdict} by {who} at {when}{reason}"}],
            }
        )
    return text, blocks


def deny_modal(env_id: int, name: str, metadata: dict[str, str]) -> dict[str, Any]:
    return {
        "type": "modal",
        "callback_id": DENY_CALLBACK,
        "title": _plain("Deny request"),
        "submit": _plain("Deny"),
        "close": _plain("Cancel"),
        "private_metadata": json.dumps({"env_id": env_id, **metadata}),
        "blocks": [
            _section(f"Deny the request for *{escape(name)}*? The requester sees your reason."),
            {
                "type": "input",
                "block_id": "reason",
                "label": _plain("Reason"),
                "element": {
                    "type": "plain_text_input",
                    "action_id": "value",
                    "multiline": True,
                    "max_length": 500,
                },
            },
        ],
    }


def progress(
    record: EnvironmentRecord,
    steps: Sequence[str],
    done: list[str],
    current: str | None,
    failed: str | None,
) -> tuple[str, list[dict[str, Any]]]:
    lines = []
    for step in steps:
        if step in done:
            lines.append(f":white_check_mark: {step}")
        elif step == failed:
            lines.append(f":x: {step}")
        elif step == current:
            lines.append(f":gear: {step}…")
        else:
            lines.append(f":white_small_square: {step}")
    finished = len(done) == len(steps)
    if failed:
        title = f":x: Provisioning *{escape(record.name)}* failed; everything it made was removed."
    elif finished:
        title = f":white_check_mark: *{escape(record.name)}* is provisioned on {escape(record.cluster)}."
    else:
        title = f":gear: Provisioning *{escape(record.name)}* ({len(done)}/{len(steps)})"
    return title, [_section(title), _section("\n".join(lines))]


OWNER_EVENTS = {
    "requested": ":inbox_tray: Your request for *{name}* is waiting for the platform team's approval.",
    "denied": ":no_entry: Your request for *{name}* was denied{detail}.",
    "ready": ":rocket: *{name}* is ready on {cluster}. It expires {expires}.",
    "failed": ":x: *{name}* could not be provisioned{detail}. Nothing was left behind.",
    "deleted": ":wastebasket: *{name}* was deleted{detail}.",
    "extended": ":hourglass: The platform team extended *{name}*{detail}.",
    "extension_denied": ":no_entry: The platform team did not extend *{name}*{detail}.",
}


def owner_message(record: EnvironmentRecord, event: str, detail: str, now: datetime) -> str:
    suffix = f": {escape(detail)}" if detail else ""
    return OWNER_EVENTS[event].format(
        name=escape(record.name),
        cluster=escape(record.cluster),
        expires=expires_text(record.expires_at, now),
        detail=suffix,
    )


def reminder(record: EnvironmentRecord, left: timedelta) -> tuple[str, list[dict[str, Any]]]:
    text = f"{record.name} expires in {format_for_people(left)}"
    return text, [
        _section(
            f":alarm_clock: *{escape(record.name)}* expires in {format_for_people(left)} and will be deleted then."
        ),
        {
            "type": "actions",
            "block_id": f"expiry-{record.id}",
            "elements": [
                _button("Extend 1 day", EXTEND_DAY, record.name, "primary"),
                _button("Delete now", DELETE_NOW, record.name, "danger"),
            ],
        },
    ]


def environment_line(record: EnvironmentRecord, now: datetime, *, asleep: bool = False) -> str:
    """One line per environment; an active one scaled down for off-hours reads asleep."""
    icon = STATE_ICON.get(EnvState(record.state), "")
    state = str(record.state)
    if asleep and record.state == EnvState.ACTIVE:
        icon, state = ":zzz:", "asleep"
    cost = money(_decimal(record.monthly_cost), record.currency)
    return (
        f"{icon} *{escape(record.name)}* ({state}): {record.template} {record.size}, "
        f"<@{record.owner_user_id}>, expires {expires_text(record.expires_at, now)}, ≈ {cost}/month"
    )


def environment_list(
    records: Sequence[EnvironmentRecord],
    scope: str,
    now: datetime,
    asleep: frozenset[str] = frozenset(),
) -> tuple[str, list[dict[str, Any]]]:
    if not records:
        hint = " `/forge env request` asks for one." if scope == "mine" else ""
        return "No environments", [_section(f"No environments ({scope}).{hint}")]
    blocks = [_section(f"*Environments ({scope})*: {len(records)}")]
    # One block per environment keeps each under the section limit; more than fits is paginated.
    blocks += [_section(environment_line(r, now, asleep=r.name in asleep)) for r in records[:48]]
    if len(records) > 48:
        blocks.append(
            {
                "type": "context",
                "elements": [{"type": "mrkdwn", "text": f"…and {len(records) - 48} more"}],
            }
        )
    return f"{len(records)} environments", blocks


def environment_detail(
    record: EnvironmentRecord, now: datetime, actual_cost: str = ""
) -> tuple[str, list[dict[str, Any]]]:
    blocks: list[dict[str, Any]] = [
        _section(environment_line(record, now)),
        {"type": "section", "fields": _facts(record, now)},
    ]
    if actual_cost:
        blocks.append({"type": "context", "elements": [{"type": "mrkdwn", "text": actual_cost}]})
    if record.purpose:
        blocks.append(_section(f"*Purpose*: {escape(record.purpose)}"))
    if record.failure:
        blocks.append(_section(f"*Last failure*: {escape(record.failure)}"))
    if record.state == EnvState.ACTIVE:
        blocks.append(
            {
                "type": "actions",
                "block_id": f"manage-{record.id}",
                "elements": [
                    _button("Extend 1 day", EXTEND_DAY, record.name),
                    _button("Delete", DELETE_NOW, record.name, "danger"),
                ],
            }
        )
    return record.name, blocks


def confirm_delete(record: EnvironmentRecord) -> tuple[str, list[dict[str, Any]]]:
    return f"Delete {record.name}?", [
        _section(
            f":warning: Delete *{escape(record.name)}* and everything in it? This cannot be undone."
        ),
        {
            "type": "actions",
            "block_id": f"confirm-{record.id}",
            "elements": [
                _button("Yes, delete it", CONFIRM_DELETE, record.name, "danger"),
                _button("Cancel", CANCEL_DELETE, record.name),
            ],
        },
    ]


def home_section(
    records: Sequence[EnvironmentRecord],
    now: datetime,
    actual_costs: Mapping[str, str] | None = None,
) -> list[dict[str, Any]]:
    costs = actual_costs or {}
    blocks: list[dict[str, Any]] = [
        {"type": "header", "text": _plain("Your environments")},
    ]
    if not records:
        blocks.append(_section("You have no environments."))
    # Two blocks per environment; 40 fit comfortably under the Home tab's 100.
    for record in records[:40]:
        cost = f"\n{costs[record.name]}" if costs.get(record.name) else ""
        blocks.append(_section(environment_line(record, now) + cost))
        if record.state == EnvState.ACTIVE:
            blocks.append(
                {
                    "type": "actions",
                    "block_id": f"home-{record.id}",
                    "elements": [
                        _button("Extend 1 day", EXTEND_DAY, record.name),
                        _button("Delete…", DELETE_NOW, record.name, "danger"),
                    ],
                }
            )
    blocks.append(
        {
            "type": "actions",
            "block_id": "env-home",
            "elements": [
                _button("Request environment", OPEN_REQUEST, "open", "primary"),
            ],
        }
    )
    return blocks


def extension_card(
    record: EnvironmentRecord, until: datetime, requester: str, decided: tuple[str, bool] | None
) -> tuple[str, list[dict[str, Any]]]:
    """A request to keep an environment beyond its template's max TTL; `decided` is
    (who, approved) once someone pressed a button."""
    text = f"<@{requester}> asks to keep {record.name} until {shown(until)}"
    blocks: list[dict[str, Any]] = [
        _section(
            f":hourglass: <@{requester}> asks to keep *{escape(record.name)}* until "
            f"{shown(until)}, beyond what the *{escape(record.template)}* template allows."
        )
    ]
    if decided is None:
        value = f"{record.id}|{until.isoformat()}"
        blocks.append(
            {
                "type": "actions",
                "block_id": f"extend-{record.id}",
                "elements": [
                    _button("Approve", EXTEND_APPROVE, value, "primary"),
                    _button("Deny", EXTEND_DENY, value, "danger"),
                ],
            }
        )
    else:
        who, approved = decided
        verdict = "Approved" if approved else "Denied"
        blocks.append(
            {"type": "context", "elements": [{"type": "mrkdwn", "text": f"{verdict} by <@{who}>"}]}
        )
    return text, blocks
