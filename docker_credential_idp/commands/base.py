"""What every command shares: the argument parser's manners, the context a command runs in, output helpers."""

from __future__ import annotations

import argparse
import difflib
import json
import sys
from typing import IO, TYPE_CHECKING, Any, Callable, Mapping, Optional, Sequence

from .. import streams
from ..errors import PROG as PROG  # re-exported: the commands name the program through base
from ..errors import InvalidInput
from ..matching import parse_reference
from ..paths import home_dir
from ..sources import SourceTable
from ..table import RegistryTable
from ..vault import Vault

if TYPE_CHECKING:
    from _typeshed import SupportsWrite

SECRET_OPTION_NAMES = ("--password", "--token", "--secret", "--client-secret", "--secret-access-key", "--key")


class Parser(argparse.ArgumentParser):
    """argparse, with one-line errors (an InvalidInput) that never echo a value and suggest what was meant, and
    help written to the command's output stream (`output`, set on a subclass per run) rather than sys.stdout."""

    output: Optional[IO[str]] = None

    def _print_message(self, message: str, file: Optional[SupportsWrite[str]] = None) -> None:
        if message and self.output is not None and file in (None, sys.stdout):
            self.output.write(message)
        else:
            super()._print_message(message, file)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("allow_abbrev", False)
        super().__init__(*args, **kwargs)

    def parse_known_args(self, args: Any = None, namespace: Any = None) -> Any:
        # A leaf parser names an unknown option before argparse complains of a required one it hides (--prefx).
        if args is not None and not self._subparsers:
            unknown = sorted({a.split("=", 1)[0] for a in args if a.startswith("--") and len(a) > 2
                              and a.split("=", 1)[0] not in self._option_string_actions})
            if unknown:
                self._unknown_options(unknown)
        return super().parse_known_args(args, namespace)

    def _unknown_options(self, names: list[str]) -> None:
        # Never echo the values: a mistyped `--password hunter2` would print the password.
        if any(n in SECRET_OPTION_NAMES for n in names):
            hint = "; secrets are read from stdin or an environment variable, never from the command line"
        else:
            close = difflib.get_close_matches(names[0], list(self._option_string_actions), n=1)
            hint = f"; did you mean {close[0]}?" if close else ""
        raise InvalidInput(f"unknown option {', '.join(names)}{hint} (see: {self.prog} --help)")

    def error(self, message: str) -> None:  # type: ignore[override]
        if message.startswith("unrecognized arguments"):
            words = message.split(":", 1)[1].split()
            names = sorted({w.split("=", 1)[0] for w in words if w.startswith("-")})
            if names:
                self._unknown_options(names)
            raise InvalidInput(f"unexpected extra arguments (see: {self.prog} --help)")
        if message.startswith("argument COMMAND: invalid choice"):
            raise InvalidInput(unknown_command(message.split("'")[1], self.command_names(), self.prog))
        raise InvalidInput(f"{message} (see: {self.prog} --help)")

    def commands(self) -> dict[str, Parser]:
        actions = self._subparsers._group_actions if self._subparsers else []
        return {name: sub for action in actions for name, sub in (getattr(action, "choices", None) or {}).items()}

    def command_names(self) -> list[str]:
        return list(self.commands())


def unknown_command(word: str, known: Sequence[str], prog: str) -> str:
    close = difflib.get_close_matches(word, list(known), n=1)
    hint = f"; did you mean {close[0]}?" if close else ""
    return f"unknown command {word[:64]!r}{hint} (see: {prog} --help)"


class Context:
    """What a command works with: the rooms over this home's vault (the registry table, the sources' table), never
    the vault itself, and the streams it reads and writes."""

    def __init__(self, env: Mapping[str, str], out: IO[str], warn: Callable[[str], None] = streams.warn,
                 read_stdin: Callable[[int], bytes] = streams.read_stdin,
                 stdin_is_terminal: Callable[[], bool] = streams.stdin_is_terminal) -> None:
        self.env, self.out, self.warn = env, out, warn
        self.read_stdin, self.stdin_is_terminal = read_stdin, stdin_is_terminal
        self.home = home_dir(env)
        vault = Vault(self.home, env)
        self.table = RegistryTable(vault, env, warn=warn)
        self.sources = SourceTable(vault, self.table.now, self.table.forget_answers)

    def print(self, text: str = "") -> None:
        self.out.write(text + "\n")

    def print_json(self, value: object) -> None:
        self.print(json.dumps(value, indent=2, sort_keys=True))


Handler = Callable[[Context, argparse.Namespace], int]


def parse_references(refs: Sequence[str]) -> list[str]:
    """Several REFs, each parsed before any credential is fetched; one that fails is named by its place, as its
    text is never quoted back (it may be a secret pasted in the wrong place)."""
    requests = []
    for place, ref in enumerate(refs, 1):
        try:
            requests.append(parse_reference(ref))
        except InvalidInput as error:
            if len(refs) == 1:
                raise
            raise InvalidInput(f"REF {place} of {len(refs)}: {error.message}") from None
    return requests


def iso(timestamp: float) -> str:
    import datetime

    return datetime.datetime.fromtimestamp(timestamp, datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
