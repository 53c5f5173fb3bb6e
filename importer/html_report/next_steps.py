"""The next command to run: resume, import a fixed copy, send what was checked, or none."""

from __future__ import annotations

import shlex
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from importer.html_report.fixes import _RETRIED_LATER
from importer.html_report.page import _e

DEFAULT_RATE: Final = 120.0  # the CLI's --rate: left out of the commands shown

# (what to do, the commands that do it)
Step = tuple[str, list[str]]


def _command(*words: object) -> str:
    return " ".join(shlex.quote(str(w)) for w in words)


@dataclass(frozen=True, slots=True)
class _Commands:
    """The run's own words, from which each step's commands are built."""

    source: str
    mapping: str
    out_dir: Path
    extra: tuple[object, ...]  # the options that change what an import does

    @classmethod
    def of(cls, s: Mapping[str, Any], out_dir: Path) -> _Commands:
        plan = s.get("plan") or {}
        extra: list[object] = []
        if plan.get("sandbox"):
            extra.append("--sandbox")
        if plan and plan.get("rate") != DEFAULT_RATE:
            extra += ["--rate", f"{float(plan.get('rate') or 0):g}"]
        return cls(str(s.get("input", "")), str(s.get("mapping", "")), out_dir, tuple(extra))

    def run(self, verb: str, source: str, *extra: object) -> str:
        return _command(
            "rd-importer", verb, source, "--mapping", self.mapping, "--out", self.out_dir, *extra
        )

    @property
    def same(self) -> str:
        """The import that ran, again."""
        return self.run("import", self.source, *self.extra)

    @property
    def fixed(self) -> str:
        """The copy of failures.csv a person fixes."""
        return f"{Path(self.source).stem}-fixed.csv"

    @property
    def copy(self) -> str:
        return _command("cp", self.out_dir / "failures.csv", self.fixed)


def _next_steps(s: Mapping[str, Any], failed_total: int, out_dir: Path) -> str:
    """The next command to run: resume, import a fixed copy, send what was checked, or none."""
    commands = _Commands.of(s, out_dir)
    types = dict(s.get("failure_types") or {})
    steps: list[Step] = []
    if s.get("dry_run"):
        steps = _after_checking(s, failed_total, commands)
    elif s.get("aborted_reason") or s.get("left_to_send"):
        steps.append(
            (
                "Once the cause is fixed, run the same command to resume: rows already sent "
                "are skipped, never sent twice.",
                [commands.same],
            )
        )
    else:
        steps = _after_importing(types, commands)
    out = ["<h2 id=next>What to do next</h2>"]
    if not steps:
        out.append(
            "<p>Nothing: every row was sent"
            + (", and the duplicate rows once." if types else ".")
            + "</p>"
        )
    else:
        out.append("<ol>")
        for text, lines in steps:
            block = "\n".join(_e(c) for c in lines)
            out.append(f"<li>{_e(text)}<pre><code>{block}</code></pre></li>")
        out.append("</ol>")
    return "\n".join(out) + "\n"


def _after_checking(s: Mapping[str, Any], failed_total: int, commands: _Commands) -> list[Step]:
    """After validate: check again once fixed, check a fixed copy, send what is ready."""
    steps: list[Step] = []
    if s.get("aborted_reason"):
        check = commands.run("validate", commands.source)
        steps.append(("Once the cause is fixed, check the file again:", [check]))
    if failed_total:
        check = commands.run("validate", commands.fixed)
        steps.append(
            (
                "Copy failures.csv, fix the cells the messages name (keep its columns), and "
                "check the copy:",
                [commands.copy, check],
            )
        )
    if s.get("would_send"):
        send = commands.run("import", commands.source)
        steps.append(
            (
                "Send the rows that are ready (set RDSTATION_API_KEY first; add --sandbox "
                "to try it locally):",
                [send],
            )
        )
    return steps


def _after_importing(types: Mapping[str, Any], commands: _Commands) -> list[Step]:
    """After an import that ran to its end: fix and import a copy, send again later, or look
    rows in doubt up."""
    steps: list[Step] = []
    later = sorted(t for t in types if t in _RETRIED_LATER or t.startswith("HTTP_5"))
    nothing_to_fix = {*later, "DUPLICATE_ROW", "IN_FLIGHT_UNKNOWN"}
    if any(t not in nothing_to_fix for t in types):
        again = commands.run("import", commands.fixed, *commands.extra)
        steps.append(
            (
                "Copy failures.csv, fix the cells the messages name (keep its columns), and "
                "import the copy into the same folder: rows already sent are never sent "
                "again.",
                [commands.copy, again],
            )
        )
    if later:
        steps.append(
            (
                f"Rows that failed on the way ({', '.join(later)}) are sent by the same "
                "command, later:",
                [commands.same],
            )
        )
    if "IN_FLIGHT_UNKNOWN" in types:
        steps.append(
            (
                "Rows in doubt: look them up in RD Station; to send them again:",
                [commands.same + " --in-flight resend"],
            )
        )
    return steps
