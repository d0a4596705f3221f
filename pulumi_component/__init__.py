"""The Pulumi ComponentResource `ZaeLimiter` and the program that Pulumi.yaml, the CLI and
`create_stack` run. See docs/infrastructure.md.

The exports load on first use, so `pulumi_component.lambda_package` (which `zae-limiter lambda-export`
uses) works without the Pulumi SDK installed."""

from typing import Any

__all__ = ["ZaeLimiter", "ZaeLimiterArgs"]


def __getattr__(name: str) -> Any:
    if name == "ZaeLimiter":
        from .component import ZaeLimiter

        return ZaeLimiter
    if name == "ZaeLimiterArgs":
        from .args import ZaeLimiterArgs

        return ZaeLimiterArgs
    raise AttributeError(f"module 'pulumi_component' has no attribute {name!r}")
