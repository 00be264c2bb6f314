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
    """The home directory as an absolute path string (the cache-hit path does without pathlib). A relative one
    would put the vault wherever docker happens to run the helper."""
    from .errors import ConfigError

    if env.get(HOME_VARIABLE):
        home = os.path.expanduser(env[HOME_VARIABLE])
        if not os.path.isabs(home):
            raise ConfigError(f"{HOME_VARIABLE} must be an absolute path, not {env[HOME_VARIABLE][:200]!r}")
        return home
    if sys.platform.startswith("linux"):
        # platformdirs' Linux rule, written out because importing platformdirs costs more than a cache hit should.
        # tests/test_paths.py checks the two agree. The XDG spec says a relative XDG_DATA_HOME is invalid: ignored.
        data_home = env.get("XDG_DATA_HOME", "").strip()
        if not os.path.isabs(data_home):
            user_home = env.get("HOME") or os.path.expanduser("~")
            if not os.path.isabs(user_home):
                raise ConfigError(f"no home directory: HOME is unset or relative and uid {os.geteuid()} has no passwd "
                                  f"entry; set {HOME_VARIABLE} to an absolute path")
            data_home = os.path.join(user_home, ".local", "share")
        return os.path.join(data_home, APP_NAME)
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
