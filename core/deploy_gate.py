"""The contracts other capabilities plug into the deploy gate with.

The deploy service evaluates every gate in one place; capabilities that know something about a
deploy's safety (the SLO capability knows error budgets) provide an object of these shapes.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True)
class BudgetVerdict:
    """What the error budget says about deploying a service to an environment."""

    exhausted: bool
    summary: str
    """One line with the figures, shown to the person who is blocked (or warned)."""


class BudgetGate(Protocol):
    async def check(self, service: str, environment: str) -> BudgetVerdict | None:
        """The verdict, or None where the service has no SLO or its data is unavailable
        (an unavailable Prometheus never blocks a deploy; the deploy says so)."""
        ...
