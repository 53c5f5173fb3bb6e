"""What one run needs, checked when built: ``ImportConfig``, its test-only ``Tuning``, and the
``Listener`` a run tells what happens. Messages name settings as the library does
(``concurrency``, ``out_dir``); the CLI shows them as its flags."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from importer import contacts, oauth
from importer.client import check_api_url
from importer.errors import InputError
from importer.intake import Changed, InFlight, ResumePolicy
from importer.loader import Table, check_text_options
from importer.mapping import Mapping
from importer.retry import RetryPolicy

DEFAULT_API_URL = "https://api.rd.services"
AuthMethod = Literal["apikey", "oauth"]
SendAs = Literal["conversions", "contacts"]


@dataclass(frozen=True)
class Tuning:
    """Knobs no user needs: the retry policy's limits, waits and timeouts (tests shorten them)."""

    max_attempts: int = 6
    retry_max_elapsed: float = 900.0
    retry_wait: bool = True  # False removes backoff waits
    timeout: float = 30.0  # seconds for one request
    stop_grace: float = 10.0  # seconds requests in flight get to finish after a stop
    min_free_bytes: int = 16_000_000  # a run does not start, and stops, under this free space
    funnel_not_found_wait: float = 2.0  # seconds before a funnel step that got 404 is retried

    def retry_policy(self) -> RetryPolicy:
        """The retry policy of a run's requests (conversions, batches, funnel steps)."""
        return RetryPolicy(
            max_attempts=self.max_attempts, max_elapsed=self.retry_max_elapsed, wait=self.retry_wait
        )


