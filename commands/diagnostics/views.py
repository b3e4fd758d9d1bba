"""Diagnostics as Block Kit: status, pods and events; logs as a code block or a file."""

from __future__ import annotations

from commands.diagnostics.service import EventLine, PodLine, StatusReport
from commands.slo.views import percent
from core.block_limits import escape
from core.durations import format_duration
from integrations.slack.blocks import Block, context, divider, header, section, sections

MAX_LINES = 40
INLINE_LOG_CHARS = 2_800


def _pod_text(pod: PodLine) -> str:
    icon = (
        ":large_green_circle:"
        if pod.ready.split("/")[0] == pod.ready.split("/")[1]
        else (":red_circle:")
    )
    reason = f", {escape(pod.reason)}" if pod.reason else ""
    restarts = f", {pod.restarts} restarts" if pod.restarts else ""
    return f"{icon} `{escape(pod.name)}` {pod.ready} ready, {escape(pod.phase)}{restarts}{reason}"


def _event_text(event: EventLine) -> str:
    times = f" ×{event.count}" if event.count > 1 else ""
    return (
        f"`{event.at}` *{escape(event.reason)}*{times} {escape(event.involved)}: "
        f"{escape(event.message)}"
    )


def _lines(lines: list[str], empty: str) -> str:
    if not lines:
        return empty
    shown = lines[:MAX_LINES]
    if len(lines) > MAX_LINES:
        shown.append(f"… and {len(lines) - MAX_LINES} more")
    return "\n".join(shown)


def status(report: StatusReport) -> tuple[str, list[Block]]:
    asked = report.asked
    title = f"{asked.service} in {asked.environment}"
    blocks: list[Block] = [header(f"Status: {title}")]
    rollout = report.rollout
    if rollout is None:
        state = "_unknown_"
    elif rollout.failed:
        state = f":x: failed: {escape(rollout.reason)}"
    elif rollout.done:
        state = f":white_check_mark: complete, {rollout.ready}/{rollout.replicas} ready"
    else:
        state = (
            f":hourglass_flowing_sand: rolling out, {rollout.updated}/{rollout.replicas} updated"
        )
    restarting = [p for p in report.pods if p.restarts or p.reason]
    ready = sum(1 for p in report.pods if p.ready.split("/")[0] == p.ready.split("/")[1])
    freeze = (
        f":snowflake: frozen: {escape(report.freeze.reason)}" if report.freeze else "not frozen"
    )
    blocks.append(
        section(
            fields=[
                f"*Running version*\n`{escape(report.version) or '?'}`",
                f"*Rollout*\n{state}",
                f"*Pods*\n{ready}/{len(report.pods)} ready, {len(restarting)} with restarts or errors",
                f"*Freeze*\n{freeze}",
            ]
        )
    )
    if restarting:
        blocks.append(
            section("*Pods with problems*\n" + _lines([_pod_text(p) for p in restarting[:10]], ""))
        )
    blocks.append(
        section(
            f"*Warning events (last {format_duration(asked.since)})*\n"
            + _lines([_event_text(e) for e in report.events[:8]], "_none_")
        )
    )
    if report.slos:
        slo_lines = []
        for item in report.slos:
            sli = percent(item.sli) if item.sli is not None else "no data"
            budget = (
                f"{item.budget_remaining * 100:.0f}% error budget left"
                if item.budget_remaining is not None
                else "budget unknown"
            )
            slo_lines.append(f"*{escape(item.ref.key)}* {item.status.value}: SLI {sli}, {budget}")
        blocks.append(section("*SLOs*\n" + "\n".join(slo_lines)))
    deploys = [
        f"`{d.started_at:%m-%d %H:%M}` {d.kind} `{escape(d.previous_version or '?')}` → "
        f"`{escape(d.version)}` {d.outcome}"
        + (f" by <@{d.actor}>" if d.actor.startswith("U") else "")
        for d in report.deploys
    ]
    blocks.append(section("*Last deploys*\n" + _lines(deploys, "_none recorded_")))
    notes = []
    if report.runbook:
        notes.append(f"<{report.runbook}|:book: Runbook>")
    notes += [f":warning: {escape(p)}" for p in report.problems]
    if notes:
        blocks.append(context(*notes))
    return f"Status of {title}", blocks


def pods(title: str, lines: list[PodLine]) -> tuple[str, list[Block]]:
    text = f"Pods of {title}: {len(lines)}"
    body = _lines([_pod_text(p) for p in lines], "_no pods_")
    return text, [header(f"Pods: {title}"), *sections(body)[:45]]


def events(title: str, lines: list[EventLine], since: str) -> tuple[str, list[Block]]:
    text = f"Warning events of {title} in the last {since}: {len(lines)}"
    body = _lines([_event_text(e) for e in lines], "_no warning events_")
    return text, [header(f"Warning events: {title}, last {since}"), *sections(body)[:45]]


def logs_inline(title: str, text: str, notes: list[str]) -> tuple[str, list[Block]]:
    blocks: list[Block] = [
        section(f"*Logs of {escape(title)}*\n```{escape(text) or '(no lines)'}```")
    ]
    if notes:
        blocks.append(divider())
        blocks.append(context(*[escape(n) for n in notes[:9]]))
    return f"Logs of {title}", blocks


def fits_inline(text: str) -> bool:
    return len(text) <= INLINE_LOG_CHARS and text.count("\n") <= MAX_LINES
