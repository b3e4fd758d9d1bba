""" "A service or a team, your team by default": how `/forge slo`, `/forge dora` and other
reports read the name they are given."""

from __future__ import annotations

from dataclasses import dataclass

from core.auth import Actor, Authorizer
from core.block_limits import escape
from core.catalog import Catalog
from core.errors import NotFound, UserInputError


@dataclass(frozen=True)
class ServiceScope:
    name: str
    """The service's or the team's name."""
    is_team: bool
    services: list[str]
    """The service, or every service the team owns (in catalog order)."""

    @property
    def title(self) -> str:
        return f"team {self.name}" if self.is_team else self.name


def service_or_team(
    catalog: Catalog, auth: Authorizer, actor: Actor, words: list[str], usage: str
) -> ServiceScope:
    if len(words) > 1:
        raise UserInputError("Name one service or team.", usage=usage)
    if not words:
        team = auth.primary_team(actor.user_id)
        if team is None:
            raise UserInputError(
                "You are in no team in the catalog; name a service or team.", usage=usage
            )
        words = [team.name]
    name = words[0].lower()
    if catalog.service(name) is not None:
        return ServiceScope(name, False, [name])
    if catalog.team(name) is not None:
        return ServiceScope(name, True, [s.name for s in catalog.services if s.team == name])
    raise NotFound(f"There is no service or team called `{escape(name)}`.", usage=usage)
