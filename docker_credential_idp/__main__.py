import sys

from docker_credential_idp.cli import main

sys.exit(main())
