"""The bundle's entry point: the same `main` the pip console script runs."""

import sys

from docker_credential_idp.cli import main

sys.exit(main())
