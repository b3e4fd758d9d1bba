"""Messages of the deploy capability."""

from __future__ import annotations

import json
from typing import Any

from commands.deploy.freeze import FreezeState
from commands.deploy.history import HistoryLine
from commands.deploy.rollback import RollbackPlan
from commands.deploy.runner import Change
from commands.deploy.service import DeployPlan, GateState, Need
from core.block_limits import escape
from core.catalog import Catalog
from core.catalog_gitops import GitOpsTarget
from core.times import DATE_TIME, shown
from integrations.git.repository import CommitInfo
from integrations.kubernetes.rollout import RolloutStatus
from integrations.slack import blocks as bk
from storage.models import ApprovalState, DeployApproval


def _until(state: FreezeState) -> str:
    return f"until {shown(state.until)}" if state.until else "until someone unfreezes it"


def frozen_text(state: FreezeState, sync_windows: list[str] | None = None) -> str:
    text = (
        f":snowflake: *{escape(state.environment)}* is frozen {_until(state)} (frozen by "
        f"<@{state.by}>): "
        f"{escape(state.reason)}. Deploys are refused; on-call may still roll back."
    )
    if sync_windows:
        # Git-delivered workloads: forgebot's freeze stops its commits, not the controllers.
        text += "\n*GitOps controllers* (they keep syncing what is in Git):\n" + "\n".join(
            f"• {escape(line)}" for line in sync_windows[:20]
        )
    return text


def unfrozen_text(environment: str, lifted: int, still: FreezeState | None) -> str:
    if still is not None and still.scheduled:
        return (
            f":snowflake: {escape(environment)} stays frozen by a scheduled window "
            f"({escape(still.reason)}) {_until(still)}."
        )
    if not lifted:
        return f"{escape(environment)} was not frozen."
    return f":sunny: *{escape(environment)}* is open for deploys again."


def freeze_status(states: list[FreezeState]) -> tuple[str, list[dict[str, Any]]]:
    if not states:
        return "No freezes", [
            {
                "type": "section",
                "text": {"type": "mrkdwn", "text": ":sunny: No environment is frozen."},
            }
        ]
    lines = [
        f":snowflake: *{escape(s.environment)}* {_until(s)}: {escape(s.reason)} "
        f"({'scheduled in the catalog' if s.scheduled else f'by <@{s.by}>'})"
        for s in states
    ]
    return f"{len(states)} frozen", [
        {"type": "section", "text": {"type": "mrkdwn", "text": "\n".join(lines)}}
    ]


def history(
    service: str, environment: str, lines: list[HistoryLine]
) -> tuple[str, list[dict[str, Any]]]:
    title = f"{service} in {environment}: {len(lines)} revisions"
    if not lines:
        return title, [
            {
                "type": "section",
                "text": {"type": "mrkdwn", "text": f"No revisions of {escape(service)} yet."},
            }
        ]
    rows = []
    for line in lines[:30]:
        when = shown(line.created, DATE_TIME) if line.created else "unknown time"
        who = (
            f" by <@{line.deployed_by}>"
            if line.deployed_by.startswith(("U", "W"))
            else (f" by {escape(line.deployed_by)}" if line.deployed_by else "")
        )
        marker = " ← current" if line.current else ""
        rows.append(f"`{line.revision:>3}` *{escape(line.version)}* {when}{who}{marker}")
    return title, [
        {"type": "section", "text": {"type": "mrkdwn", "text": f"*{escape(title)}*"}},
        {"type": "section", "text": {"type": "mrkdwn", "text": "\n".join(rows)[:3000]}},
    ]


def commit_history(
    service: str, environment: str, target: GitOpsTarget, commits: list[CommitInfo]
) -> tuple[str, list[dict[str, Any]]]:
    """GitOps delivery: the commits that changed the desired-state file, newest first."""
    title = f"{service} in {environment}: {len(commits)} commits to {target.file}"
    rows = []
    for commit in commits[:20]:
        author = commit.author.split(" <", 1)[0]
        rows.append(
            f"`{commit.sha[:10]}` {commit.time:%Y-%m-%d %H:%M} {escape(commit.subject)} "
            f"({escape(author)})"
        )
    where = f"{escape(target.repository)} `{escape(target.branch)}`, {escape(target.field_label)}"
    return title, [
        {"type": "section", "text": {"type": "mrkdwn", "text": f"*{escape(title)}*\n{where}"}},
        {
            "type": "section",
            "text": {
                "type": "mrkdwn",
                "text": ("\n".join(rows) or "No commits changed it yet.")[:3000],
            },
        },
    ]


