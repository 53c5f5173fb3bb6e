"""When the run as a whole must stop: the answers of many rows say the trouble is not the rows.

One :class:`StopRules` per run, shared by every worker, fed the outcome of every attempt in the
order the answers arrive. It decides; it sends, waits and records nothing.

How the sender uses it
    After each attempt, call ``on_sent()`` for a ``Sent``, or ``on_failed(failed,
    last_attempt=..., row=key)`` for a ``Failed`` (429s and retried attempts included;
    ``last_attempt`` is True when no further attempt of that row follows). A string back is
    the reason to stop: stop taking rows, let requests in flight come home (keep feeding their
    outcomes), and end the run as aborted (exit 3, resumable), with the reason as its message.
    ``on_failed`` may return a reason again for later answers; the first is the one to report.

    What to record for each row when the run stops:
    - the row whose answer stopped it, and every row answered so since: as its own ``Failed``
      says. ``failed.maybe_recorded`` (it reached a server and no answer says it was not
      recorded: none came, or a 2xx without RD Station's event_uuid) means in doubt: never
      resent without the user's say (``--in-flight``). Otherwise nothing was recorded;
    - rows in ``rows_to_send_again`` (the ``row`` values given): the address was wrong, not
      the row, so leave them to send (pending), even those already recorded as failed;
    - rows never sent, and rows whose last attempt surely reached no server
      (``not failed.reached_server``): left to send.

The rules (limits below; ``concurrency`` is the number of workers)
    - AUTH_REFUSED and FATAL failures stop at once: no request can succeed (their message).
    - Unreachable: ``max(10, 2 * concurrency)`` rows in a row failed transiently after all
      their attempts (a row sent or refused by RD Station in between starts the count again).
    - Silent: ``max(3, 2 * concurrency)`` attempts in a row timed out, across workers: every
      worker waited its whole timeout twice. With the defaults (30 s, 8 workers) that is about
      a minute, where six attempts of sixteen rows once took 413 s.
    - Wrong address: ``SAME_MISS`` identical 404 or 405 answers in a row: the path is wrong
      (``--api-url``), not the rows; those rows are to be sent again.
    - Not RD Station: a 2xx without an event_uuid (``NO_EVENT_UUID``) before any answer had
      RD Station's shape stops at once: a captive portal or a catch-all proxy answers there.
      After RD Station did answer, ``NOT_RD_AFTER`` such answers without a good one between
      stop the run too (a portal that appeared mid-run); a single one is only counted.
    - Refused for long: only 429s (the account's budget) for ``RATE_LIMITED_FOR`` seconds, not
      one other answer: another integration spends the budget, or a daily cap was reached.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from importer.records import Failed, FailureKind

__all__ = ["NOT_RD_AFTER", "RATE_LIMITED_FOR", "SAME_MISS", "StopRules"]

SAME_MISS = 5  # identical 404/405 answers in a row that mean the address is wrong
NOT_RD_AFTER = 3  # answers without an event_uuid in a row, once RD Station has answered
RATE_LIMITED_FOR = 600.0  # seconds of nothing but 429s
RD_API_URL = "https://api.rd.services"
_WRONG_ADDRESS = (404, 405)


class StopRules:
    """The run-level stop rules, fed every attempt's outcome; see the module's docstring."""

    def __init__(
        self,
        *,
        api_url: str,
        concurrency: int,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._api_url = api_url
        self._clock = clock
        self.unreachable_limit = max(10, 2 * concurrency)
        self.silent_limit = max(3, 2 * concurrency)
        self.rows_to_send_again: tuple[object, ...] = ()
        self._rd_answered = False  # has any answer had RD Station's shape (an event_uuid)?
        self._unreachable = 0  # rows in a row that failed transiently for good
        self._silent = 0  # attempts in a row that timed out
        self._miss: tuple[int | None, str, str] | None = None  # the 404/405 answer repeated
        self._miss_rows: list[object] = []
        self._not_rd = 0  # 2xx without an event_uuid since the last good answer
        self._limited_since: float | None = None  # first 429 of an unbroken run of them

    def on_sent(self) -> None:
        """An attempt was answered with RD Station's event_uuid (or a 2xx cut short)."""
        self._rd_answered = True
        self._unreachable = self._silent = self._not_rd = 0
        self._miss, self._miss_rows = None, []
        self._limited_since = None

    def on_failed(self, failed: Failed, *, last_attempt: bool, row: object = None) -> str | None:
        """Count one failed attempt; the reason to stop the run, or None to go on.

        ``last_attempt``: no further attempt of this row follows. ``row``: what identifies the
        row to the caller (its ledger key), handed back in ``rows_to_send_again``.
        """
        kind = failed.kind
        if kind in (FailureKind.AUTH_REFUSED, FailureKind.FATAL):
            return failed.message
        answered = failed.http_status is not None
        reasons = [
            self._rate_limited(failed),
            self._wrong_address(failed, row),
            self._not_rd_station(failed),
            self._silence(failed, answered),
            self._unreachable_rows(failed, last_attempt),
        ]
        return next((reason for reason in reasons if reason is not None), None)

    # -- one method per rule: each updates its own count, and says whether it trips ----------

    def _rate_limited(self, failed: Failed) -> str | None:
        if failed.kind is not FailureKind.RATE_LIMITED:
            if failed.http_status is not None:
                self._limited_since = None  # any other answer: the budget is not all spent
            return None
        now = self._clock()
        if self._limited_since is None:
            self._limited_since = now
            return None
        if now - self._limited_since < RATE_LIMITED_FOR:
            return None
        return (
            f"RD Station has answered every request with 429 (the account's request limit) for "
            f"{(now - self._limited_since) / 60:.0f} minutes (last: {failed.message}); another "
            "integration may be spending the budget, or a daily cap was reached: run the same "
            "command later to resume"
        )

    def _wrong_address(self, failed: Failed, row: object) -> str | None:
        if failed.http_status not in _WRONG_ADDRESS:
            self._miss, self._miss_rows = None, []
            return None
        answer = (failed.http_status, failed.error_type, failed.message)
        if answer != self._miss:
            self._miss, self._miss_rows = answer, []
        self._miss_rows.append(row)
        if len(self._miss_rows) < SAME_MISS:
            return None
        self.rows_to_send_again = tuple(r for r in self._miss_rows if r is not None)
        return (
            f"{self._api_url} answered HTTP {failed.http_status} to {len(self._miss_rows)} "
            f"rows in a row (last: {failed.message}): the address is wrong, not the rows; "
            f"check --api-url (RD Station's is {RD_API_URL}): those rows are left to send"
        )

    def _not_rd_station(self, failed: Failed) -> str | None:
        if failed.error_type != "NO_EVENT_UUID":
            return None
        self._not_rd += 1
        if not self._rd_answered:
            return (
                f"the first answers are not RD Station's: {failed.message}; check --api-url "
                f"(RD Station's is {RD_API_URL}): rows that got such an answer are in doubt, "
                "the rest are left to send"
            )
        if self._not_rd < NOT_RD_AFTER:
            return None
        return (
            f"{self._api_url} stopped answering as RD Station does: {self._not_rd} answers "
            f"since the last good one came without an event_uuid (last: {failed.message}); a "
            "captive portal or a proxy may be in the way: run the same command later to "
            "resume (those rows are in doubt)"
        )

    def _silence(self, failed: Failed, answered: bool) -> str | None:
        if answered:
            self._silent = 0
            return None
        if failed.error_type != "TIMEOUT":
            return None  # refused, reset: counted by the unreachable rule, per row
        self._silent += 1
        if self._silent < self.silent_limit:
            return None
        return (
            f"{self._api_url} did not answer {self._silent} requests in a row (last: "
            f"{failed.message}); run the same command later to resume"
        )

    def _unreachable_rows(self, failed: Failed, last_attempt: bool) -> str | None:
        kind = failed.kind
        if kind is FailureKind.RATE_LIMITED or (kind is FailureKind.TRANSIENT and not last_attempt):
            return None  # not a row's end
        if kind is not FailureKind.TRANSIENT:
            self._unreachable = 0  # RD Station judged the row: it is reachable
            return None
        self._unreachable += 1
        if self._unreachable < self.unreachable_limit:
            return None
        return (
            f"RD Station could not be reached for {self.unreachable_limit} rows in a row "
            f"(last: {failed.message}); run the same command later to resume"
        )
