"""Where our files live: DOCKER_CREDENTIAL_IDP_HOME, else the platform's user data directory."""

from __future__ import annotations

import os
import sys

TYPE_CHECKING = False  # typing itself is not imported: it costs a cache hit several ms
if TYPE_CHECKING:
    from pathlib import Path
    from typing import Mapping

APP_NAME = "docker-credential-idp"
HOME_VARIABLE = "DOCKER_CREDENTIAL_IDP_HOME"


def home_location(env: Mapping[str, str]) -> str:
    """The home directory as a string: the cache-hit path does without pathlib."""
    if env.get(HOME_VARIABLE):
        return os.path.expanduser(env[HOME_VARIABLE])
    if sys.platform.startswith("linux"):
        # platformdirs' Linux rule, written out because importing platformdirs costs more than a cache hit should.
        # tests/test_paths.py checks the two agree.
        data_home = env.get("XDG_DATA_HOME", "").strip()
        base = data_home or os.path.join(env.get("HOME") or os.path.expanduser("~"), ".local", "share")
        return os.path.join(base, APP_NAME)
    import platformdirs

    return str(platformdirs.user_data_dir(APP_NAME, appauthor=False))


def not_a_directory(path: str | os.PathLike[str]) -> str:
    """The one line for a home (or a directory in it) that is a file."""
    return (f"{path} is not a directory (it, or a folder above it, is a file); point {HOME_VARIABLE} at a directory, "
            "or move the file away")


def home_dir(env: Mapping[str, str]) -> Path:
    from pathlib import Path

    return Path(home_location(env))


def docker_config_path(env: Mapping[str, str]) -> Path:
    """Docker's config.json: $DOCKER_CONFIG/config.json, else ~/.docker/config.json."""
    from pathlib import Path

    if env.get("DOCKER_CONFIG"):
        return Path(env["DOCKER_CONFIG"]).expanduser() / "config.json"
    return Path(env.get("HOME") or os.path.expanduser("~")) / ".docker" / "config.json"
