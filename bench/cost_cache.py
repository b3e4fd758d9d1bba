"""The Cost Explorer cache under load: 200 `/forge cost` commands from 20 users over 10 teams.

Runs `forgebot serve` in its own process, as `bench/ack_latency.py` does (SQLite, the fake
Slack Web API, boto3 against moto in server mode, also in its own process, with Cost Explorer
results seeded through moto's configuration API) and sends signed slash commands as Slack would: each of the 20
users sends 10 commands, one after another, all users at once, asking for the cost of
different teams this month. Then the same again with the cache warm. Prints the Cost Explorer
requests sent (and what they cost: USD 0.01 each) against one per command, the ack latency
(HTTP answer to the slash command) and the time until the answer reached the response_url.

With `--forecast cost-explorer` (the production default) the bot also asks GetCostForecast,
which moto cannot answer (HTTP 500): this shows the call budget where Cost Explorer cannot
forecast, the case that used to cost an extra 14-day query per team. The stated budget
(commands/cost/service.py) is, per cache TTL: one report per scope and period, plus one
forecast per scope and month (or, where the endpoint cannot forecast, one failed attempt for
every scope per 15 minutes): for 10 teams in an hour at most 10 + 10 = 20 billed requests.

    uv run python bench/cost_cache.py [--users 20] [--teams 10] [--per-user 10]
        [--forecast cost-explorer|linear]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import aiohttp

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.processes import bot_environment, free_port, start_forgebot  # noqa: E402
from bench.provenance import print_header  # noqa: E402
from commands.cost.parse import Scope, ScopeKind  # noqa: E402
from commands.cost.periods import Period  # noqa: E402
from commands.cost.service import cost_query  # noqa: E402
from core.catalog import parse_catalog  # noqa: E402
from integrations.sandbox.aws_seed import (  # noqa: E402
    EC2_COMPUTE,
    RDS,
    S3,
    DemoCostModel,
    queue_cost_and_usage_results,
)
from integrations.sandbox.slack_api import RunningFakeSlack, start_fake_slack  # noqa: E402
from integrations.sandbox.slack_payloads import (  # noqa: E402
    SignedSlackClient,
    SlackIdentity,
    slash_command,
)

SECRET = "bench-signing-secret-0123456789abcdef"
TOKEN = "xoxb-bench-token"
PRICE_PER_REQUEST = Decimal("0.01")


def catalog_text(teams: int, users: int) -> str:
    lines = ["platform_team: team-0", "teams:"]
    for t in range(teams):
        members = [f"U0DEV{u:03d}" for u in range(users) if u % teams == t]
        lines += [
            f"  - name: team-{t}",
            f"    channel: C0TEAM{t}",
            f"    members: [{', '.join(members) or 'U0NOBODY'}]",
        ]
    lines.append("budgets:")
    lines += [f"  - {{team: team-{t}, monthly: 5000}}" for t in range(teams)]
    return "\n".join(lines) + "\n"


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(share * (len(ordered) - 1)))]


async def one_round(
    client: SignedSlackClient, slack: RunningFakeSlack, users: int, teams: int, per_user: int
) -> tuple[list[float], list[float], int]:
    """Every user sends `per_user` commands in turn. Returns the ack latencies, the answer
    latencies (ms) and how many answers came in the ack itself (from memory) rather than to
    the response_url afterwards."""
    acks: list[float] = []
    answers: list[float] = []
    sent_at: dict[str, float] = {}

    async def user(u: int) -> None:
        who = SlackIdentity(
            user_id=f"U0DEV{u:03d}", user_name=f"dev{u}", channel_id=f"C0TEAM{u % teams}"
        )
        for k in range(per_user):
            url = slack.new_response_url()
            body = slash_command(who, "/forge", f"cost team team-{(u + k) % teams}", url)
            started = time.monotonic()
            response = await client.send(body)
            elapsed = (time.monotonic() - started) * 1000
            assert response.status == 200, response.status
            acks.append(elapsed)
            if response.body and (response.json() or {}).get("blocks"):
                answers.append(elapsed)
            else:
                sent_at[url.rsplit("/", 1)[-1]] = started

    before = len(slack.state.find("response_url"))
    await asyncio.gather(*(user(u) for u in range(users)))
    in_ack = len(answers)
    if sent_at:
        calls = await slack.until_call("response_url", count=before + len(sent_at), timeout=60)
        answers += [(c.at - sent_at[c.target]) * 1000 for c in calls if c.target in sent_at]
    return acks, answers, in_ack


def report(name: str, acks: list[float], answers: list[float], in_ack: int) -> None:
    print(
        f"{name}, as the load generator saw it: ack p50 {statistics.median(acks):.1f} ms, "
        f"p99 {percentile(acks, 0.99):.1f} ms (target p99 < 100 ms); answer p50 "
        f"{statistics.median(answers):.1f} ms, p99 {percentile(answers, 0.99):.1f} ms; "
        f"{in_ack} of {len(answers)} answered in the ack itself"
    )


async def scrape(session: aiohttp.ClientSession, url: str) -> str:
    async with session.get(url + "/metrics") as response:
        return await response.text()


def handled(metrics: str) -> int:
    """`/forge cost` commands the bot has finished (its handler histogram's count)."""
    for line in metrics.splitlines():
        if line.startswith("forgebot_handler_seconds_count") and 'command="cost"' in line:
            return int(float(line.rsplit(" ", 1)[1]))
    return 0


async def settled(session: aiohttp.ClientSession, url: str, expected: int) -> str:
    """/metrics once the bot has finished `expected` commands (a handler finishes just after
    its answer reaches Slack)."""
    deadline = time.monotonic() + 30
    while True:
        metrics = await scrape(session, url)
        if handled(metrics) >= expected or time.monotonic() > deadline:
            return metrics
        await asyncio.sleep(0.05)


BILLED = ("ce.GetCostAndUsage", "ce.GetCostForecast", "ce.ListCostAllocationTags")


def ce_calls(metrics: str) -> dict[str, int]:
    """Billed Cost Explorer calls the bot made, by operation, from its own /metrics (each
    call once, whatever botocore's retries)."""
    found = dict.fromkeys(BILLED, 0)
    for line in metrics.splitlines():
        if not line.startswith("forgebot_dependency_seconds_count"):
            continue
        for operation in BILLED:
            if operation in line:
                found[operation] += int(float(line.rsplit(" ", 1)[1]))
    return found


def ce_requests(metrics: str) -> int:
    return sum(ce_calls(metrics).values())


def calls_text(metrics: str) -> str:
    return ", ".join(f"{op.removeprefix('ce.')} {n}" for op, n in ce_calls(metrics).items())


def buckets(metrics: str, name: str, label: str) -> dict[float, float]:
    """Cumulative histogram buckets (upper bound -> count) of one labelled series."""
    found: dict[float, float] = {}
    for line in metrics.splitlines():
        if line.startswith(f"{name}_bucket{{") and label in line:
            bound = line.split('le="', 1)[1].split('"', 1)[0]
            found[float("inf") if bound == "+Inf" else float(bound)] = float(line.rsplit(" ", 1)[1])
    return found


def server_quantile(before: str, after: str, name: str, label: str, q: float) -> float:
    """The bot's own view of a latency quantile over one round (ms), interpolated within
    histogram buckets as Prometheus' histogram_quantile does."""
    start, end = buckets(before, name, label), buckets(after, name, label)
    counts = sorted((bound, end[bound] - start.get(bound, 0.0)) for bound in end)
    total = counts[-1][1]
    rank, lower, below = q * total, 0.0, 0.0
    for bound, cumulative in counts:
        if cumulative >= rank:
            if bound == float("inf"):
                return lower * 1000
            share = (rank - below) / (cumulative - below) if cumulative > below else 1.0
            return (lower + (bound - lower) * share) * 1000
        lower, below = bound, cumulative
    return float("nan")


def report_server(before: str, after: str) -> None:
    ack = 'kind="command"'
    handler = 'command="cost"'
    print(
        f"  as the bot measured it: ack p50 "
        f"{server_quantile(before, after, 'forgebot_ack_seconds', ack, 0.5):.1f} ms, p99 "
        f"{server_quantile(before, after, 'forgebot_ack_seconds', ack, 0.99):.1f} ms; "
        f"command answered p50 "
        f"{server_quantile(before, after, 'forgebot_handler_seconds', handler, 0.5):.1f} ms, p99 "
        f"{server_quantile(before, after, 'forgebot_handler_seconds', handler, 0.99):.1f} ms"
    )


async def wait_http(url: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    async with aiohttp.ClientSession() as session:
        while time.monotonic() < deadline:
            try:
                async with session.get(url) as response:
                    if response.status < 500:
                        return
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.05)
    raise RuntimeError(f"{url} did not answer")


async def wait_ready(session: aiohttp.ClientSession, url: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            async with session.get(url + "/readyz") as response:
                if response.status == 200:
                    return
        except aiohttp.ClientError:
            pass
        await asyncio.sleep(0.05)
    raise RuntimeError("forgebot serve did not become ready")


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--users", type=int, default=20)
    parser.add_argument("--teams", type=int, default=10)
    parser.add_argument("--per-user", type=int, default=10)
    parser.add_argument("--profile", default=None, help="write the server's cProfile stats here")
    parser.add_argument("--forecast", choices=["cost-explorer", "linear"], default="cost-explorer")
    args = parser.parse_args()
    print_header("cost_cache")

    catalog_yaml = catalog_text(args.teams, args.users)
    catalog = parse_catalog(catalog_yaml)
    slack = start_fake_slack(TOKEN)
    # moto in a process of its own, like the bot: the load generator's figures stay its own.
    moto_port = free_port()
    moto = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(moto_port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    moto_url = f"http://127.0.0.1:{moto_port}"
    today = datetime.now(UTC).date()
    # Every team spends the same, so whichever queued answer moto hands to whichever team's
    # first request (they race), the figures are right.
    spend = {
        f"team-{t}": {EC2_COMPUTE: Decimal("92.40"), RDS: Decimal("48.10"), S3: Decimal("6.25")}
        for t in range(args.teams)
    }
    model = DemoCostModel(today=today, daily_spend=spend)
    queries = [
        cost_query(Scope(ScopeKind.TEAM, f"team-{t}"), Period.THIS_MONTH, today, catalog)
        for t in range(args.teams)
    ]
    await wait_http(moto_url + "/moto-api/")
    queue_cost_and_usage_results(moto_url, [model.respond(q) for q in queries])
    workdir = Path(tempfile.mkdtemp(prefix="forgebot-bench-"))
    (workdir / "catalog.yaml").write_text(catalog_yaml)
    port = free_port()
    env = bot_environment(
        token=TOKEN,
        secret=SECRET,
        slack_api_url=slack.api_url,
        database=workdir / "bench.db",
        catalog=workdir / "catalog.yaml",
        inherit={k: v for k, v in os.environ.items() if not k.startswith("AWS_")},
        FORGEBOT_COST_FORECAST=args.forecast,
        AWS_ENDPOINT_URL=moto_url,
        AWS_ACCESS_KEY_ID="testing",
        AWS_SECRET_ACCESS_KEY="testing",
        AWS_DEFAULT_REGION="us-east-1",
        AWS_EC2_METADATA_DISABLED="true",
        AWS_CONFIG_FILE=str(workdir / "no-aws-config"),
        AWS_SHARED_CREDENTIALS_FILE=str(workdir / "no-aws-credentials"),
    )
    profile = ["-m", "cProfile", "-o", args.profile] if args.profile else []
    server = start_forgebot(env, port, python_args=profile)
    url = f"http://127.0.0.1:{port}"
    client = SignedSlackClient(url, SECRET)
    try:
        async with aiohttp.ClientSession() as session:
            await wait_ready(session, url)
            total = args.users * args.per_user
            start = await scrape(session, url)
            acks, answers, in_ack = await one_round(
                client, slack, args.users, args.teams, args.per_user
            )
            cold = await settled(session, url, total)
            requests = ce_requests(cold)
            budget = 2 * args.teams if args.forecast == "cost-explorer" else args.teams
            print(
                f"{total} /forge cost commands from {args.users} users over {args.teams} teams "
                f"(forecast: {args.forecast}): {requests} billed Cost Explorer requests "
                f"({calls_text(cold)}; stated budget <= {budget}); "
                f"${requests * PRICE_PER_REQUEST} spent, ${(total - requests) * PRICE_PER_REQUEST} "
                "avoided against one request per command"
            )
            report("cold cache (includes the misses)", acks, answers, in_ack)
            report_server(start, cold)
            acks, answers, in_ack = await one_round(
                client, slack, args.users, args.teams, args.per_user
            )
            warm = await settled(session, url, 2 * total)
            report("warm cache (all from cache)", acks, answers, in_ack)
            report_server(cold, warm)
            requests = ce_requests(warm)
            print(
                f"after {2 * total} commands: {requests} billed Cost Explorer requests "
                f"({calls_text(warm)}), ${(2 * total - requests) * PRICE_PER_REQUEST} avoided"
            )
    finally:
        await client.close()
        server.terminate()
        server.wait(timeout=20)
        slack.stop()
        moto.terminate()
        moto.wait(timeout=20)
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    asyncio.run(main())
