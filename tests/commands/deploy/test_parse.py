from __future__ import annotations

import pytest

from commands.deploy.parse import (
    RollbackRequest,
    parse_deploy,
    parse_freeze,
    parse_rollback,
    parse_version,
)
from core.errors import UserInputError

DIGEST = "sha256:" + "a" * 64


@pytest.mark.parametrize("text", ["1.4.2", "v1", "_x", "A" * 128, "1.4.2-rc.1", "latest", DIGEST])
def test_valid_versions(text: str) -> None:
    assert parse_version(text).text == text


@pytest.mark.parametrize(
    ("text", "hint"),
    [
        (".1", "not a valid image tag"),
        ("-x", "not a valid image tag"),
        ("A" * 129, "not a valid image tag"),
        ("sha256:abc", "64 lowercase hex"),
        ("sha256:" + "A" * 64, "64 lowercase hex"),
        ("evil.io/app:1", "image reference"),
        ("app@sha256:" + "a" * 64, "image reference"),
        ("1.0;rm", "not a valid"),
    ],
)
def test_invalid_versions(text: str, hint: str) -> None:
    with pytest.raises(UserInputError, match=hint):
        parse_version(text)


def test_image_comes_from_the_catalog_repository() -> None:
    assert (
        parse_version("1.2").image("registry.example.com/p/app") == "registry.example.com/p/app:1.2"
    )
    assert parse_version(DIGEST).image("r.example.com/app") == f"r.example.com/app@{DIGEST}"


def test_deploy_commands() -> None:
    request = parse_deploy("Checkout 1.4.2 to Staging")
    assert (request.service, request.version.text, request.environment, request.hotfix) == (
        "checkout",
        "1.4.2",
        "staging",
        False,
    )
    assert parse_deploy("checkout 1.4.3 to prod hotfix").hotfix
    for bad in (
        "",
        "checkout",
        "checkout 1.4.2 staging",
        "checkout 1.4.2 into prod",
        "check_out 1 to prod",
    ):
        with pytest.raises(UserInputError):
            parse_deploy(bad)


def test_rollback_and_freeze_commands() -> None:
    assert parse_rollback("checkout prod").revision is None
    assert parse_rollback("checkout prod to 7").revision == 7
    # People type versions: `to 1.4.1` is the newest revision that ran it.
    assert parse_rollback("checkout prod to 1.4.1") == RollbackRequest(
        "checkout", "prod", None, "1.4.1"
    )
    for bad in ("checkout prod to -seven", "checkout prod to sha256:abc"):
        with pytest.raises(UserInputError, match="not a revision number or a version"):
            parse_rollback(bad)
    freeze = parse_freeze("prod for 2h incident 4411 in progress")
    assert freeze.duration is not None and freeze.duration.total_seconds() == 7200
    assert freeze.reason == "incident 4411 in progress"
    assert parse_freeze("prod release week").duration is None
    with pytest.raises(UserInputError, match="needs a reason"):
        parse_freeze("prod for 2h")
