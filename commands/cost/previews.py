"""Running previews in the budget forecast, counted explicitly from the environment pricing.

A preview's spend reaches Cost Explorer through its namespace's cost tags, a day or more after
it ran; a burst of pull requests would show in the budget only once billed. So the forecast of
a team (or of a service) adds what its previews that are up now will cost until they expire or
the month ends, whichever comes first: each one's quota times the catalog's unit prices, times
the share of those hours its off-hours schedule keeps it awake (the price its Slack message
shows). It is an upper bound: a preview closed earlier costs less, and the days already billed
are in the actual spend, not here.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import ROUND_HALF_UP, Decimal

from sqlmodel import Session

from commands.cost.parse import Scope, ScopeKind
from core.catalog import Catalog
from core.clock import Clock
from core.pricing import money, price_tag
from storage import environments as env_repo
from storage import previews as repo
from storage.db import Database

CENT = Decimal("0.01")


@dataclass(frozen=True)
class PreviewEstimate:
    amount: Decimal
    count: int
    currency: str

    def describe(self) -> str:
        previews = "preview" if self.count == 1 else "previews"
        return (
            f"includes ≈ {money(self.amount, self.currency)} for {self.count} running pull "
            f"request {previews} until they expire or the month ends (environment pricing)"
        )


@dataclass
class PreviewCosts:
    catalog: Catalog
    db: Database
    clock: Clock

    async def estimate(self, scope: Scope, month_end: datetime) -> PreviewEstimate | None:
        """What the scope's running previews will cost from now to `month_end` (None when
        the scope has none, or is an environment: previews are environments of their own)."""
        if not self.catalog.previews or scope.kind not in (ScopeKind.TEAM, ScopeKind.SERVICE):
            return None
        now = self.clock.now()

        def running(session: Session) -> list[tuple[repo.PullRequestPreview, datetime | None]]:
            teams = [scope.name] if scope.kind is ScopeKind.TEAM else None
            found = []
            for preview in repo.live(session, teams):
                if scope.kind is ScopeKind.SERVICE and preview.service != scope.name:
                    continue
                environment = env_repo.live_by_name(session, preview.namespace)
                if environment is not None:
                    found.append((preview, environment.expires_at))
            return found

        total, count = Decimal(0), 0
        for preview, expires_at in await self.db.run(running):
            spec = self.catalog.preview_for(preview.provider, preview.repository)
            template = self.catalog.template(spec.template) if spec else None
            if spec is None or template is None or spec.size not in template.sizes:
                continue
            end = min(expires_at or month_end, month_end)
            hours = Decimal(max(0, int((end - now).total_seconds()))) / Decimal(3600)
            tag = price_tag(
                template.sizes[spec.size],
                self.catalog.pricing,
                spec.ttl or template.default_ttl,
                spec.offhours or template.offhours,
            )
            total += tag.hourly * tag.awake_fraction * hours
            count += 1
        if count == 0:
            return None
        amount = total.quantize(CENT, rounding=ROUND_HALF_UP)
        return PreviewEstimate(amount, count, self.catalog.pricing.currency)
