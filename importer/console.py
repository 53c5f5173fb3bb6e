"""What a person at a terminal sees of a run: messages on stderr, a progress bar when it is a
terminal."""

from __future__ import annotations

import sys
from typing import Any

import click

from importer.pipeline import Listener
from importer.report import format_duration


def err(message: str) -> None:
    click.echo(message, err=True)


class ConsoleListener(Listener):
    """Messages on stderr; a tqdm bar when stderr is a terminal."""

    def __init__(self, *, quiet: bool = False):
        self.quiet = quiet
        self.bar: Any = None
        self.interactive = sys.stderr.isatty() and not quiet

    def info(self, message: str) -> None:
        if not self.quiet:
            self._write(message)

    def warning(self, message: str) -> None:
        self._write(f"Warning: {message}")

    def _write(self, message: str) -> None:
        if self.bar is not None:
            self.bar.write(message, file=sys.stderr)
        else:
            err(message)

    def progress(self, done: int, total: int | None, eta_s: float | None) -> None:
        if not self.interactive:
            return
        if self.bar is None:
            from tqdm import tqdm

            self.bar = tqdm(total=total, unit="row", file=sys.stderr, dynamic_ncols=True)
        bar = self.bar
        if total is not None and bar.total != total:
            bar.total = total
        bar.n = done
        if eta_s is not None:
            bar.set_postfix_str(f"paced ETA {format_duration(eta_s)}", refresh=False)
        bar.refresh()

    def finished(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None
