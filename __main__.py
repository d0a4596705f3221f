"""The provider plugin `pulumi package add` runs (PulumiPlugin.yaml): hosts the ZaeLimiter component for
programs in other languages. See pulumi_component/provider_host.py."""

import sys
from pathlib import Path

# Pulumi runs the plugin as `python <this directory> <engine address>`: this checkout's packages first,
# whatever the plugin's virtualenv holds (it gets the dependencies from requirements.txt).
sys.path.insert(0, str(Path(__file__).resolve().parent))

from pulumi_component.provider_host import main  # noqa: E402

if __name__ == "__main__":
    main()
