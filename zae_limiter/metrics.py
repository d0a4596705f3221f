"""OpenTelemetry metrics for a limiter (the `otel` extra: `pip install 'zae-limiter[otel]'`).

    from zae_limiter.metrics import LimiterMetrics
    limiter = RateLimiter(table_name="rate_limits", metrics=LimiterMetrics())   # the global MeterProvider
    limiter = RateLimiter(table_name="rate_limits", metrics=LimiterMetrics(meter_provider=provider))

Instruments (meter "zae_limiter"), labelled by resource and limit name, never by entity id (one
series per API key would be unbounded):

  zae_limiter.acquires.admitted             counter {acquire}  zae_limiter.resource
  zae_limiter.acquires.refused              counter {acquire}  zae_limiter.resource, zae_limiter.limit
  zae_limiter.acquires.refused_locally      counter {acquire}  zae_limiter.resource, zae_limiter.limit
  zae_limiter.acquires.unavailable_allowed  counter {acquire}  zae_limiter.resource
  zae_limiter.soft_overdraws                counter {acquire}  zae_limiter.resource, zae_limiter.limit
  zae_limiter.core.acquire.duration              histogram s        zae_limiter.resource, zae_limiter.outcome

A refused acquire counts once under each limit that lacked tokens (so refusals by limit add up to at
least the refused acquires); `refused_locally` counts the refusals decided from this client's view
without a request, and they are also in `refused`. `outcome` is one of admitted, refused,
unavailable_allowed, unavailable (blocked), disabled, error.
"""

from __future__ import annotations

from typing import Any, Iterable

try:
    from opentelemetry import metrics as otel_metrics
except ImportError:
    raise ImportError(
        "zae_limiter.metrics needs OpenTelemetry; install the otel extra: pip install 'zae-limiter[otel]'"
    ) from None

from .core.errors import BucketContention, RateLimiterUnavailable, RateLimitExceeded, ResourceDisabled

RESOURCE = "zae_limiter.resource"
LIMIT = "zae_limiter.limit"
OUTCOME = "zae_limiter.outcome"
# Acquire latency is a fraction of a millisecond to a few seconds (retries): boundaries to match.
DURATION_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


def _outcome_of(error: BaseException) -> str:
    if isinstance(error, RateLimitExceeded):
        return "refused"
    if isinstance(error, ResourceDisabled):
        return "disabled"
    if isinstance(error, (RateLimiterUnavailable, BucketContention)):
        return "unavailable"
    return "error"


class LimiterMetrics:
    """The acquire observer a limiter calls (`metrics=`); also usable directly for soft overdraws."""

    def __init__(self, meter_provider: Any = None) -> None:
        from . import __version__

        meter = otel_metrics.get_meter("zae_limiter", __version__, meter_provider=meter_provider)
        self.admitted = meter.create_counter(
            "zae_limiter.acquires.admitted", unit="{acquire}", description="Acquires admitted")
        self.refused = meter.create_counter(
            "zae_limiter.acquires.refused", unit="{acquire}", description="Acquires refused, by the limit that lacked tokens")
        self.refused_locally = meter.create_counter(
            "zae_limiter.acquires.refused_locally", unit="{acquire}",
            description="Acquires refused from this client's view of the bucket, without a request")
        self.unavailable_allowed = meter.create_counter(
            "zae_limiter.acquires.unavailable_allowed", unit="{acquire}",
            description="Acquires let through unrecorded by on_unavailable='allow' while DynamoDB was unreachable")
        self.soft_overdraws = meter.create_counter(
            "zae_limiter.soft_overdraws", unit="{acquire}", description="Acquires that went past a soft limit")
        self.duration = meter.create_histogram(
            "zae_limiter.core.acquire.duration", unit="s", description="Time an acquire took, by outcome",
            explicit_bucket_boundaries_advisory=list(DURATION_BUCKETS))

    # -- what the limiter calls ------------------------------------------------------------------
    def on_acquire(self, resource: str, state: Any, seconds: float) -> None:
        """An acquire returned: `state` is the lease's state, or None when it was let through unchecked."""
        if state is None:
            self.unavailable_allowed.add(1, {RESOURCE: resource})
            outcome = "unavailable_allowed"
        else:
            self.admitted.add(1, {RESOURCE: resource})
            outcome = "admitted"
        self.duration.record(seconds, {RESOURCE: resource, OUTCOME: outcome})

    def on_acquire_error(self, resource: str, error: BaseException, seconds: float) -> None:
        if isinstance(error, RateLimitExceeded):
            for name in dict.fromkeys(status.name for status in error.exceeded):
                attributes = {RESOURCE: resource, LIMIT: name}
                self.refused.add(1, attributes)
                if error.decided_locally:
                    self.refused_locally.add(1, attributes)
        self.duration.record(seconds, {RESOURCE: resource, OUTCOME: _outcome_of(error)})

    def on_soft_overdraw(self, resource: str, limit_names: Iterable[str]) -> None:
        """An admitted acquire went past these soft limits (the quota model's `lease.overdrawn`)."""
        for name in dict.fromkeys(limit_names):
            self.soft_overdraws.add(1, {RESOURCE: resource, LIMIT: name})
