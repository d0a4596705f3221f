"""The Pulumi ComponentResource `ZaeLimiter`, the program that Pulumi.yaml, the CLI and `create_stack`
run (see docs/infrastructure.md), and `ZaeLimits`, the table's stored limits as Pulumi resources.

The exports load on first use, so `pulumi_component.lambda_package` (which `zae-limiter lambda-export`
uses) works without the Pulumi SDK installed."""

from typing import Any

__all__ = ["ZaeLimiter", "ZaeLimiterArgs", "ZaeLimits", "ZaeLimitsArgs"]


def __getattr__(name: str) -> Any:
    if name == "ZaeLimiter":
        from .component import ZaeLimiter

        return ZaeLimiter
    if name == "ZaeLimiterArgs":
        from .args import ZaeLimiterArgs

        return ZaeLimiterArgs
    if name in ("ZaeLimits", "ZaeLimitsArgs"):
        from . import limits_resource

        return getattr(limits_resource, name)
    raise AttributeError(f"module 'pulumi_component' has no attribute {name!r}")
