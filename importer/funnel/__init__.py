"""The funnel step: after a row's conversion (or contact) is accepted, its funnel is set with
``PUT /platform/contacts/email:EMAIL/funnels/default`` and the keys the mapping's ``funnel:``
section gives (``lifecycle_stage``, ``opportunity``, ``contact_owner_email``). OAuth only.

How a run does it:

- **Reading** (``preparer``): each row's funnel is mapped with its payload; a cell that does not
  fit fails the row at validation, before anything is sent for it. The step's request is
  recorded in the ledger beside the conversion (``ledger.funnel``), with its own state.
- **Sending** (``send_funnel_steps``): once the conversions are sent, a second phase sends the
  funnel steps of the rows whose conversion is recorded, through the same ``Sender`` (the
  account's ``RateBudget``, the retry policy, the stop rules, marks committed before each
  request leaves). A contact a conversion just created may not exist yet: a 404 is retried,
  ``funnel_not_found_wait`` seconds apart, as often as the retry policy allows. RD Station's
  refusals (``INVALID_USER``: the owner is no user of the account) fail the step with its
  words. A resume sends the steps left to send, never the conversion again.
- **Reporting**: a row whose funnel step failed is in failures.csv with ``error_stage`` =
  ``funnel`` and a message saying its conversion WAS recorded (its event_uuid); it is counted
  as failed (not succeeded) in summary.json, and stays in successes.csv, which lists what
  RD Station recorded. summary.json's ``funnel`` counts the steps.

The API key cannot set a funnel: a mapping with ``funnel:`` under ``--auth apikey`` stops the
run (exit 2), unless the section says ``with_apikey: skip`` (the presets do), which leaves it
out with a note.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, Final

import orjson

from importer import intake
from importer.contacts import contact_path, lead_limited_as, prepared_as_contact
from importer.errors import InputError, RowError
from importer.ledger import Ledger, Marks, Pending
from importer.ledger.funnel import FunnelMarksTarget
from importer.mapping import BoundMapping, Mapping
from importer.pacing import RateBudget
from importer.records import Failed, FailureKind, Row, Sent
from importer.retry import RetryPolicy
from importer.sending import FETCH, RunControl, Sender, SendStats
from importer.stop_rules import StopRules

NOT_FOUND_YET: Final = "CONTACT_NOT_FOUND_YET"

Prepare = Callable[..., "intake.Prepared | intake.Rejected"]


# -- reading -----------------------------------------------------------------------------------


def funnel_path(email: str) -> str:
    return contact_path(email) + "/funnels/default"


def funnel_body(email: str, funnel: dict[str, Any]) -> bytes:
    """What the ledger keeps of a funnel step: the address and the PUT's body."""
    return orjson.dumps({"email": email, "funnel": funnel}, option=orjson.OPT_SORT_KEYS)


def preparer(send_as: str, mapping: BoundMapping) -> Prepare:
    """``intake.prepare`` for this run: the row as a contact (``--as contacts``), with its
    funnel step (the mapping's ``funnel:``)."""
    funnel = mapping.funnel
    if send_as != "contacts" and funnel is None:
        return intake.prepare

    def prepare(
        row: Row,
        mapping: BoundMapping,
        identity_of: Callable[[dict[str, str]], str] | None = None,
        warn: Callable[[str, str], None] | None = None,
        *more: Any,  # what else intake.prepare takes (checks of the cells), passed through
    ) -> intake.Prepared | intake.Rejected:
        outcome = intake.prepare(row, mapping, identity_of, warn, *more)
        if not isinstance(outcome, intake.Prepared):
            return outcome
        if send_as == "contacts":
            outcome = prepared_as_contact(outcome, warn)
        if funnel is not None:
            try:
                values = funnel.apply(row.cells, warn)
            except RowError as exc:
                return intake.Rejected(
                    exc.stage,
                    "MAPPING_ERROR" if exc.stage == "mapping" else "VALIDATION_ERROR",
                    exc.message,
                    outcome.cells,
                    outcome.row,
                    outcome.identity,
                    outcome.source_row,
                )
            if values:
                outcome.funnel = funnel_body(outcome.email, values)
        return outcome

    return prepare


