"""Reading: the table streamed into the ledger, a chunk at a time, each chunk planned by
``intake`` against what the ledger knows (new / already sent / resend / failed / changed).

The reader runs ahead of the senders: the whole file is checked within seconds while sending
starts at once, and the senders wait on ``PendingRows`` for what it records.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from importer import intake
from importer.config import ImportConfig
from importer.errors import AbortError, InputError
from importer.funnel import preparer
from importer.ledger import Ledger, SeenRow
from importer.loader import Table
from importer.mapping import BoundMapping
from importer.records import IdentityRule, Row
from importer.report import RunReport, describe_change
from importer.sending import PendingRows, RunControl

if TYPE_CHECKING:
    from importer.account_fields import CellCheck

LEAD_DAILY_LIMIT = 24  # the stricter of the per-lead limits RD Station documents
CHUNK = 500  # rows the reader maps and records per ledger transaction

Warn = Callable[..., None]  # (message, *, kind="", row=None): kept in the report, said once


class Reader:
    """One run's reading of its table into its ledger."""

    def __init__(
        self,
        config: ImportConfig,
        mapping: BoundMapping,
        table: Table,
        ledger: Ledger,
        rows: PendingRows,
        report: RunReport,
        control: RunControl,
        warn: Warn,
    ) -> None:
        self.config = config
        self.mapping = mapping
        self.table = table
        self.ledger = ledger
        self.rows = rows
        self.report = report
        self.control = control
        self._warn = warn
        self.had_rows = False  # rows of earlier runs are recorded (else none has siblings)
        self.to_send = 0  # rows planned to be sent in this run
        self.identity_of = IdentityRule(table.headers, mapping.key)
        # intake.prepare, or with the row as a contact and its funnel step (importer.funnel)
        self.prepare = preparer(config.send_as, mapping)
        # --auth oauth: each row's custom fields against the account's (``account_fields``)
        self.check_cells: CellCheck | None = None

    async def read(self) -> None:
        """Read the whole table (or the selected rows) into the ledger, a chunk at a time."""
        self.had_rows = self.ledger.has_earlier_rows()
        chunk: list[Row] = []
        selection = self.config.selection
        first, last = selection or (0, 1 << 62)
        marked = self.table.marks.rows  # rows hidden in Excel, formulas with no saved value
        try:
            try:
                for row in self.table.rows():
                    if row.number < first:
                        continue
                    if row.number > last:
                        break
                    if row.number in marked:
                        for kind, message in self.table.row_warnings(row.number):
                            self._warn(message, kind=kind, row=row.number)
                    chunk.append(row)
                    if len(chunk) >= CHUNK:
                        self._record(chunk)
                        chunk = []
                        await asyncio.sleep(0)  # let the senders run between chunks
            except AbortError as exc:  # reading stopped mid-file (a workbook's reader was killed)
                if chunk:
                    self._record(chunk)
                self.control.abort(str(exc))
                return
            if chunk:
                self._record(chunk)
            if selection is None:
                self.ledger.forget_gone_failures()  # the whole file was read
        finally:
            self.rows.reading_ended()
        for message in self.table.read_warnings():
            self._warn(message)
        self._warn_conflicts()
        over = self.ledger.emails_over(LEAD_DAILY_LIMIT)
        if over:
            self._warn(
                f"{len(over)} email(s) have more than {LEAD_DAILY_LIMIT} rows to send; RD Station "
                f"accepts about {LEAD_DAILY_LIMIT} {self._per_lead} a day, so the rest will "
                "fail with LEAD_LIMITED and can be resumed tomorrow"
            )

    @property
    def _per_lead(self) -> str:
        """What RD Station's per-lead limit counts, in this run's words."""
        return (
            "updates per contact" if self.config.send_as == "contacts" else "conversions per lead"
        )

    def _record(self, rows: list[Row]) -> None:
        prepare, mapping, ledger, identity_of = (
            self.prepare,
            self.mapping,
            self.ledger,
            (self.identity_of),
        )
        check = self.check_cells
        outcomes = [
            prepare(row, mapping, identity_of, self._warner(row.number), check) for row in rows
        ]
        prepared = [o for o in outcomes if isinstance(o, intake.Prepared)]
        known = ledger.lookup([o.key for o in prepared])
        siblings = (
            ledger.siblings([o.identity for o in prepared if o.key not in known])
            if self.had_rows
            else {}
        )
        plan = intake.plan_chunk(
            outcomes, known, siblings, self.config.resume_policy, ledger.run_id
        )
        changed_funnels = ledger.record_chunk(plan.record)
        if changed_funnels:
            self._warn_changed_funnels(changed_funnels, plan.record.seen)
        self.to_send += plan.to_send
        report = self.report
        report.in_flight_found += plan.in_doubt_found
        report.changed_rows += plan.changed
        if plan.example is not None and report.changed_example is None:
            example = plan.example
            report.changed_example = describe_change(example.row, example.before, example.after)
        self.rows.recorded()

    def _warn_changed_funnels(self, keys: list[str], seen: list[SeenRow]) -> None:
        """Rows whose funnel an earlier run set, and which now give other values (a stage
        changed in the CRM, an owner fixed): the step is sent again (a PUT sets the same funnel
        whatever it held), their conversion is not. Said, as a changed payload is."""
        rows = {row.key: row.row for row in seen}
        for key in keys:
            self._warn(
                f"row {rows.get(key, '?')} of {self.config.input_path.name}: its funnel:"
                " values differ from those an earlier run set; the funnel is set again with the"
                " new ones (its conversion is not sent again); restore the old cells to keep"
                " the funnel RD Station has",
                kind="funnel_changed",
                row=rows.get(key),
            )

    def _warn_conflicts(self) -> None:
        """Rows of one email that say different things of the lead (consent declined in one,
        granted in another; or a stage Lead in one, Client in another): RD Station keeps what
        it receives last, which nobody chose."""
        for rows in self.ledger.rows_sharing_an_email():
            fields = intake.conflicting_fields([body for _, body in rows])
            if fields:
                numbers = ", ".join(str(row) for row, _ in rows[:5])
                self._warn(
                    f"rows {numbers} have the same email and different {', '.join(fields)}: "
                    "RD Station keeps the values of the row it receives last",
                    kind="conflict",
                    row=rows[0][0],
                )
        for numbered in self.ledger.funnel_conflicts():
            numbers = ", ".join(str(row) for row in numbered[:5])
            self._warn(
                f"rows {numbers} of {self.config.input_path.name} have the same email and"
                " different funnel: values: RD Station keeps the funnel it receives last, in no"
                " set order; give the contact's funnel in one row (or the same in each)",
                kind="funnel_conflict",
                row=numbered[0],
            )

    def _warner(self, row: int) -> Callable[[str, str], None]:
        """What a row's mapping lets pass (a value dropped...), into the run's warnings."""
        return lambda kind, message: self._warn(message, kind=kind, row=row)

    def changed_error(self, out_dir: Path) -> InputError:
        report = self.report
        return InputError(
            f"{report.changed_rows:,} row(s) of {self.config.input_path.name} were sent by an "
            f"earlier run into {out_dir} and would now be sent with another payload "
            f"({report.changed_example}). Nothing was sent: decide what becomes of them",
            setting="changed",
        )
