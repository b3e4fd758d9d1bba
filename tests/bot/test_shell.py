"""The demo, driven like a person would drive it, end to end through the real bot."""

from __future__ import annotations

import io
import re
import tempfile
from pathlib import Path

import pytest

from bot.shell import run_demo
from tests.fixtures import requirements


async def _demo(script: str, folder: Path | None = None) -> str:
    out = io.StringIO()
    with tempfile.TemporaryDirectory() as scratch:  # the demo keeps its log and charts there
        code = await run_demo(
            script=None,
            user=None,
            keep=False,
            out=out,
            stdin=io.StringIO(script),
            folder=folder or Path(scratch),
        )
    assert code == 0
    return out.getvalue()


async def test_demo_answers_help_and_unknown_commands() -> None:
    text = await _demo("/forge help\n/forge hlep\n")
    assert "forgebot: your platform in Slack" in text
    assert "Did you mean `/forge help`?" in text
    assert "Traceback" not in text


async def test_demo_switches_user_and_opens_home() -> None:
    text = await _demo(":as U0PLATFORM\n:home\n")
    assert "(now acting as U0PLATFORM)" in text
    assert "[App Home]" in text and "Your teams: *platform*" in text


async def test_demo_explains_non_commands() -> None:
    text = await _demo("deploy please\n:help\n")
    assert "Commands start with '/'" in text
    assert "press the button with that number" in text


async def test_demo_requests_an_environment_through_the_modal() -> None:
    text = await _demo("/env request\n1\nfeature-x\n2\n3d\ntrying the demo\n/env list\n")
    assert "Estimated cost" in text and "/month" in text
    assert "pv-feature-x* is provisioned on dev-cluster" in text
    assert "pv-feature-x* (active)" in text
    assert "Traceback" not in text


async def test_demo_shows_slos_from_synthetic_data() -> None:
    requirements.binary("prometheus", "the `prometheus` package")
    requirements.binary("promtool", "the `prometheus` package")
    text = await _demo("/slo\n")
    assert "a local Prometheus holds 35 days of synthetic metrics" in text
    assert "*ledger/availability* critical" in text and "error budget left -" in text
    assert "*checkout/availability* critical" in text and "page: burn rate over 14.4x" in text
    assert text.index("ledger/availability") < text.index("checkout/latency"), "worst first"


async def test_demo_without_prometheus_says_how_to_get_it(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))  # a PATH with no prometheus on it
    text = await _demo("/slo\n")
    assert "no SLO data in this demo: install Prometheus" in text
    assert "SLOs are not set up here: forgebot has no Prometheus to ask" in text
    assert "Try again in a minute" not in text, "waiting does not fix a missing setting"


async def test_demo_shows_cost_and_budgets() -> None:
    text = await _demo(
        "/cost chart\n/cost team search last-month\n:as U0PLATFORM\n"
        "/forge budget set payments 2500\n/forge budget\n"
    )
    assert "Cost of team payments, this month" in text
    assert "Top services" in text and "Forecast for" in text
    assert "#C0PAYMENTS: [file uploaded: Daily cost of team payments, this month]" in text
    assert "Cost of team search, last month" in text
    assert "The monthly budget of team payments is now $2,500.00 (was $5,000.00)." in text
    assert "*team payments*:" in text and "budget set by @U0PLATFORM" in text
    assert "Traceback" not in text


async def test_demo_deploys_through_the_form_and_asks_before_prod() -> None:
    text = await _demo(
        "/deploy\n1\n1\n1.4.2\n\n\n"  # the form, then Enter on the confirmation
        "/deploy checkout 1.4.2 to prod\nyes\n:cancel\n/env list\n"
    )
    assert "Deploy to staging" in text and "[Enter] Deploy" in text
    assert text.count("deploying `1.4.1` → `1.4.2`") == 1, "a progress message shows once"
    assert ":white_check_mark: done in" in text
    assert "press Enter to ask for approval, or type :cancel" in text
    assert "cancelled: nothing was submitted" in text
    assert "Asked for approval" not in text
    assert "(only you) *Environments" in text, "the prompt is back after the cancelled form"
    assert "Traceback" not in text


async def test_demo_saves_charts_and_cancels_forms(tmp_path: Path) -> None:
    text = await _demo("/cost chart\n/env request\n:cancel\n/forge help\n", tmp_path)
    saved = re.search(r"saved as (\S+\.png)", text)
    assert saved is not None, text
    assert Path(saved.group(1)).read_bytes().startswith(b"\x89PNG")
    assert "cancelled: nothing was submitted" in text
    assert "forgebot: your platform in Slack" in text
    assert "Traceback" not in text and "werkzeug" not in text


async def test_demo_shows_a_budget_alert_before_the_first_command() -> None:
    text = await _demo("/forge help\n")
    alert = text.index("team search is forecast to spend")
    assert alert < text.index("> /forge help"), "background posts show between commands"
    assert "of its $2,000.00 budget" in text


async def test_demo_plays_github_and_the_preview_message_is_updated_in_place() -> None:
    text = await _demo(":pr open 7\n:pr push 7\n/forge previews\n:pr merge 7\n:pr open x\n")
    assert "delivered pull_request opened for acme/checkout#7" in text and "HTTP 202" in text
    assert re.search(r"#C0PAYMENTS:\n\*acme/checkout#7 .*\n.*\n:large_green_circle: Ready", text)
    updates = text.split("delivered pull_request synchronize")[1]
    assert "#C0PAYMENTS (updated):" in updates and "Updated to `" in updates, "one message"
    assert "pr-checkout-7" in text.split("/forge previews")[1]
    assert ":white_circle: Removed (merged)." in text
    assert "usage: :pr open|push|close|merge [NUMBER]" in text
    assert "Traceback" not in text


async def test_demo_deploys_a_gitops_service_by_a_commit_to_its_local_repository() -> None:
    requirements.binary("git", "git with its http-backend")
    text = await _demo("/deploy storefront 1.4.2 to staging\n/forge history storefront staging\n")
    assert "storefront is delivered through Git in this demo" in text
    assert "*storefront* in *staging*: deploying `1.4.1` → `1.4.2`" in text
    assert ":white_check_mark: done in" in text
    history = text.split("/forge history storefront staging")[1]
    assert "2 commits to apps/storefront/overlays/staging/kustomization.yaml" in history
    assert re.search(r"`[0-9a-f]{10}` .* Deploy storefront 1.4.2 to staging \(forgebot\)", history)
    assert "demo-git-token" not in text, "the token never shows"
    assert "Traceback" not in text
