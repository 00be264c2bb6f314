"""Where our files live: DOCKER_CREDENTIAL_IDP_HOME, else the platform's user data directory."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Mapping

APP_NAME = "docker-credential-idp"
HOME_VARIABLE = "DOCKER_CREDENTIAL_IDP_HOME"


def home_dir(env: Mapping[str, str]) -> Path:
    if env.get(HOME_VARIABLE):
        return Path(env[HOME_VARIABLE]).expanduser()
    if sys.platform.startswith("linux"):
        # platformdirs' Linux rule, written out because importing platformdirs costs more than a cache hit should.
        # tests/test_paths.py checks the two agree.
        data_home = env.get("XDG_DATA_HOME", "").strip()
        base = Path(data_home) if data_home else Path(env.get("HOME") or os.path.expanduser("~")) / ".local" / "share"
        return base / APP_NAME
    import platformdirs

    return Path(platformdirs.user_data_dir(APP_NAME, appauthor=False))


def docker_config_path(env: Mapping[str, str]) -> Path:
    """Docker's config.json: $DOCKER_CONFIG/config.json, else ~/.docker/config.json."""
    if env.get("DOCKER_CONFIG"):
        return Path(env["DOCKER_CONFIG"]).expanduser() / "config.json"
    return Path(env.get("HOME") or os.path.expanduser("~")) / ".docker" / "config.json"
