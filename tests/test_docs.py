"""The README's command table is the user's map of the CLI: every command and every option the parser knows is
there, so that the table cannot fall behind the code (issue 19: `source add --replace`, `kubelet-config --no-home`
were missing)."""

from __future__ import annotations

import argparse
import re
from pathlib import Path

import pytest

from docker_credential_idp.commands import build_parser

README = Path(__file__).resolve().parents[1] / "README.md"
# registry add's type options are the types' own tables (README "Cloud registries" and the types table), not this row.
DOCUMENTED_ELSEWHERE = {("registry", "add")}


def command_table() -> list[str]:
    text = README.read_text(encoding="utf-8")
    section = text.split("\n## Commands\n", 1)[1].split("\n## ", 1)[0]
    return [line for line in section.splitlines() if line.startswith("| `")]


def leaf_parsers() -> list[tuple[tuple[str, ...], argparse.ArgumentParser]]:
    found: list[tuple[tuple[str, ...], argparse.ArgumentParser]] = []

    def walk(path: tuple[str, ...], parser: argparse.ArgumentParser) -> None:
        subparsers = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
        if not subparsers:
            found.append((path, parser))
            return
        for name, child in subparsers[0].choices.items():
            walk((*path, name), child)

    walk((), build_parser())
    return found


def row_for(command: tuple[str, ...]) -> str:
    name = " ".join(command)
    rows = [row for row in command_table() if re.search(rf"`{re.escape(name)}(?:[ `])", row.split(" | ")[0] + " ")]
    assert rows, f"README's command table has no row for `{name}`"
    return " ".join(rows)


@pytest.mark.parametrize("command", [path for path, _ in leaf_parsers()], ids=" ".join)
def test_every_command_and_option_is_in_the_readme_command_table(command):
    row = row_for(command)
    parser = dict(leaf_parsers())[command]
    if command in DOCUMENTED_ELSEWHERE:
        return
    options = sorted({s for a in parser._actions for s in a.option_strings if s.startswith("--") and s != "--help"})
    missing = [option for option in options if option not in row]
    assert not missing, f"README's row for `{' '.join(command)}` leaves out {missing}"


def test_the_table_names_no_command_the_parser_does_not_know():
    known = {" ".join(path) for path, _ in leaf_parsers()} | {"get", "store", "erase", "list", "version"}
    for row in command_table():
        for name in re.findall(r"`([a-z-]+(?: [a-z-]+)?)", row.split(" | ")[0]):
            words = name.split()
            assert name in known or words[0] in known or " ".join(words[:2]) in known, (name, row)


def test_every_type_option_is_in_the_readme():
    """registry add's type options live in the types' tables and examples rather than the command table: each is
    named there all the same."""
    from docker_credential_idp.providers import MODULES, get_provider

    text = README.read_text(encoding="utf-8")
    missing = [f"{type_name} --{option.name}" for type_name in MODULES for option in get_provider(type_name).options
               if f"--{option.name}" not in text]
    assert not missing, f"README never names {missing}"


# -- the recipes: what a newcomer copies must be accepted by `registry add` -----------------------------------------

RECIPE_VARIABLES = {"DOCKER_CONNECTION_ID": "0f5b7e0c-3d8a-4c61-9b7e-2a1d4c5e6f70",
                    "AWS_WEB_IDENTITY_TOKEN_FILE": "/var/run/secrets/eks.amazonaws.com/serviceaccount/token",
                    "AZURE_FEDERATED_TOKEN_FILE": "/var/run/secrets/azure/tokens/azure-identity-token",
                    "AZURE_TENANT_ID": "72f988bf-86f1-41af-91ab-2d7cd011db47",
                    "AZURE_CLIENT_ID": "04b07795-8ddb-461a-bbee-02f9e1bf7b46"}


def recipe_commands() -> list[list[str]]:
    """Every `registry add` with --oidc-token in the README's code blocks, continuation lines joined (a shell `\\`, or
    a YAML plain scalar's further-indented lines) and $VARIABLES given example values."""
    import shlex

    commands = []
    for block in README.read_text(encoding="utf-8").split("```")[1::2]:
        lines = block.splitlines()
        for index, line in enumerate(lines):
            start = line.find("docker-credential-idp registry add")
            if start < 0:
                continue
            text, indent = line[start:], len(line) - len(line.lstrip())
            for following in lines[index + 1:]:
                if text.endswith("\\"):
                    text = text[:-1] + " " + following.strip()
                elif following.strip() and len(following) - len(following.lstrip()) > indent + 2 \
                        and not following.lstrip().startswith("- "):
                    text += " " + following.strip()
                else:
                    break
            if "--oidc-token" not in text:
                continue
            text = re.sub(r"\$\{?([A-Z_]+)\}?", lambda m: RECIPE_VARIABLES.get(m.group(1), m.group(0)),
                          text.split("#", 1)[0])
            commands.append(shlex.split(text)[1:])
    return commands


def test_the_readme_recipes_are_found():
    types = {argv[argv.index("--type") + 1] for argv in recipe_commands()}
    assert {"gar", "oidc"} <= types, types


@pytest.mark.parametrize("argv", recipe_commands(), ids=lambda argv: " ".join(argv[2:3] + argv[4:5]))
def test_every_readme_recipe_with_an_identity_token_is_accepted_by_registry_add(argv):
    from docker_credential_idp.providers import get_provider
    from tests.conftest import call_helper

    type_name = argv[argv.index("--type") + 1]
    if "oidc_token" not in {option.dest for option in get_provider(type_name).options}:
        pytest.skip(f"--type {type_name} takes no --oidc-token on this branch yet")  # ecr: the aws branch
    result = call_helper(*argv)
    assert result.code == 0, result
