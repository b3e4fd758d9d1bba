"""Real components for the tests: databases, Prometheus, moto, the fake Kubernetes API, the fake
Slack Web API and a signed-request client. Each lives in tests/fixtures/ and is loaded here."""

pytest_plugins = [
    "tests.fixtures.databases",
    "tests.fixtures.kube",
    "tests.fixtures.slack",
    "tests.fixtures.prometheus",
    "tests.fixtures.aws",
]
