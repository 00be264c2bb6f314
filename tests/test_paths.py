"""Our home directory: DOCKER_CREDENTIAL_IDP_HOME, else platformdirs' user data directory, written out on Linux
so a cache hit does not import platformdirs."""

from __future__ import annotations

import os
import sys

import platformdirs
import pytest

from docker_credential_idp.paths import APP_NAME, docker_config_path, home_dir, home_location


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the written-out rule is Linux's")
@pytest.mark.parametrize("xdg", [None, "", "/srv/xdg-data"])
def test_linux_rule_agrees_with_platformdirs(monkeypatch, tmp_path, xdg):
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.delenv("DOCKER_CREDENTIAL_IDP_HOME", raising=False)
    if xdg is None:
        monkeypatch.delenv("XDG_DATA_HOME", raising=False)
    else:
        monkeypatch.setenv("XDG_DATA_HOME", xdg)
    expected = platformdirs.user_data_dir(APP_NAME, appauthor=False)
    assert home_location(os.environ) == expected and str(home_dir(os.environ)) == expected


def test_explicit_home_wins_and_expands_the_user(tmp_path):
    env = {"DOCKER_CREDENTIAL_IDP_HOME": "~/idp", "XDG_DATA_HOME": "/elsewhere"}
    assert home_location(env) == os.path.expanduser("~/idp") and not home_location(env).startswith("~")


def test_docker_config_follows_docker_config_variable(tmp_path):
    assert docker_config_path({"DOCKER_CONFIG": str(tmp_path)}) == tmp_path / "config.json"
    assert docker_config_path({"HOME": str(tmp_path)}) == tmp_path / ".docker" / "config.json"
