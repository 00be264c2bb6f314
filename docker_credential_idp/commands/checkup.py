"""`doctor`: the whole chain checked as docker and the containers tools see it."""

from __future__ import annotations

import argparse
from typing import Any

from ..doctor import as_json, run
from .base import Context


def add_parsers(commands: Any) -> None:
    doctor = commands.add_parser(
        "doctor", help="check the whole chain: docker's config, the containers tools' auth files, the vault, "
        "each registration's identity",
        description="Exits 0 when nothing is wrong, 1 otherwise, with one line per problem: what is wrong (with "
        "the host or path), why it matters, and the fix. Nothing is called out unless --online.")
    doctor.add_argument("--json", action="store_true", help="print the problems as a JSON list (empty when healthy)")
    doctor.add_argument("--online", action="store_true", help="also run `registry test` for each "
                        "registration (a run that takes more than a second shows each step on stderr)")
    doctor.set_defaults(func=cmd_doctor)


def cmd_doctor(ctx: Context, args: argparse.Namespace) -> int:
    problems = run(ctx.table, online=args.online, progress=ctx.warn)
    if args.json:
        ctx.print(as_json(problems))
    elif problems:
        for problem in problems:
            ctx.print(problem.line())
    else:
        ctx.print("No problems found: docker's config, the containers auth files, the vault and every registration's "
                  "identity are in order")
    return 1 if problems else 0
