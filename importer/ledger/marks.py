"""The senders' ledger writes, batched; and where they go when the ledger cannot take them."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from importer.ledger.journal import Journal
from importer.ledger.store import Ledger
from importer.records import Failed

Write = dict[str, Any]  # {"op": ..., "key": ..., ...}: applied by Ledger.apply, or journaled


class Marks:
    """The senders' ledger writes, committed together once per event-loop turn.

    A commit costs more than the few updates a row needs, and unpaced, many workers move in the
    same turn. ``in_flight`` returns only once its write is committed: a request never leaves
    before its row is durably in flight. The other marks write behind, at the end of the same
    turn (so an answer is on disk a moment after it arrived), in the order they were made.

    When a commit fails (a full disk), ``on_broken`` is told once (the run stops taking rows),
    ``in_flight`` answers False from then on (no request leaves), and the marks of that commit
    and every later answer go to the ``journal``, which the ledger replays when it next opens.
    """

    def __init__(
        self,
        ledger: Ledger,
        journal: Journal | None = None,
        on_broken: Callable[[str], None] = lambda reason: None,
    ) -> None:
        self._ledger = ledger
        self._journal = journal
        self._on_broken = on_broken
        self._writes: list[Write] = []
        self._waiters: list[asyncio.Future[bool]] = []
        self._scheduled = False
        self.broken: Exception | None = None
        self.lost = 0  # answers neither committed nor journaled

    async def in_flight(self, key: str, attempts: int) -> bool:
        """Mark a row in flight; True once committed (its request may leave), False when the
        ledger cannot be written (it must not)."""
        if self.broken is not None:
            return False
        self._later({"op": "in_flight", "key": key, "attempts": attempts})
        waiter: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        return await waiter

    def sent(self, key: str, event_uuid: str, sent_at: str, attempts: int) -> None:
        write = {"op": "sent", "key": key, "event_uuid": event_uuid, "sent_at": sent_at}
        self._later(write | {"attempts": attempts, "run": self._ledger.run_id})

    def failed(self, key: str, failed: Failed, attempts: int, *, in_doubt: bool) -> None:
        self._later(
            {
                "op": "failed",
                "key": key,
                "kind": failed.kind.value,
                "http_status": failed.http_status,
                "error_type": failed.error_type,
                "message": failed.message,
                "attempts": attempts,
                "in_doubt": in_doubt,
            }
        )

    def pending(self, key: str) -> None:
        self._later({"op": "pending", "key": key})

    def send_again(self, key: str) -> None:
        """A row failed by a cause that was not its own (a wrong address): to send next run."""
        self._later({"op": "unfailed", "key": key})

    def flush(self) -> None:
        """Commit what is waiting now."""
        self._flush_soon()

    def _later(self, write: Write) -> None:
        if self.broken is not None:
            self._keep([write])
            return
        self._writes.append(write)
        if not self._scheduled:
            self._scheduled = True
            asyncio.get_running_loop().call_soon(self._flush_soon)

    def _flush_soon(self) -> None:
        # Called by the event loop: an error is handled here, never raised into the loop.
        self._scheduled = False
        writes, self._writes = self._writes, []
        waiters, self._waiters = self._waiters, []
        if writes:
            try:
                with self._ledger.transaction():
                    for write in writes:
                        self._ledger.apply(write)
            except Exception as exc:  # sqlite3 or OS: the disk is full, or the ledger is gone
                self._break(exc, writes)
        ok = self.broken is None
        for waiter in waiters:
            if not waiter.done():
                waiter.set_result(ok)

    def _break(self, exc: Exception, writes: list[Write]) -> None:
        self.broken = exc
        self._keep(writes)
        self._on_broken(
            f"{self._ledger.path} cannot be written ({exc}); no more rows are sent, and the "
            "answers already received are kept to be recorded when the same command runs "
            "again: free some space first"
        )

    def _keep(self, writes: list[Write]) -> None:
        answers = [w for w in writes if w["op"] != "in_flight"]  # those requests never left
        if answers and not (self._journal is not None and self._journal.append(answers)):
            self.lost += len(answers)
