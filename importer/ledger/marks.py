"""The senders' ledger writes, batched."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from importer.ledger.store import Ledger
from importer.records import Failed


class Marks:
    """The senders' ledger writes, committed together once per event-loop turn.

    A commit costs more than the few updates a row needs, and unpaced, many workers move in the
    same turn. ``now`` returns only once its write is committed: a request never leaves before
    its row is durably in flight. ``later`` writes behind, at the end of the same turn (so an
    answer is on disk a moment after it arrived), in the order the writes were made.
    """

    def __init__(self, ledger: Ledger) -> None:
        self._ledger = ledger
        self._writes: list[tuple[Callable[..., None], tuple[Any, ...]]] = []
        self._waiters: list[asyncio.Future[None]] = []
        self._scheduled = False
        self._error: Exception | None = None

    async def in_flight(self, key: str, attempts: int) -> None:
        """Mark a row in flight; returns once that is committed, so its request may leave."""
        await self._now(self._ledger.mark_in_flight, key, attempts)

    def sent(self, key: str, event_uuid: str, sent_at: str, attempts: int) -> None:
        self._later(self._ledger.mark_sent, key, event_uuid, sent_at, attempts)

    def failed(self, key: str, failed: Failed, attempts: int, *, in_doubt: bool) -> None:
        self._later(self._mark_failed, key, failed, attempts, in_doubt)

    def pending(self, key: str) -> None:
        self._later(self._ledger.mark_pending, key)

    def send_again(self, key: str) -> None:
        """A row failed by a cause that was not its own (a wrong address): to send next run."""
        self._later(self._ledger.mark_unfailed, key)

    def flush(self) -> None:
        """Commit what is waiting; raise what went wrong in this or an earlier commit."""
        self._flush_soon()
        if self._error is not None:
            raise self._error

    def _mark_failed(self, key: str, failed: Failed, attempts: int, in_doubt: bool) -> None:
        self._ledger.mark_failed(key, failed, attempts, in_doubt=in_doubt)

    def _later(self, write: Callable[..., None], *args: Any) -> None:
        if self._error is not None:
            raise self._error
        self._writes.append((write, args))
        if not self._scheduled:
            self._scheduled = True
            asyncio.get_running_loop().call_soon(self._flush_soon)

    async def _now(self, write: Callable[..., None], *args: Any) -> None:
        self._later(write, *args)
        waiter = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        await waiter

    def _flush_soon(self) -> None:
        # Called by the event loop: an error is kept for the writers, not raised into the loop.
        self._scheduled = False
        writes, self._writes = self._writes, []
        waiters, self._waiters = self._waiters, []
        if writes and self._error is None:
            try:
                with self._ledger.transaction():
                    for write, args in writes:
                        write(*args)
            except Exception as exc:
                self._error = exc
        for waiter in waiters:
            if not waiter.done():
                if self._error is None:
                    waiter.set_result(None)
                else:
                    waiter.set_exception(self._error)
