"""The component-provider host: `ZaeLimiter` for every Pulumi language (TypeScript, Go, YAML, C#, Java).

`pulumi package add <this repository>` reads PulumiPlugin.yaml at the repository's root, runs the root's
`__main__.py` (which calls `main()` here) as a provider plugin, asks it for its schema and generates an
SDK in the consumer's language. The schema is inferred from the Python annotations by
`pulumi.provider.experimental` (ZaeLimiterArgs for the inputs, ZaeLimiter's `pulumi.Output` attributes
for the outputs, their docstrings for the descriptions); `tests/test_component_schema.py` checks it.

`ZaeLimits` is not hosted: its dynamic resources run in Pulumi's Python dynamic-provider plugin, which
needs the program's own Python environment; a TypeScript, Go or YAML program has none. Those programs
apply limits with `zae-limiter limits apply FILE`.
"""

from pulumi.provider.experimental import component_provider_host

from zae_limiter import __version__

from .component import TYPE_TOKEN, ZaeLimiter

PACKAGE = TYPE_TOKEN.split(":")[0]  # "zae-limiter": the package in the component's type token
COMPONENTS = [ZaeLimiter]


def main() -> None:
    component_provider_host(COMPONENTS, PACKAGE, version=__version__)
