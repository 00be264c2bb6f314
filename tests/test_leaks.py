"""The leak watch in conftest.py runs after every test: these tests show it sees what it must."""

from __future__ import annotations

import pytest

from .conftest import LEAKS, LeakWatch, add_basic, run_helper


def test_watch_finds_a_secret_in_a_file_and_in_an_output(tmp_path):
    watch = LeakWatch()
    watch.watch("s3cret-value-1")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "state.json").write_text('{"token": "s3cret-value-1"}')
    with pytest.raises(AssertionError, match="state.json"):
        watch.check([tmp_path])
    watch = LeakWatch()
    watch.watch("s3cret-value-2")
    watch.saw("registry show", "password: s3cret-value-2")
    with pytest.raises(AssertionError, match="registry show"):
        watch.check([])


def test_secrets_handed_to_the_helper_are_watched_and_answers_are_allowed():
    add_basic("r", "registry.example.com", "robot", "watched-password-1")
    run_helper("registry", "add", "s", "--prefix", "other.example.com", "--type", "basic", "--username", "u",
               "--password-env", "SOME_VAR", env={"SOME_VAR": "watched-password-2"})
    assert {"watched-password-1", "watched-password-2"} <= LEAKS.secrets
    result = run_helper("get", stdin="registry.example.com")
    assert "watched-password-1" in result.out  # an answer may carry it; the watch allows it there
    run_helper("registry", "show", "r", "--json")
    assert not [label for label, text in LEAKS.outputs if "watched-password-1" in text]
