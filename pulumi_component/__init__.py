"""The Pulumi ComponentResource `ZaeLimiter` and the program that Pulumi.yaml, the CLI and
`create_stack` run. See docs/infrastructure.md."""

from .args import ZaeLimiterArgs
from .component import ZaeLimiter

__all__ = ["ZaeLimiter", "ZaeLimiterArgs"]
