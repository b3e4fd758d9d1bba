from __future__ import annotations

from pathlib import Path

import pytest

from core.auth import Action, Actor, Authorizer, MembershipCache, Role, Target
from core.catalog import load_catalog

CATALOG = load_catalog(Path(__file__).parents[2] / "catalog.example.yaml")


def test_deny_by_default_for_unknown_users() -> None:
    auth = Authorizer(CATALOG)
    stranger = Actor("U0STRANGER")
    assert auth.authorize(stranger, Action.HELP).allowed
    denied = auth.authorize(stranger, Action.DEPLOY, Target(service="checkout"))
    assert not denied.allowed
    assert "platform team" in denied.explain(Action.DEPLOY)


@pytest.mark.parametrize(
    ("user", "action", "target", "allowed"),
    [
        ("U0DEVELOPER", Action.DEPLOY, Target(service="checkout"), True),
        ("U0SEARCHDEV", Action.DEPLOY, Target(service="checkout"), False),
        ("U0PLATFORM", Action.DEPLOY, Target(service="checkout"), True),
        ("U0DEVELOPER", Action.ENV_APPROVE, Target(), False),
        ("U0PLATFORM", Action.ENV_APPROVE, Target(), True),
        ("U0DEVELOPER", Action.FREEZE, Target(service="checkout"), False),
        ("U0ONCALL", Action.FREEZE, Target(service="checkout"), True),
        (
            "U0SEARCHDEV",
            Action.ENV_DELETE,
            Target(team="payments", owner_user_id="U0DEVELOPER"),
            False,
        ),
        (
            "U0DEVELOPER",
            Action.ENV_DELETE,
            Target(team="search", owner_user_id="U0DEVELOPER"),
            True,
        ),
        ("U0DEVELOPER", Action.BUDGET_SET, Target(team="payments"), False),
    ],
)
def test_policy(user: str, action: Action, target: Target, allowed: bool) -> None:
    assert Authorizer(CATALOG).authorize(Actor(user), action, target).allowed is allowed


async def test_usergroup_members_count_once_refreshed() -> None:
    calls: list[str] = []

    async def fetch(group: str) -> list[str]:
        calls.append(group)
        return ["U0GROUPIE"] if group == "S0PAYMENTS" else []

    cache = MembershipCache(fetch=fetch)
    auth = Authorizer(CATALOG, cache)
    actor = Actor("U0GROUPIE")
    assert not auth.authorize(actor, Action.DEPLOY, Target(service="checkout")).allowed
    await cache.refresh(auth.usergroups())
    assert calls == ["S0PAYMENTS"]
    decision = auth.authorize(actor, Action.DEPLOY, Target(service="checkout"))
    assert decision.allowed and Role.SERVICE_OWNER in decision.roles_held


async def test_refresh_failure_keeps_last_known_members() -> None:
    healthy = True

    async def fetch(group: str) -> list[str]:
        if not healthy:
            raise ConnectionError("slack down")
        return ["U0GROUPIE"]

    cache = MembershipCache(fetch=fetch)
    await cache.refresh({"S0PAYMENTS"})
    healthy = False
    await cache.refresh({"S0PAYMENTS"})
    assert cache.users_in("S0PAYMENTS") == frozenset({"U0GROUPIE"})
    assert "slack down" in cache.last_error
