"""zae-limiter: exact distributed rate limiting on DynamoDB."""

from .errors import (
    BucketContention,
    EntityExistsError,
    EntityNotFoundError,
    LimitStatus,
    RateLimiterUnavailable,
    RateLimitExceeded,
    ResourceDisabled,
    StackError,
    StorageError,
    ValidationError,
    ZaeLimiterError,
)
from .lease import Lease, SyncLease
from .limiter import RateLimiter
from .limits import Limit, parse_limits
from .models import Entity, UsageSnapshot
from .stack_options import StackOptions
from .sync_limiter import SyncRateLimiter
from .usage import UsageSummary

__version__ = "0.1.0"

__all__ = [
    "BucketContention",
    "Entity",
    "EntityExistsError",
    "EntityNotFoundError",
    "Lease",
    "Limit",
    "LimitStatus",
    "RateLimitExceeded",
    "RateLimiter",
    "ResourceDisabled",
    "RateLimiterUnavailable",
    "StackError",
    "StackOptions",
    "StorageError",
    "SyncLease",
    "SyncRateLimiter",
    "UsageSnapshot",
    "UsageSummary",
    "ValidationError",
    "ZaeLimiterError",
    "parse_limits",
]