ROLLBACK_CONFIRM = "deploy_rollback_confirm"
ROLLBACK_CANCEL = "deploy_rollback_cancel"


def rollback_confirm(plan: RollbackPlan) -> tuple[str, list[dict[str, Any]]]:
    text = f"Roll back {plan.service} in {plan.environment} from {plan.from_version} to {plan.to_version}?"
    value = f"{plan.service}|{plan.environment}|{plan.to_revision}"
    where = (
        f"reverting commit `{plan.revert_of[:10]}`"
        if plan.revert_of
        else f"revision {plan.to_revision}"
    )
    return text, [
        {
            "type": "section",
            "text": {
                "type": "mrkdwn",
                "text": f":rewind: Roll back *{escape(plan.service)}* in *{escape(plan.environment)}* from "
                f"`{escape(plan.from_version)}` to `{escape(plan.to_version)}` ({where})?",
            },
        },
        {
            "type": "actions",
            "block_id": "rollback-confirm",
            "elements": [
                {
                    "type": "button",
                    "text": {"type": "plain_text", "text": "Roll back now"},
                    "style": "danger",
                    "action_id": ROLLBACK_CONFIRM,
                    "value": value,
                },
                {
                    "type": "button",
                    "text": {"type": "plain_text", "text": "Cancel"},
                    "action_id": ROLLBACK_CANCEL,
                    "value": value,
                },
            ],
        },
    ]


def _bar(fraction: float, width: int = 20) -> str:
    filled = round(fraction * width)
    return "█" * filled + "░" * (width - filled)


def _rollout_head(change: Change) -> str:
    what = "rolling back" if change.is_rollback else "deploying"
    hotfix = " (hotfix)" if change.hotfix else ""
    return (
        f"*{escape(change.service)}* in *{escape(change.environment)}*: {what}{hotfix} "
        f"`{escape(change.from_version)}` → `{escape(change.to_version)}`, by <@{change.actor}>"
    )


def _status_line(status: RolloutStatus | None, elapsed: float) -> str:
    if status is None:
        return ":hourglass_flowing_sand: starting…"
    if status.done:
        return f":white_check_mark: done in {elapsed:.0f} s: {status.ready}/{status.replicas} ready"
    if status.failed:
        return f":x: failed after {elapsed:.0f} s: {escape(status.reason)}"
    if status.replicas == 0 and status.reason:
        # Before the workload moves: the commit and what its GitOps controller says.
        return f":arrows_counterclockwise: {escape(status.reason)}, {elapsed:.0f} s"
    note = f" ({escape(status.reason)})" if status.reason else ""
    return (
        f"`{_bar(status.fraction)}` {status.updated}/{status.replicas} updated, "
        f"{status.ready}/{status.replicas} ready, {elapsed:.0f} s{note}"
    )


def rollback_button(change: Change) -> dict[str, Any]:
    """Offered on a failed deploy: the same confirmed rollback as `/rollback ... to N`."""
    return {
        "type": "button",
        "text": {"type": "plain_text", "text": "Roll back now"},
        "style": "danger",
        "action_id": ROLLBACK_CONFIRM,
        "value": f"{change.service}|{change.environment}|"
        + ("git" if change.delivery == "gitops" else str(change.back_to_revision)),
        "confirm": {
            "title": {"type": "plain_text", "text": "Roll back?"},
            "text": {
                "type": "mrkdwn",
                "text": f"Put `{escape(change.from_version)}` back on "
                f"{escape(change.service)} in {escape(change.environment)}.",
            },
            "confirm": {"type": "plain_text", "text": "Roll back"},
            "deny": {"type": "plain_text", "text": "Cancel"},
        },
    }


