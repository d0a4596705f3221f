"""The exceptions a caller can catch. Every one derives from ZaeLimiterError."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any


class ZaeLimiterError(Exception):
    """Base class of every error zae-limiter raises on purpose."""


class ValidationError(ZaeLimiterError, ValueError):
    """Bad input: `field` names what was wrong. Nothing was written."""

    def __init__(self, field: str, message: str) -> None:
        self.field = field
        super().__init__(f"{field}: {message}")


class EntityNotFoundError(ZaeLimiterError, LookupError):
    def __init__(self, entity_id: str) -> None:
        self.entity_id = entity_id
        super().__init__(f"entity {entity_id!r} does not exist")


class EntityExistsError(ZaeLimiterError):
    def __init__(self, entity_id: str) -> None:
        self.entity_id = entity_id
        super().__init__(f"entity {entity_id!r} already exists")


class RateLimiterUnavailable(ZaeLimiterError):
    """DynamoDB could not be reached (timeouts, connection errors, throttling past the retry budget)."""

    def __init__(self, message: str, cause: BaseException | None = None) -> None:
        self.cause = cause
        super().__init__(message)


class BucketContention(ZaeLimiterError):
    """The bucket changed under this client on every attempt; nothing was taken. Not an outage, so
    `on_unavailable="allow"` never lets it through: retrying shortly after is safe."""

    def __init__(self, message: str, cause: BaseException | None = None) -> None:
        self.cause = cause
        super().__init__(message)


class StackError(ZaeLimiterError):
    """The Pulumi engine failed, or is not installed; the message is the engine's."""


class StorageError(ZaeLimiterError):
    """DynamoDB refused a request for a reason retrying cannot fix (access denied, missing table,
    a corrupt stored item). Never treated as 'unavailable'."""

    def __init__(self, message: str, code: str | None = None, cause: BaseException | None = None) -> None:
        self.code = code
        self.cause = cause
        super().__init__(message)


@dataclass(frozen=True)
class LimitStatus:
    """How one limit of one entity stood when a request was decided."""

    entity_id: str
    resource: str
    name: str
    available: float
    requested: float
    capacity: float
    retry_after_seconds: float
    soft: bool = False  # metered, never refusing: `exceeded` then says it would have refused
    resets_at: datetime | None = None  # a calendar quota: when its next period starts, full (UTC)

    @property
    def exceeded(self) -> bool:
        return self.requested > self.available

    def as_dict(self) -> dict[str, Any]:
        data = {**asdict(self), "exceeded": self.exceeded}
        data["resets_at"] = None if self.resets_at is None else self.resets_at.isoformat()
        return data


class RateLimitExceeded(ZaeLimiterError):
    """At least one limit lacked tokens; nothing was consumed anywhere. `decided_locally`: the refusal
    came from this client's fresh view of the buckets, without a request."""

    def __init__(self, statuses: list[LimitStatus], decided_locally: bool = False) -> None:
        self.statuses = list(statuses)
        self.decided_locally = decided_locally
        self.retry_after_seconds = max((s.retry_after_seconds for s in self.statuses), default=0.0)
        names = ", ".join(f"{s.entity_id}/{s.name}" for s in self.exceeded)
        super().__init__(
            f"rate limit exceeded ({names}); retry after {self.retry_after_seconds:.3f}s"
        )

    @property
    def exceeded(self) -> list[LimitStatus]:
        """The hard limits that refused (a soft limit's status says whether it would have, and never refuses)."""
        return [s for s in self.statuses if s.exceeded and not s.soft]

    @property
    def retry_after_header(self) -> str:
        """The value of an HTTP Retry-After header: whole seconds, rounded up."""
        return str(max(0, math.ceil(self.retry_after_seconds - 1e-9)))

    def as_dict(self) -> dict[str, Any]:
        return {
            "error": "rate_limit_exceeded",
            "message": str(self),
            "retry_after_seconds": self.retry_after_seconds,
            "limits": [s.as_dict() for s in self.statuses],
        }


class ResourceDisabled(ZaeLimiterError):
    """Acquire on a disabled entity, resource or (entity, resource): refused outright (HTTP 403, not 429:
    waiting does not help). Nothing was written."""

    status_code = 403

    def __init__(self, entity_id: str, resource: str, scope: str) -> None:
        self.entity_id = entity_id
        self.resource = resource
        #: What is disabled: "entity", "resource" or "entity_resource".
        self.scope = scope
        what = {"entity": f"entity {entity_id!r}", "resource": f"resource {resource!r}"}.get(
            scope, f"resource {resource!r} for entity {entity_id!r}"
        )
        super().__init__(f"{what} is disabled")

    def as_dict(self) -> dict[str, Any]:
        return {
            "error": "resource_disabled",
            "message": str(self),
            "entity_id": self.entity_id,
            "resource": self.resource,
            "scope": self.scope,
        }