@dataclass(frozen=True)
class ImportConfig:
    """Everything one run needs, checked when built (``InputError``). Defaults are the CLI's."""

    input_path: Path
    mapping_path: Path
    out_dir: Path | None = None
    api_url: str = DEFAULT_API_URL
    api_key: str | None = field(default=None, repr=False)  # a secret: kept out of any repr
    auth: AuthMethod = "apikey"  # oauth: the app signed in with `rd-importer auth login`
    send_as: SendAs = "conversions"  # contacts: upsert each row's contact (importer.contacts)
    batch: int | None = None  # rows per request in event batches (OAuth only): importer.batches
    rate: float = 120.0
    concurrency: int = 8
    dry_run: bool = False
    sandbox: bool = False
    sheet: str | None = None
    encoding: str | None = None
    delimiter: str | None = None
    header_row: int = 1
    skip_hidden_rows: bool = False  # leave out the rows an Excel sheet hides
    in_flight: InFlight | None = None  # None: resend, but keep holding what skip held
    retry_rejected: bool = False
    changed: Changed | None = None  # rows sent earlier whose payload changed: keep / resend
    rows: tuple[int, int] | None = None  # only these rows (first, last: as a spreadsheet shows)
    limit: int | None = None  # only the first N data rows (a rehearsal)
    show: int = 0  # a dry run keeps the payloads of its first N rows for the report
    # The ledger, when not the reports folder's own: watch shares one across the files it
    # imports, so a row sent from one drop is known in the next.
    ledger_path: Path | None = None
    tuning: Tuning = Tuning()
    # The Python API's rows in memory (a DataFrame, dicts), read instead of a file: input_path
    # then only names them. And its mapping, given loaded or as a dict.
    table: Callable[[], Table] | None = field(default=None, compare=False, repr=False)
    mapping: Mapping | None = field(default=None, compare=False, repr=False)

    def __post_init__(self) -> None:
        if self.concurrency < 1:
            raise InputError(
                f"concurrency {self.concurrency}: use 1 or more", setting="concurrency"
            )
        if not (math.isfinite(self.rate) and self.rate >= 0):
            raise InputError(
                f"rate {self.rate:g}: use a number of requests per minute, 0 unpaced",
                setting="rate",
            )
        if self.changed not in (None, "keep", "resend"):
            raise InputError(f"changed {self.changed!r}: use keep or resend", setting="changed")
        if self.in_flight not in (None, "resend", "skip"):
            raise InputError(
                f"in_flight {self.in_flight!r}: use resend or skip", setting="in_flight"
            )
        if self.rows is not None and not (1 <= self.rows[0] <= self.rows[1]):
            raise InputError(
                f"rows {self.rows[0]}-{self.rows[1]}: use FIRST-LAST, 2 or more", setting="rows"
            )
        if self.limit is not None and self.limit < 1:
            raise InputError(f"limit {self.limit}: use 1 or more", setting="limit")
        if self.header_row < 1:
            raise InputError(f"header_row {self.header_row}: use 1 or more", setting="header_row")
        check_text_options(self.encoding, self.delimiter)
        if self.auth not in ("apikey", "oauth"):
            raise InputError(f"auth {self.auth!r}: use apikey or oauth", setting="auth")
        if self.send_as not in ("conversions", "contacts"):
            raise InputError(f"as {self.send_as!r}: use conversions or contacts", setting="send_as")
        if self.send_as == "contacts" and self.auth != "oauth":
            raise InputError(contacts.refused_with_apikey(), setting="send_as")
        if self.batch is not None:
            check_batch(self.batch, self.auth)
            if self.send_as == "contacts":
                raise InputError(
                    f"batch {self.batch} with --as contacts: RD Station has no batch endpoint "
                    "for contacts (event batches hold conversions); leave batch out",
                    setting="batch",
                )
        if self.sends or self.reads_account:
            check_api_url(self.api_url)
            if self.auth == "oauth":
                oauth.check_signed_in(self.api_url)  # not signed in: exit 2, nothing read
            elif not self.api_key:
                raise InputError("no API key: set RDSTATION_API_KEY", setting="api_key")

    @property
    def sends(self) -> bool:
        """Whether this run sends to RD Station (a dry run and the sandbox need no key; a dry run
        with OAuth still needs the sign-in: ``reads_account``)."""
        return not (self.dry_run or self.sandbox)

    @property
    def reads_account(self) -> bool:
        """Whether this run asks RD Station for the account's fields first (``--auth oauth``,
        a dry run too), and so needs the sign-in; a sandbox run signs in to its own sandbox."""
        return self.auth == "oauth" and not self.sandbox

    @property
    def resume_policy(self) -> ResumePolicy:
        return ResumePolicy(self.in_flight, self.retry_rejected, self.changed)

    @property
    def selection(self) -> tuple[int, int] | None:
        """The rows this run reads (both ends included), or None for every row."""
        first, last = self.rows or (1, 1 << 62)
        if self.limit is not None:
            last = min(last, max(first, self.header_row + 1) + self.limit - 1)
        return None if self.rows is None and self.limit is None else (first, last)

    def resolved_out_dir(self) -> Path:
        return self.out_dir or Path("rd-import-out") / self.input_path.stem


def check_batch(batch: int, auth: str) -> None:
    """``batch``: 1 to MAX_BATCH rows a request, and only with OAuth (RD Station takes event
    batches only from an app)."""
    from importer.batches import MAX_BATCH

    if not 1 <= batch <= MAX_BATCH:
        raise InputError(f"batch {batch}: use 1 to {MAX_BATCH} rows a request", setting="batch")
    if auth != "oauth":
        raise InputError(
            f"batch {batch} needs auth oauth: RD Station takes event batches only from an app "
            "signed in with `rd-importer auth login`; add auth oauth, or leave batch out to "
            "send one row a request with the API key",
            setting="batch",
        )


class Listener:
    """What a run tells whoever is watching it. The CLI draws it; the default says nothing."""

    def info(self, message: str) -> None: ...

    def warning(self, message: str) -> None: ...

    def progress(self, done: int, total: int | None, eta_s: float | None) -> None: ...

    def finished(self) -> None: ...
