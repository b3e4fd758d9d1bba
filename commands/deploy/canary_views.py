"""The canary part of a deploy's one progress message: the steps as `kubectl argo rollouts get
rollout` shows them, analysis runs, why it is paused, and the Promote / Promote full / Abort /
Retry buttons. Pure functions within Slack's limits."""

from __future__ import annotations

from typing import Any

from commands.deploy import views
from commands.deploy.runner import Change
from core.block_limits import escape
from integrations.kubernetes.rollout import RolloutStatus
from integrations.kubernetes.rollouts_crd import CanaryState, CanaryStatus
from integrations.slack.blocks import actions, button, confirm_dialog, context, section

PROMOTE = "canary_promote"
PROMOTE_FULL = "canary_promote_full"
ABORT = "canary_abort"
RETRY = "canary_retry"
ACTIONS = (PROMOTE, PROMOTE_FULL, ABORT, RETRY)
MAX_STEPS_SHOWN = 20
_ANALYSIS_ICON = {
    "Successful": ":white_check_mark:",
    "Failed": ":x:",
    "Error": ":x:",
    "Running": ":hourglass_flowing_sand:",
    "Inconclusive": ":grey_question:",
}


def button_value(change: Change, state: CanaryState) -> str:
    """What a press names: the canary, the step it saw and the version of the Rollout it saw
    (a double click sends the same value, so it acts once)."""
    return f"{change.service}|{change.environment}|{state.step_index}|{state.resource_version}"


def _step_line(state: CanaryState) -> str:
    total = len(state.steps)
    parts = []
    for index, step in enumerate(state.steps[:MAX_STEPS_SHOWN]):
        mark = "~" if index < state.step_index else ("▶ " if index == state.step_index else "")
        text = escape(step.describe())
        parts.append(f"~{text}~" if mark == "~" else f"{mark}*{text}*" if mark else text)
    if total > MAX_STEPS_SHOWN:
        parts.append(f"… {total - MAX_STEPS_SHOWN} more")
    return " → ".join(parts) or "no steps (a plain rolling update)"


def _headline(state: CanaryState) -> str:
    total = len(state.steps)
    at = (
        f"step {min(state.step_index + 1, total)}/{total}"
        if state.step_index < total
        else (f"all {total} steps done")
    )
    line = (
        f":hatching_chick: *Canary* {at} · setWeight {state.set_weight}% "
        f"(actual {state.actual_weight}%) · {escape(state.phase)}"
    )
    step = state.current_step
    if state.aborted:
        line += " · aborted"
    elif (
        state.paused and step is not None and step.kind == "pause" and not state.paused_by_forgebot
    ):
        line += (
            f" · paused {step.describe().removeprefix('pause ')}"
            if step.pause_seconds
            else " · paused until promoted"
        )
    elif state.paused:
        line += " · paused"
    if state.message and not state.aborted:
        line += f" ({escape(state.message)})"
    return line


def canary_blocks(change: Change, state: CanaryState, *, finished: bool) -> list[dict[str, Any]]:
    blocks: list[dict[str, Any]] = [section(_headline(state)), context(_step_line(state))]
    if state.analysis:
        blocks.append(
            context(
                *(
                    f"{_ANALYSIS_ICON.get(run.phase, ':grey_question:')} analysis "
                    f"`{escape(run.name)}`: {escape(run.phase)}"
                    + (f" ({escape(run.message)})" if run.message else "")
                    for run in state.analysis
                )
            )
        )
    if state.paused_by_forgebot:
        blocks.append(
            section(f":double_vertical_bar: Paused by forgebot: {escape(state.paused_by_forgebot)}")
        )
    if state.aborted and state.message:
        blocks.append(section(f":no_entry: {escape(state.message)}"))
    value = button_value(change, state)
    if state.aborted:
        blocks.append(
            actions(
                button("Retry", RETRY, value=value, style="primary"),
                block_id="canary-retry",
            )
        )
    elif not finished and state.step_index < len(state.steps):
        blocks.append(
            actions(
                button("Promote", PROMOTE, value=value, style="primary"),
                button(
                    "Promote full",
                    PROMOTE_FULL,
                    value=value,
                    confirm=confirm_dialog(
                        "Promote full?",
                        f"Skip every remaining step and analysis: {escape(change.service)} "
                        f"`{escape(change.to_version)}` takes all of {escape(change.environment)}.",
                        "Promote full",
                    ),
                ),
                button(
                    "Abort",
                    ABORT,
                    value=value,
                    style="danger",
                    confirm=confirm_dialog(
                        "Abort the canary?",
                        f"All traffic goes back to the stable version of {escape(change.service)}.",
                        "Abort",
                        danger=True,
                    ),
                ),
                block_id="canary-actions",
            )
        )
    return blocks


def rollout_message(
    change: Change, status: RolloutStatus | None, elapsed: float
) -> tuple[str, list[dict[str, Any]]]:
    """The deploy's progress message, with the canary under the rollout line for a Rollout."""
    text, blocks = views.rollout_message(change, status, elapsed)
    if isinstance(status, CanaryStatus) and status.canary is not None:
        finished = status.done or status.failed
        canary = canary_blocks(
            change, status.canary, finished=finished and not status.canary.aborted
        )
        # The canary under the headline, the deploy's own buttons (Roll back now) last.
        blocks = blocks[:1] + canary + blocks[1:]
    return text, blocks
