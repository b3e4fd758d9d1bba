"""Create silences through Alertmanager's API v2 (`POST /api/v2/silences`)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import aiohttp

from core.errors import DependencyUnavailable


class AlertmanagerUnavailable(DependencyUnavailable):
    pass


@dataclass
class AlertmanagerClient:
    base_url: str
    timeout: float = 5.0

    async def silence(
        self,
        matchers: dict[str, str],
        starts_at: datetime,
        ends_at: datetime,
        created_by: str,
        comment: str,
    ) -> str:
        """Silence alerts with exactly these labels; returns the silence id."""
        body = {
            "matchers": [
                {"name": name, "value": value, "isRegex": False, "isEqual": True}
                for name, value in sorted(matchers.items())
            ],
            "startsAt": starts_at.isoformat(),
            "endsAt": ends_at.isoformat(),
            "createdBy": created_by,
            "comment": comment,
        }
        url = f"{self.base_url.rstrip('/')}/api/v2/silences"
        try:
            async with (
                aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=self.timeout)) as s,
                s.post(url, json=body) as response,
            ):
                if response.status != 200:
                    text = (await response.text())[:300]
                    raise AlertmanagerUnavailable(
                        f"Alertmanager refused the silence ({response.status}: {text})"
                    )
                answer = await response.json()
        except aiohttp.ClientError as exc:
            raise AlertmanagerUnavailable(
                f"Alertmanager is unreachable ({type(exc).__name__})"
            ) from None
        except TimeoutError:
            raise AlertmanagerUnavailable("Alertmanager did not answer in time") from None
        return str(answer.get("silenceID", ""))
