"""The program Pulumi.yaml runs (`pulumi up` in a checkout), configured with `pulumi config set`."""

import sys
from pathlib import Path

# Pulumi's Python host runs this file as a script, with this directory first on sys.path. Put the
# checkout's root ahead of it, so that `pulumi up` deploys the packages (and the aggregator's code) of
# this checkout, even where the virtualenv holds another installed copy.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from pulumi_component.program import program_from_config  # noqa: E402

program_from_config()