def rollout_message(
    change: Change, status: RolloutStatus | None, elapsed: float
) -> tuple[str, list[dict[str, Any]]]:
    verb = "rollback" if change.is_rollback else "deploy"
    state = (
        "in progress"
        if status is None or not (status.done or status.failed)
        else ("succeeded" if status.done else "failed")
    )
    text = f"{change.service} {change.environment}: {verb} of {change.to_version} {state}"
    blocks: list[dict[str, Any]] = [
        {
            "type": "section",
            "text": {
                "type": "mrkdwn",
                "text": f"{_rollout_head(change)}\n{_status_line(status, elapsed)}",
            },
        }
    ]
    if (
        status is not None
        and status.failed
        and not change.is_rollback
        and change.back_to_revision is not None
    ):
        blocks.append(
            {"type": "actions", "block_id": "deploy-failed", "elements": [rollback_button(change)]}
        )
    return text, blocks


def rollout_announcement(
    change: Change, status: RolloutStatus, elapsed: float
) -> tuple[str, list[dict[str, Any]]]:
    """What the owning team's channel reads: the outcome, without buttons."""
    icon = ":white_check_mark:" if status.done else ":x:"
    verb = "Rolled back" if change.is_rollback else "Deployed"
    if status.done:
        line = (
            f"{icon} {verb} *{escape(change.service)}* `{escape(change.to_version)}` to "
            f"*{escape(change.environment)}* in {elapsed:.0f} s (was `{escape(change.from_version)}`), "
            f"by <@{change.actor}>"
        )
    else:
        what = "rollback" if change.is_rollback else "deploy"
        line = (
            f"{icon} The {what} of *{escape(change.service)}* `{escape(change.to_version)}` to "
            f"*{escape(change.environment)}* failed: {escape(status.reason)} (by <@{change.actor}>)"
        )
    text = f"{change.service} {change.environment}: {change.to_version} " + (
        "succeeded" if status.done else "failed"
    )
    return text, [{"type": "section", "text": {"type": "mrkdwn", "text": line}}]


# --- deploy ------------------------------------------------------------------------------------
DEPLOY_CONFIRM_VIEW = "deploy_confirm"
DEPLOY_FORM_VIEW = "deploy_form"
DEPLOY_REVIEW = "deploy_review"
DEPLOY_APPROVE = "deploy_approve"
DEPLOY_DENY = "deploy_deny"
DEPLOY_DENY_VIEW = "deploy_deny_reason"


def deny_modal(approval: DeployApproval) -> dict[str, Any]:
    """Why the deploy is denied: asked as for environment requests, told to the requester."""
    return {
        "type": "modal",
        "callback_id": DEPLOY_DENY_VIEW,
        "title": {"type": "plain_text", "text": "Deny deploy"},
        "submit": {"type": "plain_text", "text": "Deny"},
        "close": {"type": "plain_text", "text": "Cancel"},
        "private_metadata": json.dumps({"approval_id": approval.id}),
        "blocks": [
            {
                "type": "section",
                "text": {
                    "type": "mrkdwn",
                    "text": f"Deny deploying *{escape(approval.service)}* `{escape(approval.version)}` "
                    f"to *{escape(approval.environment)}*? <@{approval.requester}> sees your reason.",
                },
            },
            {
                "type": "input",
                "block_id": REASON,
                "label": {"type": "plain_text", "text": "Reason"},
                "element": {
                    "type": "plain_text_input",
                    "action_id": "value",
                    "multiline": True,
                    "max_length": 500,
                },
            },
        ],
    }


FORM_SERVICE, FORM_ENVIRONMENT, FORM_VERSION, FORM_HOTFIX = (
    "service",
    "environment",
    "version",
    "hotfix",
)
REASON = "reason"

_GATE_ICONS = {
    GateState.PASS: ":white_check_mark:",
    GateState.INFO: ":information_source:",
    GateState.BLOCK: ":no_entry:",
    GateState.NEEDS_REASON: ":warning:",
    GateState.NEEDS_APPROVAL: ":busts_in_silhouette:",
}


