"""What people see of a preview: its one Slack message, its one pull-request comment, the list
and the App Home section. Pure functions from data to text and Block Kit."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal

from commands.environments.views import expires_text
from core.block_limits import escape
from core.durations import format_duration
from core.pricing import PriceTag, money
from integrations.kubernetes.rollout import RolloutStatus
from integrations.slack.blocks import Block, actions, button, confirm_dialog, context, section
from storage.previews import PreviewPhase, PullRequestPreview

EXTEND, DELETE, KEEP_AWAKE = "preview_extend", "preview_delete", "preview_keep_awake"
COMMENT_MARKER = "<!-- forgebot:preview -->"

ICON = {
    PreviewPhase.BUILDING: ":gear:",
    PreviewPhase.READY: ":large_green_circle:",
    PreviewPhase.FAILED: ":x:",
    PreviewPhase.REMOVED: ":white_circle:",
}


@dataclass(frozen=True)
class Facts:
    """What a message shows besides the preview row: the price, expiry and rollout progress."""

    price: PriceTag | None
    offhours: str | None
    expires_at: datetime | None
    now: datetime
    rollout: RolloutStatus | None = None
    previous_sha: str = ""
    """The SHA the preview ran before this update ('' for the first build)."""


def short(sha: str) -> str:
    return sha[:7]


def url_of(preview: PullRequestPreview) -> str:
    return f"https://{preview.host}" if preview.host else ""


def title_of(preview: PullRequestPreview) -> str:
    name = f"{preview.repository}#{preview.number}"
    return f"<{preview.url}|{escape(name)}>" if preview.url else escape(name)


def state_line(preview: PullRequestPreview, facts: Facts) -> str:
    phase = PreviewPhase(preview.phase)
    sha = short(preview.deployed_sha or preview.head_sha)
    if phase is PreviewPhase.BUILDING:
        target = short(preview.head_sha)
        verb = (
            f"Updating from `{short(facts.previous_sha)}` to" if facts.previous_sha else "Building"
        )
        line = f":gear: {verb} `{target}`…"
        if facts.rollout is not None and facts.rollout.replicas:
            done = round(facts.rollout.fraction * 10)
            line += (
                f"  `{'█' * done}{'░' * (10 - done)}` "
                f"{facts.rollout.ready}/{facts.rollout.replicas} ready"
            )
        return line
    if phase is PreviewPhase.READY:
        link = f"<{url_of(preview)}|{preview.host}>"
        if facts.previous_sha and facts.previous_sha != preview.deployed_sha:
            return f":large_green_circle: Updated to `{sha}`: ready at {link}"
        return f":large_green_circle: Ready at {link} (`{sha}`)"
    if phase is PreviewPhase.FAILED:
        return f":x: The preview of `{sha}` failed: {escape(preview.detail)}"
    return f":white_circle: Removed{f' ({escape(preview.detail)})' if preview.detail else ''}."


def cost_line(facts: Facts) -> str:
    if facts.price is None:
        return ""
    left = ""
    if facts.expires_at is not None and facts.expires_at > facts.now:
        hours = (facts.expires_at - facts.now).total_seconds() / 3600
        until = facts.price.hourly * facts.price.awake_fraction * _decimal(hours)
        left = f", {money(until, facts.price.currency)} until it expires"
    sleeps = f"; asleep outside {facts.offhours}" if facts.offhours else ""
    return f"≈ {money(facts.price.monthly, facts.price.currency)}/month{left}{sleeps}"


def _decimal(value: float) -> Decimal:
    return Decimal(str(round(value, 4)))


def message(preview: PullRequestPreview, facts: Facts) -> tuple[str, list[Block]]:
    """The one Slack message of a pull request's preview, whatever state it is in."""
    name = f"{preview.repository}#{preview.number}"
    line = state_line(preview, facts)
    text = f"Preview of {name}: {line}"
    author = f" by {escape(preview.author)}" if preview.author else ""
    branch = f" · branch `{escape(preview.branch)}`" if preview.branch else ""
    blocks: list[Block] = [
        section(f"*{title_of(preview)}* {escape(preview.title)}\n{author.strip()}{branch}"),
        section(line),
    ]
    removed = preview.phase == PreviewPhase.REMOVED
    details = [f"`{preview.namespace}`"]
    if not removed:
        details.append(f"expires {expires_text(facts.expires_at, facts.now)}")
        cost = cost_line(facts)
        if cost:
            details.append(f":moneybag: {cost}")
    blocks.append(context(" · ".join(details)))
    if not removed:
        value = preview.namespace
        blocks.append(
            actions(
                button("Extend 1 day", EXTEND, value=value),
                button(
                    "Delete now",
                    DELETE,
                    value=value,
                    style="danger",
                    confirm=confirm_dialog(
                        "Delete this preview?",
                        f"{preview.namespace} and everything in it is removed now. "
                        "The next push to the pull request builds it again.",
                        "Delete",
                        danger=True,
                    ),
                ),
                button("Keep awake tonight", KEEP_AWAKE, value=value),
                block_id=f"preview-{preview.id}",
            )
        )
    return text, blocks


