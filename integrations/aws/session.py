"""One boto3 session, its clients, and the bounded thread pool their blocking calls run in.

boto3 finds credentials through the standard chain (environment, shared files, SSO, web
identity, container and instance roles) and, since botocore 1.31, honours `AWS_ENDPOINT_URL`
and `AWS_ENDPOINT_URL_<SERVICE>` by itself; an explicit `endpoint_url` wins over both.
"""

from __future__ import annotations

import asyncio
import logging
import os
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal, TypeVar

from core.lazy_import import lazy_module
from core.metrics import observe_call
from integrations.aws.errors import AwsCall, translate

if TYPE_CHECKING:
    import boto3
    import botocore.config
    from botocore import exceptions as botocore_exceptions
    from mypy_boto3_autoscaling import AutoScalingClient
    from mypy_boto3_ce import CostExplorerClient
    from mypy_boto3_ec2 import EC2Client
    from mypy_boto3_rds import RDSClient

    from core.config import Settings
else:
    # The AWS SDK loads with the first client (after readiness), not at start-up.
    boto3 = lazy_module("boto3")
    botocore_exceptions = lazy_module("botocore.exceptions")

log = logging.getLogger(__name__)

T = TypeVar("T")

# Cost Explorer has a single endpoint per partition; in the commercial one it is us-east-1.
COST_EXPLORER_REGION = "us-east-1"


@dataclass(frozen=True)
class AwsConfig:
    region: str = "us-east-1"
    cost_explorer_region: str = COST_EXPLORER_REGION
    endpoint_url: str | None = None
    retry_mode: Literal["standard", "adaptive"] = "standard"
    max_attempts: int = 4
    """Attempts in all, the first one included (botocore's `total_max_attempts`)."""
    connect_timeout: float = 3.0
    read_timeout: float = 30.0
    concurrency: int = 8

    @classmethod
    def from_settings(cls, settings: Settings) -> AwsConfig:
        # boto3 reads AWS_ENDPOINT_URL from the process environment itself, and lets the
        # per-service variables override it; only a value that came from `.env` is passed on.
        from_env_file = "AWS_ENDPOINT_URL" not in os.environ
        return cls(
            region=settings.aws_region,
            endpoint_url=settings.aws_endpoint_url if from_env_file else None,
        )

    def botocore_config(self, *, max_attempts: int | None = None) -> botocore.config.Config:
        import botocore.config

        return botocore.config.Config(
            retries={
                "mode": self.retry_mode,
                "total_max_attempts": max_attempts or self.max_attempts,
            },
            connect_timeout=self.connect_timeout,
            read_timeout=self.read_timeout,
        )


class AwsClients:
    """Clients are made lazily in a worker thread: resolving credentials may do network I/O
    (SSO, STS, the instance metadata service) that must never block the event loop."""

    def __init__(self, config: AwsConfig, *, session: boto3.session.Session | None = None) -> None:
        self.config = config
        self._session = session
        self._clients: dict[tuple[str, str, int], Any] = {}
        # boto3 sessions are not thread-safe while creating clients; the clients themselves are.
        self._create_lock = threading.Lock()
        self._count_lock = threading.Lock()
        self._semaphore = asyncio.Semaphore(config.concurrency)
        self._http_requests = 0

    @property
    def http_requests(self) -> int:
        """HTTP requests sent to AWS so far, retries included."""
        with self._count_lock:
            return self._http_requests

    def cost_explorer(self) -> CostExplorerClient:
        client: CostExplorerClient = self._client("ce", self.config.cost_explorer_region)
        return client

    def cost_explorer_single_attempt(self) -> CostExplorerClient:
        """For optional look-ups whose failure only means "don't know": no retry delays."""
        client: CostExplorerClient = self._client(
            "ce", self.config.cost_explorer_region, max_attempts=1
        )
        return client

    def ec2(self) -> EC2Client:
        client: EC2Client = self._client("ec2", self.config.region)
        return client

    def rds(self) -> RDSClient:
        client: RDSClient = self._client("rds", self.config.region)
        return client

    def autoscaling(self) -> AutoScalingClient:
        client: AutoScalingClient = self._client("autoscaling", self.config.region)
        return client

    async def run(self, call: AwsCall, fn: Callable[[], T]) -> T:
        """Run a blocking boto3 call in a worker thread, at most `concurrency` at a time, and
        turn its failure into a domain error."""
        # The domain error is raised inside the timing, so the metric's outcome names it.
        with observe_call("aws", f"{call.service}.{call.operation}"):
            try:
                async with self._semaphore:
                    return await asyncio.to_thread(fn)
            except (botocore_exceptions.BotoCoreError, botocore_exceptions.ClientError) as exc:
                # Anything else is a bug in forgebot and propagates as one.
                error = translate(exc, call)
                log.warning(
                    "AWS %s.%s failed: %s -> %s (%s)",
                    call.service,
                    call.operation,
                    type(exc).__name__,
                    type(error).__name__,
                    getattr(error, "code", None) or "no code",
                )
                raise error from exc

    def _client(self, service: str, region: str, *, max_attempts: int | None = None) -> Any:
        attempts = max_attempts or self.config.max_attempts
        key = (service, region, attempts)
        with self._create_lock:
            client = self._clients.get(key)
            if client is None:
                if self._session is None:
                    self._session = boto3.session.Session()
                client = self._session.client(
                    service,  # type: ignore[call-overload]
                    region_name=region,
                    endpoint_url=self.config.endpoint_url,
                    config=self.config.botocore_config(max_attempts=attempts),
                )
                client.meta.events.register("before-send", self._count_request)
                self._clients[key] = client
            return client

    def _count_request(self, **_: Any) -> None:
        # Returning None lets botocore send the request; this only counts it.
        with self._count_lock:
            self._http_requests += 1
