"""Text and modal input -> typed requests, with messages that say how to fix the input."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, Literal

from core.block_limits import escape, quoted
from core.catalog import DNS_LABEL, Catalog, Template
from core.durations import DurationError, format_duration, parse_duration
from core.errors import UserInputError
from integrations.slack.blocks import state_value

USAGE = "\n".join(
    f"`/forge env {line}`"
    for line in (
        "request",
        "list [mine|team|all]",
        "show NAME",
        "extend NAME 2d",
        "delete NAME",
        "wake NAME [for 3h]",
    )
)

# Modal block ids (the view and the parser must agree on them).
TEMPLATE, NAME, SIZE, TTL, PURPOSE = "template", "name", "size", "ttl", "purpose"


@dataclass(frozen=True)
class RequestForm:
    template: str
    name: str
    size: Literal["S", "M", "L"]
    ttl: timedelta
    purpose: str


@dataclass(frozen=True)
class EnvCommand:
    verb: Literal["request", "list", "show", "extend", "delete"]
    name: str = ""
    scope: Literal["mine", "team", "all"] = "mine"
    extend_by: timedelta | None = None


def parse_command(args: str) -> EnvCommand:
    words = args.split()
    if not words:
        raise UserInputError("Tell me what to do with environments.", usage=USAGE)
    verb, rest = words[0].lower(), words[1:]
    if verb == "request":
        return EnvCommand("request")
    if verb == "list":
        scope = rest[0].lower() if rest else "mine"
        if scope not in ("mine", "team", "all") or len(rest) > 1:
            raise UserInputError(
                f"`{escape(' '.join(rest))}` is not a list scope: use mine, team or all.",
                usage=USAGE,
            )
        return EnvCommand("list", scope=scope)  # type: ignore[arg-type]
    if verb in ("show", "delete"):
        if len(rest) != 1:
            raise UserInputError(f"{quoted(verb)} needs exactly one environment name.", usage=USAGE)
        return EnvCommand(verb, name=_name_argument(rest[0]))  # type: ignore[arg-type]
    if verb == "extend":
        if len(rest) != 2:
            raise UserInputError(
                "`extend` needs a name and a duration, like `extend pv-checkout 2d`.", usage=USAGE
            )
        try:
            delta = parse_duration(rest[1])
        except DurationError as exc:
            raise UserInputError(str(exc), usage=USAGE) from None
        return EnvCommand("extend", name=_name_argument(rest[0]), extend_by=delta)
    raise UserInputError(f"`{escape(verb)}` is not an environment command.", usage=USAGE)


def _name_argument(raw: str) -> str:
    name = raw.strip().lower()
    if DNS_LABEL.fullmatch(name) is None or len(name) > 63:
        raise UserInputError(f"`{escape(raw)}` is not an environment name.", usage=USAGE)
    return name


def full_name(template: Template, name: str) -> str:
    """The catalog's naming rule: the template's prefix, added once."""
    return name if name.startswith(template.name_prefix) else template.name_prefix + name


# A select's chosen value or a text input's text: one reader serves both kinds of block.
_selected = _text = state_value


_NAME_HINT = (
    "lowercase letters, digits and '-', starting with a letter, ending with a letter or digit"
)


def parse_form(
    values: dict[str, Any], catalog: Catalog
) -> tuple[RequestForm | None, dict[str, str]]:
    """Validate the modal's `state.values`. Returns the form, or errors keyed by block id."""
    errors: dict[str, str] = {}
    template = catalog.template(_selected(values, TEMPLATE))
    if template is None:
        errors[TEMPLATE] = "Pick a template from the list."
    raw_name = _text(values, NAME)
    name = raw_name  # no strip: "abc\n" must never pass as "abc"
    if not re.fullmatch(r"[a-z]([-a-z0-9]*[a-z0-9])?", name):
        errors[NAME] = f"Use {_NAME_HINT}."
    elif template is not None and len(full_name(template, name)) > 63:
        errors[NAME] = "Too long: the full name (with its prefix) must fit in 63 characters."
    size = _selected(values, SIZE)
    if template is not None and size not in template.sizes:
        errors[SIZE] = f"Pick one of the sizes this template offers: {', '.join(template.sizes)}."
    ttl: timedelta | None = None
    try:
        ttl = parse_duration(_text(values, TTL) or "")
    except DurationError as exc:
        errors[TTL] = str(exc)
    if ttl is not None and template is not None and ttl > template.max_ttl:
        errors[TTL] = (
            f"{template.name} environments live at most {format_duration(template.max_ttl)}; "
            "ask for less now and extend later if you need to."
        )
    purpose = _text(values, PURPOSE).strip()
    if len(purpose) > 500:
        errors[PURPOSE] = "Keep the purpose under 500 characters."
    if errors or template is None or ttl is None:
        return None, errors
    form = RequestForm(template.name, full_name(template, name), size, ttl, purpose)  # type: ignore[arg-type]
    return form, {}
