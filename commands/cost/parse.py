"""`/forge cost ...` and `/forge budget ...` text -> typed requests, with friendly errors."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from enum import StrEnum
from typing import Literal

from commands.cost.periods import Period
from core.block_limits import escape
from core.catalog import DNS_LABEL, Catalog
from core.errors import UserInputError

COST_USAGE = "\n".join(
    f"`/forge cost {line}`"
    for line in ("[team NAME|service NAME|env NAME] [this-month|last-month|30d|7d] [chart]",)
)
BUDGET_USAGE = "\n".join(f"`/forge budget{line}`" for line in ("", " set TEAM 5000"))
PERIODS = ", ".join(p.value for p in Period)
MAX_BUDGET = Decimal("100000000")


class ScopeKind(StrEnum):
    TEAM = "team"
    SERVICE = "service"
    ENVIRONMENT = "env"


@dataclass(frozen=True)
class Scope:
    kind: ScopeKind
    name: str

    def describe(self) -> str:
        return {
            ScopeKind.TEAM: f"team {self.name}",
            ScopeKind.SERVICE: f"service {self.name}",
            ScopeKind.ENVIRONMENT: f"environment {self.name}",
        }[self.kind]


@dataclass(frozen=True)
class CostCommand:
    scope: Scope | None
    """None: the caller's own team."""
    period: Period = Period.THIS_MONTH
    chart: bool = False


@dataclass(frozen=True)
class BudgetCommand:
    verb: Literal["list", "set"]
    team: str = ""
    amount: Decimal = Decimal(0)


_SCOPE_WORDS = {
    "team": ScopeKind.TEAM,
    "service": ScopeKind.SERVICE,
    "svc": ScopeKind.SERVICE,
    "env": ScopeKind.ENVIRONMENT,
    "environment": ScopeKind.ENVIRONMENT,
}
_PERIOD_WORDS = {p.value: p for p in Period} | {
    "month": Period.THIS_MONTH,
    "mtd": Period.THIS_MONTH,
    "30days": Period.LAST_30_DAYS,
    "7days": Period.LAST_7_DAYS,
}


def parse_cost(args: str, catalog: Catalog) -> CostCommand:
    words = [w.lower() for w in args.split()]
    scope: Scope | None = None
    period: Period | None = None
    chart = False
    index = 0
    while index < len(words):
        word = words[index]
        if word in _SCOPE_WORDS:
            if scope is not None:
                raise UserInputError("Name one team, service or environment.", usage=COST_USAGE)
            if index + 1 >= len(words):
                raise UserInputError(
                    f"`{word}` needs a name, like `{word} NAME`.", usage=COST_USAGE
                )
            scope = _scope(_SCOPE_WORDS[word], words[index + 1], catalog)
            index += 2
            continue
        if word in _PERIOD_WORDS:
            if period is not None:
                raise UserInputError("Give one period.", usage=COST_USAGE)
            period = _PERIOD_WORDS[word]
        elif word == "chart":
            chart = True
        elif catalog.team(word) is not None and scope is None:
            scope = Scope(ScopeKind.TEAM, word)  # `/cost payments` is too natural to refuse
        else:
            raise UserInputError(
                f"`{escape(word)}` is not a period or a scope. Periods: {PERIODS}.",
                usage=COST_USAGE,
            )
        index += 1
    return CostCommand(scope=scope, period=period or Period.THIS_MONTH, chart=chart)


def _scope(kind: ScopeKind, name: str, catalog: Catalog) -> Scope:
    if kind is ScopeKind.TEAM:
        known = [t.name for t in catalog.teams]
    elif kind is ScopeKind.SERVICE:
        known = [s.name for s in catalog.services]
    else:
        known = [e.name for e in catalog.environments]
    if name not in known and kind is not ScopeKind.ENVIRONMENT:
        listing = ", ".join(f"`{k}`" for k in known) or "none yet"
        raise UserInputError(
            f"There is no {kind.value} called `{escape(name)}`. Known: {listing}.",
            usage=COST_USAGE,
        )
    # Environments also include the self-service ones (tag environment = namespace name),
    # which the catalog does not list; any DNS label is a possible tag value.
    if kind is ScopeKind.ENVIRONMENT and not _dns_label(name):
        raise UserInputError(f"`{escape(name)}` is not an environment name.", usage=COST_USAGE)
    return Scope(kind, name)


def _dns_label(name: str) -> bool:
    return len(name) <= 63 and DNS_LABEL.fullmatch(name) is not None


def parse_budget(args: str, catalog: Catalog) -> BudgetCommand:
    words = args.split()
    if not words or words[0].lower() in ("list", "ls"):
        if len(words) > 1:
            raise UserInputError("`budget list` takes no arguments.", usage=BUDGET_USAGE)
        return BudgetCommand("list")
    if words[0].lower() != "set":
        raise UserInputError(f"`{escape(words[0])}` is not a budget command.", usage=BUDGET_USAGE)
    if len(words) != 3:
        raise UserInputError(
            "`budget set` needs a team and a monthly amount, like `budget set payments 5000`.",
            usage=BUDGET_USAGE,
        )
    team = words[1].lower()
    if catalog.team(team) is None:
        known = ", ".join(f"`{t.name}`" for t in catalog.teams)
        raise UserInputError(f"There is no team called `{escape(words[1])}`. Known: {known}.")
    return BudgetCommand("set", team=team, amount=parse_amount(words[2]))


def parse_amount(text: str) -> Decimal:
    cleaned = text.strip().lstrip("$").replace(",", "").replace("_", "")
    multiplier = Decimal(1)
    if cleaned[-1:].lower() == "k":
        cleaned, multiplier = cleaned[:-1], Decimal(1000)
    try:
        amount = Decimal(cleaned) * multiplier
    except InvalidOperation:
        amount = Decimal("NaN")
    if not amount.is_finite() or amount <= 0 or amount > MAX_BUDGET:
        raise UserInputError(
            f"`{escape(text)}` is not a monthly amount: use a positive number like 5000 or 5k.",
            usage=BUDGET_USAGE,
        )
    if amount != amount.quantize(Decimal("0.01")):
        raise UserInputError("Budgets are in whole cents at most (like 5000 or 4999.50).")
    return amount.quantize(Decimal("0.01"))
