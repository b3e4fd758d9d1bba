"""The fault suite's shared parts: one PostgreSQL database made for it (reached through a
loopback TCP proxy the cases cut and restore), the session's fake Slack and fake Kubernetes API
server, and a chain of real bot processes: a case kills the current bot and the bot it starts
to recover becomes the next case's, so every case costs one process start."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import pytest

from integrations.sandbox.kube_api import RunningFakeKube
from integrations.sandbox.slack_api import RunningFakeSlack
from tests.faults.fleet import IMAGE, Fleet, Flows, Ledger, empty_database, fresh_database
from tests.faults.scenarios import Stage
from tests.fixtures import requirements
from tests.fixtures.databases import _pg_reachable
from tests.tcp_proxy import TcpProxy


@pytest.fixture(scope="session")
def faults_database() -> Iterator[str]:
    problem = _pg_reachable()
    if problem is not None:
        requirements.missing(f"PostgreSQL for the fault suite ({problem})")
    with fresh_database() as url:
        yield url


@pytest.fixture(scope="module")
async def stage(
    faults_database: str,
    fake_slack_server: RunningFakeSlack,
    fake_kube_server: RunningFakeKube,
    tmp_path_factory: pytest.TempPathFactory,
) -> AsyncIterator[Stage]:
    """A module's bots: started lazily (`stage.boot()`), killed at the end."""
    empty_database(faults_database)
    kube = fake_kube_server.state
    kube.reset()
    fake_slack_server.reset()
    kube.seed_deployment("checkout-staging", "checkout", f"{IMAGE}:1.4.1", replicas=3)
    kube.seed_deployment("checkout", "checkout", f"{IMAGE}:1.4.1", replicas=3)
    tmp = tmp_path_factory.mktemp("faults")
    kubeconfig = fake_kube_server.write_kubeconfig(
        tmp / "kubeconfig", ["dev-cluster", "prod-cluster"]
    )
    proxy = TcpProxy("127.0.0.1", 5432)
    await proxy.start()
    through_proxy = faults_database.replace("127.0.0.1:5432", f"127.0.0.1:{proxy.port}")
    fleet = Fleet(tmp, through_proxy, fake_slack_server.api_url, kubeconfig)
    flows = Flows(fake_slack_server)
    running = Stage(fleet, proxy, flows, Ledger(faults_database, kube, fake_slack_server))
    yield running
    await flows.close()
    fleet.stop_all()
    kube.after_write = None
    await proxy.cut()
    fake_slack_server.assert_no_violations()


@pytest.fixture
def logs_on_failure(stage: Stage) -> Iterator[None]:
    """The bots' last log lines, shown by pytest when the case fails."""
    yield
    for bot in stage.fleet.bots[-3:]:
        print(f"--- {bot.name} (exit {bot.process.returncode})\n{bot.tail()}")
