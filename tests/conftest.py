"""Real components for the tests: databases, Prometheus, moto, the fake Kubernetes API, the fake
Slack Web API and a signed-request client. Each lives in tests/fixtures/ and is loaded here."""

import pytest

pytest_plugins = [
    "tests.fixtures.databases",
    "tests.fixtures.kube",
    "tests.fixtures.real_kube",
    "tests.fixtures.kube_contract",
    "tests.fixtures.slack",
    "tests.fixtures.prometheus",
    "tests.fixtures.aws",
    "tests.fixtures.git_server",
]


@pytest.fixture(autouse=True)
def _no_real_aws(monkeypatch: pytest.MonkeyPatch, tmp_path_factory: pytest.TempPathFactory) -> None:
    """No test reaches real AWS: the bot builds a Cost Explorer client from the standard
    credential chain, which would otherwise find a developer's profile or an instance role.
    Tests that want AWS use moto or the Cost Explorer stub (tests/fixtures/aws.py)."""
    empty = tmp_path_factory.mktemp("no-aws") / "empty"
    empty.write_text("")
    for name in (
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
        "AWS_SESSION_TOKEN",
        "AWS_PROFILE",
        "AWS_ENDPOINT_URL",
        "AWS_ROLE_ARN",
        "AWS_WEB_IDENTITY_TOKEN_FILE",
        "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
        "AWS_CONTAINER_CREDENTIALS_FULL_URI",
    ):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(empty))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(empty))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
