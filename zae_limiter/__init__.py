"""zae-limiter: exact distributed rate limiting on DynamoDB.

The names below load on first use (PEP 562), so `import zae_limiter` costs nothing: the pytest plugin,
the CLI's help and the aggregator's Lambda (which ships this file with `zae_limiter.core` alone) import
only what they use.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

# Public name -> the module that defines it.
_EXPORTS = {
    **dict.fromkeys(
        ("BucketContention", "EntityExistsError", "EntityNotFoundError", "LimitStatus", "RateLimiterUnavailable",
         "RateLimitExceeded", "ResourceDisabled", "StackError", "StorageError", "ValidationError", "ZaeLimiterError"),
        ".core.errors",
    ),
    "Limit": ".core.limits",
    "parse_limits": ".core.limits",
    "Entity": ".core.models",
    "UsageSnapshot": ".core.models",
    "UsageSummary": ".core.usage",
    "Lease": ".lease",
    "SyncLease": ".lease",
    "RateLimiter": ".limiter",
    "SyncRateLimiter": ".sync_limiter",
    "StackOptions": ".stack_options",
}
# Modules of the core that callers reach as `zae_limiter.<name>` (`from zae_limiter import schema`).
_MODULES = {"schema": ".core.schema", "limits": ".core.limits", "errors": ".core.errors"}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        value = getattr(importlib.import_module(_EXPORTS[name], __name__), name)
    elif name in _MODULES:
        value = importlib.import_module(_MODULES[name], __name__)
    else:
        raise AttributeError(f"module 'zae_limiter' has no attribute {name!r}")
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *_EXPORTS, *_MODULES])


if TYPE_CHECKING:  # for type checkers and editors: the same names, imported eagerly
    from .core.errors import (  # noqa: F401
        BucketContention, EntityExistsError, EntityNotFoundError, LimitStatus, RateLimiterUnavailable,
        RateLimitExceeded, ResourceDisabled, StackError, StorageError, ValidationError, ZaeLimiterError,
    )
    from .core.limits import Limit, parse_limits  # noqa: F401
    from .core.models import Entity, UsageSnapshot  # noqa: F401
    from .core.usage import UsageSummary  # noqa: F401
    from .lease import Lease, SyncLease  # noqa: F401
    from .limiter import RateLimiter  # noqa: F401
    from .stack_options import StackOptions  # noqa: F401
    from .sync_limiter import SyncRateLimiter  # noqa: F401
