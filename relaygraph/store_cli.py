"""What the store-backed subcommands (keys, feedback, audit, ...) share: run one piece of
async work against the migrated store of the configured data directory."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, TypeVar

import typer
from rich.console import Console
from rich.markup import escape

if TYPE_CHECKING:
    from store import Database

EXIT_BAD_INPUT = 2
T = TypeVar("T")
_err = Console(stderr=True, highlight=False)


def with_store(
    work: Callable[[Database], Awaitable[T]], expected: tuple[type[Exception], ...] = ()
) -> T:
    """Run ``work`` against the store. Configuration and store errors, and the ``expected``
    ones, become one line on stderr and exit code 2."""
    from pydantic import ValidationError

    from runtime.observability import configure_observability
    from runtime.settings import Settings, configuration_error_message
    from store import Database, StoreError, migrate

    async def main() -> T:
        settings = Settings()
        configure_observability(settings)
        migrate(settings.store_url)
        db = Database(settings.store_url, busy_timeout_ms=settings.sqlite_busy_timeout_ms)
        try:
            return await work(db)
        finally:
            await db.dispose()

    try:
        return asyncio.run(main())
    except ValidationError as exc:
        message = configuration_error_message(exc)
    except Exception as exc:
        if not isinstance(exc, (StoreError, *expected)):
            raise
        message = str(exc)
    _err.print(f"[bold red]error:[/] {escape(message)}", soft_wrap=True)
    raise typer.Exit(EXIT_BAD_INPUT)
