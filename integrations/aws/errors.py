"""AWS failures as domain errors whose message a person can act on.

Every boto3 call goes through `translate`, so services never see botocore exceptions and
Slack never shows a stack trace. Each class keeps the AWS error code for logs.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from core.errors import (
    Conflict,
    DependencyUnavailable,
    ForgebotError,
    NotAuthorized,
    NotFound,
    UserInputError,
)
from core.lazy_import import lazy_module

if TYPE_CHECKING:
    from botocore import exceptions as botocore_exceptions
else:
    # botocore loads with the first AWS client, not at start-up.
    botocore_exceptions = lazy_module("botocore.exceptions")

SERVICE_NAMES = {
    "ce": "Cost Explorer",
    "ec2": "EC2",
    "rds": "RDS",
    "autoscaling": "EC2 Auto Scaling",
}

# botocore's own standard-mode throttling codes; `LimitExceededException` is how Cost
# Explorer says "too many calls", so it belongs here too.
THROTTLING_CODES = frozenset(
    {
        "Throttling",
        "ThrottlingException",
        "ThrottledException",
        "RequestThrottledException",
        "TooManyRequestsException",
        "RequestLimitExceeded",
        "LimitExceededException",
        "RequestThrottled",
        "EC2ThrottledException",
        "SlowDown",
    }
)
ACCESS_DENIED_CODES = frozenset({"AccessDeniedException", "AccessDenied", "UnauthorizedOperation"})
REJECTED_CREDENTIAL_CODES = frozenset(
    {
        "UnrecognizedClientException",
        "InvalidClientTokenId",
        "AuthFailure",
        "SignatureDoesNotMatch",
        "ExpiredToken",
        "ExpiredTokenException",
        "InvalidAccessKeyId",
    }
)
NOT_FOUND_CODES = frozenset(
    {
        "InvalidInstanceID.NotFound",
        "InvalidInstanceID.Malformed",
        "DBInstanceNotFound",
        "DBInstanceNotFoundFault",
        "ResourceNotFoundException",
    }
)
STATE_CONFLICT_CODES = frozenset(
    {
        "IncorrectInstanceState",
        "IncorrectState",
        "UnsupportedOperation",
        "InvalidDBInstanceState",
        "InvalidDBInstanceStateFault",
        "InvalidDBClusterStateFault",
        "ScalingActivityInProgress",
        "ResourceInUse",
    }
)


@dataclass(frozen=True)
class AwsCall:
    """Which API a failure came from: decides the wording (service name, IAM action)."""

    service: str
    operation: str

    @property
    def service_name(self) -> str:
        return SERVICE_NAMES.get(self.service, self.service)

    @property
    def iam_action(self) -> str:
        return f"{self.service}:{self.operation}"


class AwsErrorMixin:
    """The AWS error code behind a domain error (for logs; never needed to explain it)."""

    code: str | None = None


class AwsCredentialsMissing(AwsErrorMixin, DependencyUnavailable):
    def __init__(self) -> None:
        super().__init__("AWS credentials are not configured")


class AwsCredentialsRejected(AwsErrorMixin, DependencyUnavailable):
    def __init__(self, code: str) -> None:
        super().__init__(f"AWS rejected the bot's credentials ({code}); they may have expired")
        self.code = code


class AwsAccessDenied(AwsErrorMixin, NotAuthorized):
    def __init__(self, action: str, code: str) -> None:
        super().__init__(f"the bot's IAM role may not call {action}")
        self.action = action
        self.code = code


class AwsThrottled(AwsErrorMixin, DependencyUnavailable):
    def __init__(self, service_name: str, code: str) -> None:
        super().__init__(f"{service_name} is throttling; try again in a minute")
        self.code = code


class AwsUnavailable(AwsErrorMixin, DependencyUnavailable):
    """AWS could not be asked or did not answer properly; nothing the user did."""


class AwsServerError(AwsUnavailable):
    """AWS answered with a 5xx after every retry."""

    def __init__(self, service_name: str, status: int, code: str) -> None:
        super().__init__(f"{service_name} is unavailable (HTTP {status}); try again later")
        self.status = status
        self.code = code


class AwsUnreachable(AwsUnavailable):
    """No answer at all: connection refused, timed out or dropped."""

    def __init__(self, service_name: str, reason: str) -> None:
        super().__init__(f"{service_name} is unreachable ({reason}); try again later")


class CostDataUnavailable(AwsErrorMixin, DependencyUnavailable):
    def __init__(self, code: str = "DataUnavailableException") -> None:
        super().__init__("Cost Explorer has no data yet (is it enabled for this account?)")
        self.code = code


class BillExpired(AwsErrorMixin, UserInputError):
    def __init__(self) -> None:
        super().__init__(
            "Cost Explorer no longer has the bill for that period; "
            "choose a more recent one (it keeps 13 months by default)"
        )
        self.code = "BillExpirationException"


class TagNotActivated(AwsErrorMixin, UserInputError):
    def __init__(self, tag_key: str) -> None:
        super().__init__(
            f"tag {tag_key} is not activated for cost allocation",
            usage=(
                "Activate it under Billing and Cost Management → Cost allocation tags; "
                "costs carry it from about a day after activation."
            ),
        )
        self.tag_key = tag_key


class AwsRequestRejected(AwsErrorMixin, ForgebotError):
    """AWS refused the request as malformed: a bug or an input AWS does not accept."""

    def __init__(self, service_name: str, code: str, message: str) -> None:
        super().__init__(f"{service_name} rejected the request: {message or code}")
        self.code = code


class AwsResourceNotFound(AwsErrorMixin, NotFound):
    def __init__(self, service_name: str, code: str, message: str) -> None:
        super().__init__(f"{service_name}: {message or code}")
        self.code = code


class AwsResourceBusy(AwsErrorMixin, Conflict):
    """The resource is in a state the action cannot start from (stopping, modifying...)."""

    def __init__(self, message: str, code: str | None = None) -> None:
        super().__init__(message)
        self.code = code


def translate(
    exc: botocore_exceptions.BotoCoreError | botocore_exceptions.ClientError, call: AwsCall
) -> ForgebotError:
    """The domain error for a botocore failure."""
    if isinstance(
        exc,
        botocore_exceptions.NoCredentialsError
        | botocore_exceptions.PartialCredentialsError
        | botocore_exceptions.CredentialRetrievalError,
    ):
        return AwsCredentialsMissing()
    if isinstance(exc, botocore_exceptions.NoRegionError):
        return AwsRequestRejected(call.service_name, "NoRegion", "no AWS region is configured")
    if isinstance(exc, botocore_exceptions.ClientError):
        return _from_client_error(exc, call)
    if isinstance(exc, botocore_exceptions.ParamValidationError):
        # botocore refused to send it: the request forgebot built does not fit the API.
        return AwsRequestRejected(call.service_name, "ParamValidation", str(exc))
    if isinstance(exc, botocore_exceptions.ConnectionError | botocore_exceptions.HTTPClientError):
        return AwsUnreachable(call.service_name, _connection_reason(exc))
    return AwsUnreachable(call.service_name, type(exc).__name__)


def _from_client_error(exc: botocore_exceptions.ClientError, call: AwsCall) -> ForgebotError:
    error = exc.response.get("Error", {})
    code = str(error.get("Code", "Unknown"))
    message = str(error.get("Message", ""))
    status = int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0))
    if code in THROTTLING_CODES or status == 429:
        return AwsThrottled(call.service_name, code)
    if code in ACCESS_DENIED_CODES:
        return AwsAccessDenied(call.iam_action, code)
    if code in REJECTED_CREDENTIAL_CODES:
        return AwsCredentialsRejected(code)
    if code == "DataUnavailableException":
        return CostDataUnavailable(code)
    if code == "BillExpirationException":
        return BillExpired()
    if code in NOT_FOUND_CODES:
        return AwsResourceNotFound(call.service_name, code, message)
    if code in STATE_CONFLICT_CODES:
        return AwsResourceBusy(f"{call.service_name}: {message or code}", code)
    if status >= 500:
        return AwsServerError(call.service_name, status, code)
    return AwsRequestRejected(call.service_name, code, message)


def _connection_reason(exc: Exception) -> str:
    name = type(exc).__name__
    if "Timeout" in name:
        return "timed out"
    if name == "ConnectionClosedError":
        return "connection dropped"
    return "connection failed"


class AwsUnexpectedResponse(AwsUnavailable):
    """AWS answered something forgebot cannot use safely (so it shows no figure at all)."""
