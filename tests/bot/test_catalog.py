from __future__ import annotations

from pathlib import Path

import pytest

from bot.catalog import CatalogError, Tier, load_catalog, parse_catalog
from bot.cli import main

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
