"""Group commit of run submissions: submissions that arrive while one commits, commit
together.

A submission's rows (its thread, stamped or created, and its run, leased or queued) are
one write. When many arrive at once (a thousand runs started together), each in its own
transaction queues on SQLite's single writer, and each transaction's handful of
statements waits on the busy event loop between thread hops while it holds the write
lock: measured here, 1,000 submissions held it ~11.6 ms each and waited ~5 s on average.
Here the submissions that arrive while one commits wait and then run one after another in
the next transaction; the ORM flushes their new rows together (executemany), and every
submission sees the ones before it (multitask strategies apply in arrival order). Alone, a
submission commits at once (``runtime.group_commit``).
"""

from __future__ import annotations

import contextlib
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from runtime.group_commit import GroupCommit
from store import Database

T = TypeVar("T")
Write = Callable[[Any], Awaitable[T]]
"""A submission's writes in the given session; what it returns goes to its caller."""


class Submissions(GroupCommit[Write[T], T]):
    """Commits submissions' writes, batching those that arrive together. A caller
    cancelled while its write waits for the next transaction withdraws it (nothing is
    written); once that transaction has begun, the write commits with it."""

    def __init__(
        self, db: Database, writer: Callable[[], contextlib.AbstractAsyncContextManager[Any]]
    ) -> None:
        super().__init__(self._commit, name="run submissions", withdraw_on_cancel=True)
        self.db = db
        self.writer = writer
        """The lock this process's writers queue on (SQLite), taken around each commit."""

    async def _commit(self, writes: list[Write[T]]) -> list[T]:
        async with self.writer(), self.db.transaction() as session:
            return [await write(session) for write in writes]