def check_auth(mapping: Mapping, bound: BoundMapping, auth: str) -> list[str]:
    """Under the API key, a ``funnel:`` section stops the run (InputError), or, with
    ``with_apikey: skip``, is left out: the note to tell is returned."""
    section = mapping.spec.funnel
    if auth == "oauth" or section is None:
        return []
    where = f"{mapping.path.name}: line {mapping.funnel_line}"
    if section.with_apikey == "skip":
        bound.funnel = None
        return [
            f"{where}: funnel: is left out: RD Station sets a contact's funnel stage and owner "
            "only for an app signed in with OAuth (--auth oauth)"
        ]
    raise InputError(
        f"{where}: funnel: needs --auth oauth (RD Station sets a contact's funnel only for a "
        "signed-in app: `rd-importer auth login`); or, to send conversions with the API key, "
        "remove the section or add `with_apikey: skip` to it"
    )


# -- sending -----------------------------------------------------------------------------------


class FunnelRows:
    """The funnel steps still to send, in file order (``PendingRows``' part the sender uses)."""

    def __init__(self, ledger: Ledger, control: RunControl) -> None:
        self._ledger = ledger
        self._control = control
        self._buffered: list[Pending] = []
        self._fetched_to = 0

    async def next(self) -> Pending | None:
        if self._control.stopping:
            return None
        if not self._buffered:
            self._buffered = self._ledger.next_funnel(self._fetched_to, FETCH)[::-1]
            if not self._buffered:
                return None
            self._fetched_to = self._buffered[0].row
        return self._buffered.pop()


class FunnelStopRules(StopRules):
    """The run's stop rules, but a contact not there yet (404) is neither a wrong address (the
    conversions, sent to the same API, proved it) nor RD Station out of reach (it answered):
    such a step fails alone, to be sent by the next run."""

    def _wrong_address(self, failed: Failed, row: object) -> str | None:
        if failed.error_type == NOT_FOUND_YET:
            return None
        return super()._wrong_address(failed, row)

    def _unreachable_rows(self, failed: Failed, last_attempt: bool) -> str | None:
        if failed.error_type == NOT_FOUND_YET:
            self._unreachable = 0
            return None
        return super()._unreachable_rows(failed, last_attempt)


def funnel_transport(client: Any, wait: float) -> Callable[[bytes], Awaitable[Sent | Failed]]:
    """The sender's transport for funnel steps: one PUT per ledger body."""

    async def put(body: bytes) -> Sent | Failed:
        document = orjson.loads(body)
        answer = await client.request(
            "PUT", funnel_path(document["email"]), orjson.dumps(document["funnel"])
        )
        if not isinstance(answer, Failed):
            return Sent(event_uuid="", http_status=answer.status)
        answer = lead_limited_as(answer, "updates", "the funnel was not set (tomorrow)")
        if answer.http_status == 404:
            # A contact a conversion created a moment ago may not exist yet: wait, try again.
            return Failed(
                FailureKind.TRANSIENT,
                404,
                NOT_FOUND_YET,
                "the contact is not in RD Station yet (its conversion was recorded a moment "
                f"ago): {answer.message}",
                retry_after=wait,
            )
        return answer

    return put


async def send_funnel_steps(
    *,
    ledger: Ledger,
    client: Any,
    control: RunControl,
    budget: RateBudget,
    retry: RetryPolicy,
    concurrency: int,
    stop_grace: float,
    now: Callable[[], str],
    api_url: str,
    wait: float,
    warn: Callable[[str, str], None],
) -> SendStats:
    """Send this run's funnel steps whose conversion is recorded; the stats of the phase."""
    marks = Marks(FunnelMarksTarget(ledger), None, on_broken=control.abort)  # type: ignore[arg-type]
    sender = Sender(
        transport=funnel_transport(client, wait),
        rows=FunnelRows(ledger, control),  # type: ignore[arg-type]
        marks=marks,
        control=control,
        budget=budget,
        retry=retry,
        concurrency=concurrency,
        stop_grace=stop_grace,
        now=now,
        row_done=lambda: None,
        rules=FunnelStopRules(api_url=api_url, concurrency=concurrency),
        warn=warn,
    )
    await sender.run()
    return sender.stats


__all__ = [
    "NOT_FOUND_YET",
    "FunnelRows",
    "FunnelStopRules",
    "check_auth",
    "funnel_body",
    "funnel_path",
    "funnel_transport",
    "preparer",
    "send_funnel_steps",
]
