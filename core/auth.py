"""Who may do what. One `authorize(actor, action, target)` serves every capability.

Roles come from the catalog (team members, on-call lists, the platform team) and from Slack
user groups, which are resolved through the Web API by a background refresh: nothing here does
network I/O, so authorization never delays an ack. Deny by default: an action no role grants is
refused. Only the signed `user_id` (+ workspace) identifies a person, never a name.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from enum import StrEnum

from core.catalog import Catalog, Team

log = logging.getLogger(__name__)


class Role(StrEnum):
    ANYONE = "anyone in the workspace"
    TEAM_MEMBER = "a member of the team"
    SERVICE_OWNER = "a member of the service's owning team"
    ONCALL = "on call for the service"
    ENV_OWNER = "the environment's owner"
    PLATFORM = "the platform team"


class Action(StrEnum):
    HELP = "help"
    READ = "read"
    ENV_REQUEST = "env.request"
    ENV_APPROVE = "env.approve"
    ENV_EXTEND = "env.extend"
    ENV_EXTEND_BEYOND_MAX = "env.extend_beyond_max"
    ENV_DELETE = "env.delete"
    ENV_WAKE = "env.wake"
    DEPLOY = "deploy"
    DEPLOY_APPROVE = "deploy.approve"
    ROLLBACK = "rollback"
    FREEZE = "freeze"
    BREAK_GLASS = "deploy.break_glass"
    GATE_OVERRIDE = "deploy.override_budget_gate"
    BUDGET_SET = "budget.set"
    OFFHOURS_SET = "offhours.set"
    OFFHOURS_SNOOZE = "offhours.snooze"
    INCIDENT_OPEN = "incident.open"
    INCIDENT_MANAGE = "incident.manage"
    DIAGNOSE = "diagnose"
    ALERT_ACT = "alert.act"


# The whole policy in one table; an action missing here is denied to everyone.
POLICY: dict[Action, frozenset[Role]] = {
    Action.HELP: frozenset({Role.ANYONE}),
    Action.READ: frozenset({Role.ANYONE}),
    Action.ENV_REQUEST: frozenset({Role.TEAM_MEMBER, Role.PLATFORM}),
    Action.ENV_APPROVE: frozenset({Role.PLATFORM}),
    Action.ENV_EXTEND: frozenset({Role.ENV_OWNER, Role.TEAM_MEMBER, Role.PLATFORM}),
    Action.ENV_EXTEND_BEYOND_MAX: frozenset({Role.PLATFORM}),
    Action.ENV_DELETE: frozenset({Role.ENV_OWNER, Role.TEAM_MEMBER, Role.PLATFORM}),
    Action.ENV_WAKE: frozenset({Role.ENV_OWNER, Role.TEAM_MEMBER, Role.PLATFORM}),
    Action.DEPLOY: frozenset({Role.SERVICE_OWNER, Role.ONCALL, Role.PLATFORM}),
    Action.DEPLOY_APPROVE: frozenset({Role.SERVICE_OWNER, Role.ONCALL, Role.PLATFORM}),
    Action.ROLLBACK: frozenset({Role.SERVICE_OWNER, Role.ONCALL, Role.PLATFORM}),
    Action.FREEZE: frozenset({Role.ONCALL, Role.PLATFORM}),
    Action.BREAK_GLASS: frozenset({Role.ONCALL, Role.PLATFORM}),
    Action.GATE_OVERRIDE: frozenset({Role.ONCALL, Role.PLATFORM}),
    Action.BUDGET_SET: frozenset({Role.PLATFORM}),
    Action.OFFHOURS_SET: frozenset({Role.ENV_OWNER, Role.TEAM_MEMBER, Role.PLATFORM}),
    Action.OFFHOURS_SNOOZE: frozenset({Role.ENV_OWNER, Role.TEAM_MEMBER, Role.PLATFORM}),
    Action.INCIDENT_OPEN: frozenset({Role.TEAM_MEMBER, Role.ONCALL, Role.PLATFORM}),
    Action.INCIDENT_MANAGE: frozenset(
        {Role.TEAM_MEMBER, Role.SERVICE_OWNER, Role.ONCALL, Role.PLATFORM}
    ),
    Action.DIAGNOSE: frozenset({Role.SERVICE_OWNER, Role.ONCALL, Role.PLATFORM}),
    Action.ALERT_ACT: frozenset({Role.SERVICE_OWNER, Role.ONCALL, Role.PLATFORM}),
}


@dataclass(frozen=True)
class Actor:
    user_id: str
    slack_team_id: str = ""
    enterprise_id: str = ""


@dataclass(frozen=True)
class Target:
    """What the action is on; each field narrows which roles can apply."""

    team: str | None = None
    service: str | None = None
    owner_user_id: str | None = None


@dataclass(frozen=True)
class Decision:
    allowed: bool
    roles_held: frozenset[Role]
    roles_needed: frozenset[Role]

    def explain(self, action: Action) -> str:
        needed = " or ".join(sorted(r.value for r in self.roles_needed)) or "a role no one has"
        return f"You can’t do that: *{action.value}* needs {needed}."


UsergroupFetcher = Callable[[str], Awaitable[list[str]]]


@dataclass
class MembershipCache:
    """Slack user group members, refreshed in the background; reads never do I/O."""

    fetch: UsergroupFetcher | None = None
    members: dict[str, frozenset[str]] = field(default_factory=dict)
    last_error: str = ""

    def users_in(self, usergroup: str | None) -> frozenset[str]:
        if usergroup is None:
            return frozenset()
        return self.members.get(usergroup, frozenset())

    async def refresh(self, usergroups: set[str]) -> None:
        if self.fetch is None:
            return
        fresh: dict[str, frozenset[str]] = {}
        for group in sorted(usergroups):
            try:
                fresh[group] = frozenset(await self.fetch(group))
            except Exception as exc:
                # Keep the last known members rather than locking everyone out on a blip.
                self.last_error = f"{group}: {exc}"
                log.warning("could not refresh Slack user group %s: %s", group, exc)
                if group in self.members:
                    fresh[group] = self.members[group]
        self.members = fresh

    async def refresh_forever(self, usergroups: set[str], interval: float = 300.0) -> None:
        while True:
            await self.refresh(usergroups)
            await asyncio.sleep(interval)


class Authorizer:
    def __init__(self, catalog: Catalog, groups: MembershipCache | None = None) -> None:
        self.catalog = catalog
        self.groups = groups or MembershipCache()

    def usergroups(self) -> set[str]:
        groups = {t.usergroup for t in self.catalog.teams} | {
            t.oncall_usergroup for t in self.catalog.teams
        }
        return {g for g in groups if g}

    def is_member(self, user_id: str, team: Team) -> bool:
        return user_id in team.members or user_id in self.groups.users_in(team.usergroup)

    def is_oncall(self, user_id: str, team: Team) -> bool:
        return user_id in team.oncall or user_id in self.groups.users_in(team.oncall_usergroup)

    def teams_of(self, user_id: str) -> list[Team]:
        return [t for t in self.catalog.teams if self.is_member(user_id, t)]

    def primary_team(self, user_id: str) -> Team | None:
        """The team a user's `mine`/default views are about: their first non-platform team."""
        teams = self.teams_of(user_id)
        others = [t for t in teams if t.name != self.catalog.platform_team]
        chosen = others or teams
        return chosen[0] if chosen else None

    def is_platform(self, user_id: str) -> bool:
        platform = self.catalog.team(self.catalog.platform_team)
        return platform is not None and self.is_member(user_id, platform)

    def roles(self, actor: Actor, target: Target) -> frozenset[Role]:
        held = {Role.ANYONE}
        user = actor.user_id
        if self.is_platform(user):
            held.add(Role.PLATFORM)
        team_name = target.team
        if target.service is not None:
            service = self.catalog.service(target.service)
            if service is not None:
                team_name = team_name or service.team
                owner = self.catalog.team(service.team)
                if owner is not None and self.is_member(user, owner):
                    held.add(Role.SERVICE_OWNER)
                if owner is not None and self.is_oncall(user, owner):
                    held.add(Role.ONCALL)
        if target.service is None and any(self.is_oncall(user, t) for t in self.catalog.teams):
            # Actions on a whole environment (a freeze) are open to whoever is on call.
            held.add(Role.ONCALL)
        if team_name is not None:
            team = self.catalog.team(team_name)
            if team is not None and self.is_member(user, team):
                held.add(Role.TEAM_MEMBER)
        elif self.teams_of(user):
            # No team named: being in any team is what counts (e.g. requesting an environment).
            held.add(Role.TEAM_MEMBER)
        if target.owner_user_id is not None and target.owner_user_id == user:
            held.add(Role.ENV_OWNER)
        return frozenset(held)

    def authorize(self, actor: Actor, action: Action, target: Target | None = None) -> Decision:
        needed = POLICY.get(action, frozenset())
        held = self.roles(actor, target or Target())
        return Decision(allowed=bool(held & needed), roles_held=held, roles_needed=needed)
