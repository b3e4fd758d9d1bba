from __future__ import annotations

from pathlib import Path

import pytest

from bot.cli import main
from core.catalog import CatalogError, Tier, load_catalog, parse_catalog

EXAMPLE = Path(__file__).parents[2] / "catalog.example.yaml"

MINIMAL = """\
platform_team: platform
teams:
  - name: platform
    channel: C0PLAT
    members: [U0PLAT]
"""


def test_example_catalog_is_valid() -> None:
    catalog = load_catalog(EXAMPLE)
    assert catalog.platform_team == "platform"
    assert catalog.environment("prod") is not None
    prod = catalog.environment("prod")
    assert prod is not None and prod.tier is Tier.PROD
    assert prod.policy.allow_latest is False, "prod never allows :latest"
    assert catalog.template("web-preview") is not None
    assert "dev-cluster" in catalog.clusters()


@pytest.mark.parametrize(
    ("extra", "line", "fragment"),
    [
        ("    channel_typo: x\n", 6, "unknown field"),
        ("  - name: Payments\n    channel: C0PAY\n    members: [U1X]\n", 6, "DNS-1123"),
        ("  - name: payments\n    channel: payments-room\n    members: [U1X]\n", 7, "channel ID"),
        (
            "  - name: payments\n    channel: C0PAY\n    members: [alice]\n",
            8,
            "not a Slack user ID",
        ),
        ("  - name: payments\n    channel: C0PAY\n", 6, "needs members"),
    ],
)
def test_errors_point_at_the_line(extra: str, line: int, fragment: str) -> None:
    with pytest.raises(CatalogError) as info:
        parse_catalog(MINIMAL + extra, "catalog.yaml")
    problem = info.value.problems[0]
    assert problem.startswith(f"catalog.yaml:{line}:"), problem
    assert fragment in problem


def test_references_are_checked() -> None:
    text = MINIMAL + "services:\n  - name: api\n    team: ghosts\n    image: r.example.com/api\n"
    with pytest.raises(CatalogError, match="team “ghosts” is not defined"):
        parse_catalog(text)


def test_yaml_syntax_error_has_a_line() -> None:
    with pytest.raises(CatalogError) as info:
        parse_catalog(MINIMAL + "services: [\n", "c.yaml")
    assert info.value.problems[0].startswith("c.yaml:")
    assert "YAML syntax" in info.value.problems[0]


def test_ttl_bounds_and_durations() -> None:
    text = MINIMAL + (
        "templates:\n  - name: t\n    description: d\n    cluster: c\n    sizes: {S: {cpu: 1, memory_gib: 1}}\n"
        "    default_ttl: 10d\n    max_ttl: 3d\n"
    )
    with pytest.raises(CatalogError, match="default_ttl is longer than max_ttl"):
        parse_catalog(text)
    with pytest.raises(CatalogError, match="not a duration"):
        parse_catalog(text.replace("10d", "ten days"))


def test_config_check_cli(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["config", "check", "--catalog", str(EXAMPLE)]) == 0
    assert "OK" in capsys.readouterr().out
    broken = tmp_path / "broken.yaml"
    broken.write_text(MINIMAL + "  - name: x\n    channel: nope\n    members: [U1]\n")
    with pytest.raises(SystemExit) as exit_info:
        main(["config", "check", "--catalog", str(broken)])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert f"{broken}:7:" in err and "channel ID" in err


def test_config_check_reports_every_problem_in_one_run_at_its_line() -> None:
    text = (Path(__file__).parents[2] / "catalog.example.yaml").read_text()
    lines = text.splitlines()

    def line_of(fragment: str, after: int = 0) -> int:
        return next(i for i, line in enumerate(lines, 1) if i > after and fragment in line)

    broken = (
        text.replace("  - team: search\n    monthly: 2000", "  - team: serch\n    monthly: 2000")
        .replace("Mon-Fri", "Mon-Fry", 1)
        .replace('end: "2027-01-02T00:00"', 'end: "2026-12-02T00:00"')
        .replace("    monthly: 5000", "    monthly: lots")
    )
    with pytest.raises(CatalogError) as raised:
        parse_catalog(broken, "catalog.yaml")
    problems = raised.value.problems
    assert len(problems) == 4, problems
    budgets = line_of("budgets:")
    assert f"catalog.yaml:{line_of('monthly: 5000', budgets)}: budgets.0.monthly" in problems[-2]
    assert problems[-1] == (
        f"catalog.yaml:{line_of('- team: search', budgets)}: budgets.1.team: "
        "budget: team “serch” is not defined"
    )
    assert any(
        p.startswith(f"catalog.yaml:{line_of('Mon-Fri')}: templates.0.offhours") and "“Fry”" in p
        for p in problems
    )
    window_end = line_of('end: "2027-01-02')
    assert any(
        p.startswith(f"catalog.yaml:{window_end}:")
        and "ends (2026-12-02T00:00) before it starts" in p
        for p in problems
    )
