"""What a person sees of a run: messages on stderr, a progress bar when it is a terminal, and
when it is not (cron, systemd, a CI log) a progress line now and then."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from typing import Any

import click

from importer.errors import printable
from importer.pipeline import Listener
from importer.report import format_duration


def err(message: str) -> None:
    # Escaped: a message may name a file, and a file's name must not drive the terminal. Line
    # breaks stay: a mapping's problems are listed one a line.
    click.echo("\n".join(map(printable, message.split("\n"))), err=True)


LOG_EVERY_S = 60.0  # a progress line for logs at most this often...
LOG_EVERY_SHARE = 0.05  # ...and only once this share of the rows more is done


class ConsoleListener(Listener):
    """Messages on stderr; a tqdm bar when stderr is a terminal, else a line every minute or
    every 5% of the rows, whichever is rarer (a 14-hour import says how it goes in its log)."""

    def __init__(
        self,
        *,
        quiet: bool = False,
        interactive: bool | None = None,
        clock: Callable[[], float] = time.monotonic,
    ):
        self.quiet = quiet
        self.bar: Any = None
        self.interactive = (
            sys.stderr.isatty() if interactive is None else interactive
        ) and not quiet
        self.clock = clock
        self.started: float | None = None
        self.logged_at = 0.0
        self.logged_rows = 0

    def info(self, message: str) -> None:
        if not self.quiet:
            self._write(message)

    def warning(self, message: str) -> None:
        self._write(f"Warning: {message}")

    def _write(self, message: str) -> None:
        if self.bar is not None:
            self.bar.write(printable(message), file=sys.stderr)
        else:
            err(printable(message))

    def progress(self, done: int, total: int | None, eta_s: float | None) -> None:
        if not self.interactive:
            if not self.quiet:
                self._log_progress(done, total, eta_s)
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

    def _log_progress(self, done: int, total: int | None, eta_s: float | None) -> None:
        now = self.clock()
        if self.started is None:
            self.started = self.logged_at = now
            return
        if now - self.logged_at < LOG_EVERY_S or done == self.logged_rows:
            return
        if total and done < total and done - self.logged_rows < LOG_EVERY_SHARE * total:
            return
        self.logged_at, self.logged_rows = now, done
        per_minute = done / max(now - self.started, 1e-9) * 60
        of = f" of {total:,} ({done / total:.0%})" if total else ""
        left = f", about {format_duration(eta_s)} left" if eta_s is not None else ""
        err(f"Progress: {done:,} rows{of}, {per_minute:,.0f} rows/min{left}")

    def finished(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None