def comment(preview: PullRequestPreview, facts: Facts) -> str:
    """The pull request's one comment (Markdown, for GitHub and GitLab alike)."""
    phase = PreviewPhase(preview.phase)
    sha = short(preview.deployed_sha or preview.head_sha)
    if phase is PreviewPhase.READY:
        state = f"ready at **{url_of(preview)}** (commit `{sha}`)"
    elif phase is PreviewPhase.BUILDING:
        state = f"building commit `{short(preview.head_sha)}`…"
    elif phase is PreviewPhase.FAILED:
        state = f"failed for commit `{sha}`: {preview.detail}"
    else:
        state = f"removed{f' ({preview.detail})' if preview.detail else ''}"
    lines = [
        COMMENT_MARKER,
        f"**Preview environment** {state}",
        "",
        f"- Namespace: `{preview.namespace}`",
    ]
    if phase is not PreviewPhase.REMOVED:
        if facts.expires_at is not None:
            lines.append(f"- Expires: {facts.expires_at:%Y-%m-%d %H:%M} UTC (each push extends it)")
        cost = cost_line(facts)
        if cost:
            lines.append(f"- Estimated cost: {cost}")
    lines += ["", "_Managed by forgebot: pushes update it, closing the pull request removes it._"]
    return "\n".join(lines)


def preview_line(preview: PullRequestPreview, facts: Facts) -> str:
    age = format_duration(
        timedelta(minutes=int((facts.now - preview.created_at).total_seconds() // 60))
    )
    phase = PreviewPhase(preview.phase)
    where = f" at <{url_of(preview)}|{preview.host}>" if phase is PreviewPhase.READY else ""
    cost = cost_line(facts)
    title = escape(preview.title[:80])
    return (
        f"{ICON[phase]} *{title_of(preview)}* {title}\n"
        f"`{preview.namespace}` {phase.value}{where} · age {age}"
        + (f" · {cost}" if cost and phase is not PreviewPhase.REMOVED else "")
    )


def preview_list(
    items: Sequence[tuple[PullRequestPreview, Facts]], scope: str
) -> tuple[str, list[Block]]:
    text = f"Previews ({scope}): {len(items)}"
    if not items:
        return text, [section(f"*Previews ({escape(scope)})*: none open.")]
    blocks: list[Block] = [section(f"*Previews ({escape(scope)})*: {len(items)}")]
    blocks += [section(preview_line(p, f)) for p, f in items[:45]]
    if len(items) > 45:
        blocks.append(context(f"… and {len(items) - 45} more"))
    return text, blocks


def home_section(items: Sequence[tuple[PullRequestPreview, Facts]]) -> list[Block]:
    if not items:
        return []
    blocks: list[Block] = [
        {"type": "header", "text": {"type": "plain_text", "text": "Your teams' previews"}}
    ]
    blocks += [section(preview_line(p, f)) for p, f in items[:20]]
    return blocks