def gate_lines(plan: DeployPlan) -> str:
    return "\n".join(f"{_GATE_ICONS[g.state]} *{g.name}*: {g.detail}" for g in plan.gates)


def _what(plan: DeployPlan) -> str:
    request = plan.request
    hotfix = " as a *hotfix*" if request.hotfix else ""
    return (
        f":rocket: Deploy *{escape(request.service)}* to *{escape(request.environment)}*{hotfix}: "
        f"`{escape(plan.from_version)}` → `{escape(request.version.text)}`"
    )


def plan_metadata(plan: DeployPlan, channel: str) -> str:
    request = plan.request
    return json.dumps(
        {
            "service": request.service,
            "environment": request.environment,
            "version": request.version.text,
            "hotfix": request.hotfix,
            "channel": channel,
        }
    )


def deploy_blocked(plan: DeployPlan) -> tuple[str, list[dict[str, Any]]]:
    text = f"The deploy of {plan.request.service} to {plan.request.environment} is blocked"
    return text, [
        bk.section(_what(plan)),
        bk.section(f"*Blocked.*\n{gate_lines(plan)}"),
    ]


def deploy_needs_review(plan: DeployPlan, channel: str) -> tuple[str, list[dict[str, Any]]]:
    """In a non-confirming environment, a gate wants a reason or a second person first."""
    text = f"The deploy of {plan.request.service} to {plan.request.environment} needs more"
    label = "Break glass…" if Need.BREAK_GLASS in plan.needs else "Review and deploy…"
    return text, [
        bk.section(_what(plan)),
        bk.section(gate_lines(plan)),
        bk.actions(
            bk.button(
                label,
                DEPLOY_REVIEW,
                value=plan_metadata(plan, channel),
                style="danger" if plan.needs_reason else "primary",
            ),
            block_id="deploy-review",
        ),
    ]


def confirm_modal(plan: DeployPlan, channel: str) -> dict[str, Any]:
    blocks: list[dict[str, Any]] = [bk.section(_what(plan)), bk.section(gate_lines(plan))]
    if plan.needs_reason:
        blocks.append(
            {
                "type": "input",
                "block_id": REASON,
                "label": bk.plain_text(
                    "Why break glass?" if Need.BREAK_GLASS in plan.needs else "Why override?"
                ),
                "element": {
                    "type": "plain_text_input",
                    "action_id": "value",
                    "multiline": True,
                    "max_length": 500,
                },
                "hint": bk.plain_text("Kept in the audit log and shown to the approver."),
            }
        )
    if plan.needs_second_person:
        blocks.append(bk.context("A second person approves before the deploy starts."))
    submit = "Ask for approval" if plan.needs_second_person else "Deploy"
    return bk.modal(
        f"Deploy to {plan.request.environment}"[:24],
        blocks,
        callback_id=DEPLOY_CONFIRM_VIEW,
        submit=submit,
        private_metadata=plan_metadata(plan, channel),
    )


def blocked_modal(plan: DeployPlan) -> dict[str, Any]:
    _, blocks = deploy_blocked(plan)
    return bk.modal("Deploy blocked", blocks, callback_id=DEPLOY_CONFIRM_VIEW, close="Close")


def loading_modal(service: str, environment: str) -> dict[str, Any]:
    return bk.modal(
        "Deploy",
        [
            bk.section(
                f":hourglass_flowing_sand: Checking the gates for {escape(service)} in "
                f"{escape(environment)}…"
            )
        ],
        callback_id=DEPLOY_CONFIRM_VIEW,
        close="Close",
    )


def error_modal(message: str) -> dict[str, Any]:
    return bk.modal(
        "Deploy",
        [bk.section(f":warning: {message}")],
        callback_id=DEPLOY_CONFIRM_VIEW,
        close="Close",
    )


