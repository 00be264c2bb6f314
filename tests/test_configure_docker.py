"""`configure-docker` in this process: docker's config.json is shared with docker itself, other helpers and other
tools, so we edit it as a guest (every Docker Hub key clients look up routed, an "auths" object kept, another helper's
entry left alone unless --force and given back on --unset, a warning when docker could not find us on PATH).
tests/test_commands.py and tests/e2e/test_real_clients.py drive the installed program and real clients."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest

from docker_credential_idp.cli import ProtocolVerbs

from .test_commands_in_process import HOST, Run, add

HUB_KEYS = {"docker.io", "index.docker.io", "https://index.docker.io/v1/"}


@pytest.fixture
def on_path(tmp_path: Path) -> dict[str, str]:
    """An environment whose PATH finds a docker-credential-idp, as docker would."""
    directory = tmp_path / "bin"
    directory.mkdir()
    program = directory / "docker-credential-idp"
    program.write_text("#!/bin/sh\n")
    program.chmod(0o755)
    return {"PATH": str(directory)}


def config_path() -> Path:
    return Path(os.environ["DOCKER_CONFIG"]) / "config.json"


def write_config(content: dict) -> None:
    config_path().write_text(json.dumps(content))
    config_path().chmod(0o600)


def read_config() -> dict:
    return json.loads(config_path().read_text())


def configure(*argv: str, env: dict[str, str]) -> Run:
    return Run(["configure-docker", *argv], env=env)


# -- Docker Hub: every key a client looks it up by -------------------------------------------------------------------


def test_docker_hub_is_routed_under_every_key_clients_look_it_up_by_and_get_answers_each(on_path):
    add("hub", "docker.io", "hub-password-1")
    run = configure(env=on_path)
    assert run.status == 0
    # docker CLI: the index URL; containers/image: docker.io; trivy, syft and Helm: index.docker.io as is.
    assert read_config()["credHelpers"] == {key: "idp" for key in HUB_KEYS}
    verbs = ProtocolVerbs(os.environ)
    for key in sorted(HUB_KEYS) + ["registry-1.docker.io"]:  # Helm and BuildKit map registry-1 to the index URL
        answer = verbs.get(key)
        assert (answer.username, answer.secret) == ("robot", "hub-password-1"), key
    assert configure("--unset", env=on_path).status == 0
    assert "credHelpers" not in read_config()


def test_registry_add_asks_for_configure_docker_while_a_docker_hub_key_is_missing():
    write_config({"auths": {}, "credHelpers": {"docker.io": "idp", "https://index.docker.io/v1/": "idp"}})  # before
    assert "To let docker use it, run: docker-credential-idp configure-docker" in add("hub", "docker.io", "hub-pw-2").warnings


# -- "auths": docker writes {}, oras-py crashes without it -----------------------------------------------------------


def test_a_config_we_create_or_edit_has_an_auths_object_and_we_never_remove_one(on_path):
    add("local", HOST, "auths-password-1")
    assert configure(env=on_path).status == 0  # no config.json yet: created
    assert read_config() == {"auths": {}, "credHelpers": {HOST: "idp"}}
    assert stat.S_IMODE(config_path().stat().st_mode) == 0o600
    write_config({"credHelpers": {HOST: "idp"}, "psFormat": "table"})  # routed already, but no auths
    run = configure(env=on_path)
    assert run.status == 0 and read_config() == {"auths": {}, "credHelpers": {HOST: "idp"}, "psFormat": "table"}
    assert '"auths"' in run.text
    assert configure("--unset", env=on_path).status == 0
    assert read_config() == {"auths": {}, "psFormat": "table"}


def test_auths_that_is_not_an_object_is_refused_unchanged(on_path):
    add("local", HOST, "auths-password-2")
    write_config({"auths": [], "credHelpers": {}})
    from docker_credential_idp.errors import ConfigError

    with pytest.raises(ConfigError, match="auths in .* is not a JSON object"):
        configure(env=on_path)
    assert read_config() == {"auths": [], "credHelpers": {}}


# -- another helper's entry: left, named, taken over with --force, given back on --unset ----------------------------


def test_another_helpers_entry_is_left_and_named_until_force_and_unset_gives_it_back(on_path):
    add("local", HOST, "guest-password-1")
    add("other", "other.example.com", "guest-password-2")
    write_config({"auths": {}, "credHelpers": {HOST: "gcloud"}})
    left = configure(env=on_path)
    assert left.status == 0
    assert read_config()["credHelpers"] == {HOST: "gcloud", "other.example.com": "idp"}
    notes = [w for w in left.warnings if HOST in w]
    assert len(notes) == 1 and "docker-credential-gcloud" in notes[0] and "--force" in notes[0]
    assert configure(env=on_path).warnings == notes  # said again on every run, still left

    forced = configure("--force", env=on_path)
    assert forced.status == 0 and read_config()["credHelpers"] == {HOST: "idp", "other.example.com": "idp"}
    assert "gcloud" in forced.text and HOST in forced.text
    assert "gcloud" not in config_path().read_text()  # remembered in our home, not in the shared file
    assert configure("--force", env=on_path).status == 0  # again: "idp" is never remembered as what was there

    restored = configure("--unset", env=on_path)
    assert restored.status == 0 and read_config()["credHelpers"] == {HOST: "gcloud"}
    assert "gcloud" in restored.text
    assert configure("--unset", env=on_path).status == 0  # given back once; nothing left to restore
    assert read_config()["credHelpers"] == {HOST: "gcloud"}


def test_what_was_there_before_us_survives_docker_rewriting_its_config(on_path):
    """docker login and logout rewrite config.json with the keys docker knows only (seen with docker CLI 28.2), so
    what we took over is remembered in our home; an entry changed by hand meanwhile is not ours to touch."""
    add("local", HOST, "guest-password-3")
    add("other", "other.example.com", "guest-password-4")
    write_config({"credHelpers": {HOST: "ecr-login", "other.example.com": "gcloud"}, "credsStore": "desktop"})
    assert configure("--force", "--creds-store", env=on_path).status == 0
    assert read_config() == {"auths": {}, "credHelpers": {HOST: "idp", "other.example.com": "idp"}, "credsStore": "idp"}
    config = read_config()
    config["credHelpers"]["other.example.com"] = "pass"  # the user's own edit
    write_config(config)
    assert configure("--unset", "--creds-store", env=on_path).status == 0
    assert read_config() == {"auths": {}, "credHelpers": {HOST: "ecr-login", "other.example.com": "pass"},
                             "credsStore": "desktop"}


def test_another_creds_store_is_left_unless_force(on_path):
    add("local", HOST, "guest-password-5")
    write_config({"auths": {}, "credsStore": "desktop"})
    left = configure("--creds-store", env=on_path)
    assert left.status == 0 and read_config()["credsStore"] == "desktop"
    assert any("credsStore" in w and "docker-credential-desktop" in w and "--force" in w for w in left.warnings)


def test_a_helper_name_from_the_config_is_shown_escaped(on_path):
    add("local", HOST, "guest-password-6")
    write_config({"credHelpers": {HOST: "evil\x1b[2J"}})
    left = configure(env=on_path)
    assert left.warnings and not any("\x1b" in w for w in left.warnings)


# -- PATH: docker runs docker-credential-idp from PATH ---------------------------------------------------------------


def test_a_helper_missing_from_path_is_one_warning_naming_the_directory_to_add(tmp_path):
    add("local", HOST, "path-password-1")
    run = configure(env={"PATH": str(tmp_path / "nothing-here")})
    assert run.status == 0 and read_config()["credHelpers"] == {HOST: "idp"}
    notes = [w for w in run.warnings if "PATH" in w]
    assert len(notes) == 1 and "docker-credential-idp is not on PATH" in notes[0]
    assert notes[0].count("\n") == 0 and "export PATH=" in notes[0]


def test_no_path_warning_when_docker_can_find_the_helper_or_on_unset(on_path, tmp_path):
    add("local", HOST, "path-password-2")
    assert not any("PATH" in w for w in configure(env=on_path).warnings)
    assert not any("PATH" in w for w in configure("--unset", env={"PATH": str(tmp_path)}).warnings)


# -- --unset and what we remember: every entry routed here, never a helper the user removed since ------------------


def test_unset_gives_back_every_entry_routed_here_once_the_registration_is_gone(on_path):
    write_config({"credHelpers": {HOST: "pass", "stray.example.com": "idp"}})
    add("local", HOST, "unset-password-1")
    assert configure("--force", env=on_path).status == 0
    assert Run(["registry", "remove", "local"]).status == 0
    run = configure("--unset", env=on_path)
    assert run.status == 0 and "docker-credential-pass" in run.text, run.text
    assert read_config() == {"auths": {}, "credHelpers": {HOST: "pass"}}
    home = Path(os.environ["DOCKER_CREDENTIAL_IDP_HOME"])
    assert not (home / "docker-config-previous-helpers.json").exists()  # given back, so forgotten


def test_a_helper_the_user_removed_since_force_is_not_brought_back(on_path):
    """`buildah logout --all` deletes credHelpers whole: the entry we add again afterwards replaced nothing."""
    write_config({"credHelpers": {HOST: "pass"}})
    add("local", HOST, "unset-password-2")
    assert configure("--force", env=on_path).status == 0
    write_config({"auths": {}})  # the user's tool removed every entry
    assert configure(env=on_path).status == 0 and read_config()["credHelpers"] == {HOST: "idp"}
    run = configure("--unset", env=on_path)
    assert run.status == 0 and "pass" not in run.text, run.text
    assert read_config() == {"auths": {}}


@pytest.mark.parametrize("text", ['{"a":1e99999}', '{"a":-1e99999}', '{"a":NaN}', '{"a":[Infinity]}'])
def test_a_config_with_a_number_json_cannot_write_back_is_refused_unchanged(on_path, text):
    from docker_credential_idp.errors import ConfigError

    add("local", HOST, "number-password-1")
    config_path().write_text(text)
    with pytest.raises(ConfigError) as refused:
        configure(env=on_path)
    assert str(config_path()) in str(refused.value) and "\n" not in str(refused.value)
    assert config_path().read_text() == text
