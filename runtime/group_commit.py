"""Group commit: items that arrive while a transaction commits wait and commit together in
the next one; alone, an item commits at once. One home for what run submissions
(``runtime.submissions``) and run endings (``runtime.endings``) share.

A batch that fails is retried one item at a time, so one bad item fails alone and every
caller gets its own result or its own error.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any, Generic, TypeVar

logger = logging.getLogger(__name__)
I = TypeVar("I")  # noqa: E741
R = TypeVar("R")


class GroupCommit(Generic[I, R]):
    """Commits items through ``commit_batch`` (one transaction for a list of items, one
    result per item, in order), batching the items that arrive together.

    ``withdraw_on_cancel``: a caller cancelled while its item still waits for the next
    transaction takes it back (nothing is written); otherwise the item commits anyway.
    Once its transaction has begun, an item commits whatever happens to its caller.
    """

    def __init__(
        self,
        commit_batch: Callable[[list[I]], Awaitable[list[R]]],
        *,
        name: str,
        withdraw_on_cancel: bool,
    ) -> None:
        self._commit_batch = commit_batch
        self._name = name
        self._withdraw_on_cancel = withdraw_on_cancel
        self._waiting: list[tuple[I, asyncio.Future[R]]] = []
        self._task: asyncio.Task[None] | None = None

    @property
    def waiting(self) -> int:
        """Items queued for the next transaction."""
        return len(self._waiting)

    async def commit(self, item: I) -> R:
        """Commit ``item`` (with those arriving meanwhile); its result.

        Raises:
            Exception: what committing ``item`` alone raised (nothing of it was written).
        """
        future: asyncio.Future[R] = asyncio.get_running_loop().create_future()
        entry = (item, future)
        self._waiting.append(entry)
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._drain(), name=self._name)
        try:
            return await asyncio.shield(future)
        except asyncio.CancelledError:
            if self._withdraw_on_cancel and entry in self._waiting:
                self._waiting.remove(entry)
                future.cancel()
            raise

    async def _drain(self) -> None:
        while self._waiting:
            batch, self._waiting = self._waiting, []
            if len(batch) > 1:
                try:
                    results = await self._commit_batch([item for item, _ in batch])
                except Exception as exc:
                    logger.warning(
                        "%s: %d together failed (%r); one at a time", self._name, len(batch), exc
                    )
                else:
                    for (_, future), result in zip(batch, results, strict=True):
                        _settle(future, result)
                    continue
            for item, future in batch:
                try:
                    (result,) = await self._commit_batch([item])
                except Exception as exc:
                    _settle(future, exc)
                else:
                    _settle(future, result)


def _settle(future: asyncio.Future[Any], outcome: Any) -> None:
    if future.done():
        return
    if isinstance(outcome, BaseException):
        future.set_exception(outcome)
    else:
        future.set_result(outcome)