def deploy_form(
    catalog: Catalog,
    channel: str,
    service: str | None = None,
    suggestions: list[str] = (),  # type: ignore[assignment]
) -> dict[str, Any]:
    """`/deploy` with no arguments: pickers for service and environment, the version typed,
    with the versions that ran recently offered as a hint."""
    services = [bk.option(s.name, s.name, s.team) for s in catalog.services][:100]
    chosen = catalog.service(service) if service else None
    environments = [
        bk.option(e, e)
        for e in (chosen.workloads if chosen else [e.name for e in catalog.environments])
    ][:100]
    blocks: list[dict[str, Any]] = [
        {
            "type": "input",
            "block_id": FORM_SERVICE,
            "dispatch_action": True,
            "label": bk.plain_text("Service"),
            "element": {
                "type": "static_select",
                "action_id": "value",
                "options": services,
                **(
                    {"initial_option": bk.option(chosen.name, chosen.name, chosen.team)}
                    if chosen
                    else {}
                ),
            },
        },
        {
            "type": "input",
            "block_id": FORM_ENVIRONMENT,
            "label": bk.plain_text("Environment"),
            "element": {"type": "static_select", "action_id": "value", "options": environments},
        },
        {
            "type": "input",
            "block_id": FORM_VERSION,
            "label": bk.plain_text("Version"),
            "element": {
                "type": "plain_text_input",
                "action_id": "value",
                "placeholder": bk.plain_text("a tag like 1.4.2, or sha256:…"),
            },
            "hint": bk.plain_text(
                "Recently running: " + ", ".join(suggestions)
                if suggestions
                else "The image repository comes from the catalog."
            ),
        },
        {
            "type": "input",
            "block_id": FORM_HOTFIX,
            "optional": True,
            "label": bk.plain_text("Hotfix"),
            "element": {
                "type": "checkboxes",
                "action_id": "value",
                "options": [
                    bk.option("This is a hotfix (not gated by the error budget)", "hotfix")
                ],
            },
        },
    ]
    return bk.modal(
        "Deploy",
        blocks,
        callback_id=DEPLOY_FORM_VIEW,
        submit="Next",
        private_metadata=json.dumps({"channel": channel}),
    )


def started_text(plan: DeployPlan, already: bool) -> str:
    if already:
        return "That deploy was already started."
    return (
        f":rocket: Deploying {escape(plan.request.service)} `{escape(plan.request.version.text)}` "
        f"to {escape(plan.request.environment)}; progress follows in this channel."
    )


def awaiting_text(approval: DeployApproval) -> str:
    return (
        f":busts_in_silhouette: Asked for approval of {escape(approval.service)} "
        f"`{escape(approval.version)}` to {escape(approval.environment)} in "
        f"<#{approval.card_channel}>; the deploy starts when someone approves."
    )


def approval_card(approval: DeployApproval, plan: DeployPlan) -> tuple[str, list[dict[str, Any]]]:
    needs = approval.needs.split(",")
    who = (
        "on-call or platform"
        if Need.BREAK_GLASS.value in needs
        else f"someone from {escape(plan.team)}, on-call or platform"
    )
    reason = f"\n>*Reason:* {escape(approval.reason)}" if approval.reason else ""
    text = f"<@{approval.requester}> asks to deploy {approval.service} {approval.version} to {approval.environment}"
    return text, [
        bk.section(
            f"{_what(plan)}\nAsked by <@{approval.requester}>; {who} may approve "
            f"(not the requester).{reason}"
        ),
        bk.section(gate_lines(plan)),
        bk.actions(
            bk.button("Approve", DEPLOY_APPROVE, value=str(approval.id), style="primary"),
            bk.button("Deny", DEPLOY_DENY, value=str(approval.id), style="danger"),
            block_id="deploy-approval",
        ),
    ]


def approval_decided(approval: DeployApproval) -> tuple[str, list[dict[str, Any]]]:
    verdict = (
        ":white_check_mark: approved" if approval.state == ApprovalState.APPROVED else ":x: denied"
    )
    text = f"Deploy of {approval.service} {approval.version} to {approval.environment} {approval.state}"
    note = f": {escape(approval.decision_note)}" if approval.decision_note else ""
    return text, [
        bk.section(
            f"Deploy *{escape(approval.service)}* `{escape(approval.version)}` to "
            f"*{escape(approval.environment)}*, asked by <@{approval.requester}>: {verdict} by "
            f"<@{approval.decided_by}>{note}"
        )
    ]
