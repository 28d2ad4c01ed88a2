"""The ``relaygraph`` command line.

Heavy imports (LangGraph, providers, SQLAlchemy) happen inside commands so that
``--help`` stays fast.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import sys
from collections.abc import AsyncIterator, Callable
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape

if TYPE_CHECKING:
    from identity import Principal
    from runtime.runs import RunRequest, RunSummary
    from runtime.settings import Settings

app = typer.Typer(
    name="relaygraph",
    help="Durable, permissioned agent runs with human review, on embedded defaults.",
    no_args_is_help=True,
    add_completion=False,
)
out = Console(highlight=False)
err = Console(stderr=True, highlight=False)

EXIT_OK = 0
EXIT_ERROR = 1
EXIT_BAD_INPUT = 2
EXIT_WAITING = 3
EXIT_LIMIT = 4
EXIT_CANCELLED = 5
EXIT_CODES = {
    "success": EXIT_OK,
    "interrupted": EXIT_WAITING,
    "limit": EXIT_LIMIT,
    "error": EXIT_ERROR,
    "cancelled": EXIT_CANCELLED,
}

TenantOpt = Annotated[str, typer.Option("--tenant", help="Tenant to act in.")]
UserOpt = Annotated[str, typer.Option("--user", help="User to act as.")]
JsonOpt = Annotated[bool, typer.Option("--json", help="One JSON event per line.")]
MaxStepsOpt = Annotated[int | None, typer.Option("--max-steps", help="Model calls for this run.")]
MaxToolsOpt = Annotated[
    int | None, typer.Option("--max-tool-calls", help="Tool calls for this run.")
]
MaxWallOpt = Annotated[
    float | None, typer.Option("--max-wall-seconds", help="Wall time for this run.")
]


class CliError(Exception):
    """Bad input or configuration: printed as one clear line, exit code 2."""


def _settings() -> Settings:
    from pydantic import ValidationError

    from runtime.observability import configure_observability
    from runtime.settings import Settings, configuration_error_message

    try:
        settings = Settings()
    except ValidationError as exc:
        raise CliError(configuration_error_message(exc)) from exc
    configure_observability(settings)
    return settings


def _principal(tenant: str, user: str) -> Principal:
    from identity import local_principal

    return local_principal(tenant=tenant, user=user)


def _limits(max_steps: int | None, max_tools: int | None, max_wall: float | None) -> dict[str, Any]:
    raw = {"max_steps": max_steps, "max_tool_calls": max_tools, "max_wall_seconds": max_wall}
    return {key: value for key, value in raw.items() if value is not None}


def _known_errors() -> tuple[type[BaseException], ...]:
    from graphs.registry import GraphLoadError
    from runtime.runs import RunRequestError
    from store import StoreError

    return (CliError, RunRequestError, StoreError, GraphLoadError, ValueError)


def _guarded(body: Callable[[], int]) -> None:
    """Run a command body, turning known errors into a message and exit code 2."""
    from pydantic import ValidationError

    from runtime.settings import configuration_error_message

    try:
        code = body()
    except _known_errors() as exc:
        message = str(exc)
        if isinstance(exc, ValidationError) and exc.title == "Settings":
            message = configuration_error_message(exc)
        err.print(f"[bold red]error:[/] {escape(message)}", markup=True, soft_wrap=True)
        raise typer.Exit(EXIT_BAD_INPUT) from None
    raise typer.Exit(code)


async def _execute(
    request: RunRequest, *, as_json: bool, interactive: bool, settings: Settings
) -> int:
    from runtime.runs import Runner, RunRequest
    from runtime.system import open_system

    async with open_system(settings) as system:
        runner = Runner(system)
        if request.assistant_id:
            await _check_assistant(runner, request.principal.tenant, request.assistant_id)
        while True:
            summary = await _stream_run(runner, request, as_json=as_json)
            if not (interactive and summary.status == "interrupted"):
                break
            decision = _ask_decision(summary.interrupt)
            request = RunRequest(
                principal=request.principal,
                thread_id=summary.thread_id,
                decisions=decision,
                durability=request.durability,
                if_not_exists="reject",
            )
    if as_json:
        _emit_json(summary.to_dict())
    else:
        _print_summary(summary)
    return EXIT_CODES[summary.status]


async def _check_assistant(runner: Any, tenant: str, assistant_id: str) -> None:
    """Raises: CliError naming the tenant's assistants when ``assistant_id`` is none of them."""
    from graphs.assistants import AssistantNotFound

    try:
        await runner.assistants.resolve(tenant, assistant_id)
    except AssistantNotFound:
        known = [a["assistant_id"] for a in await runner.assistants.search(tenant, limit=1000)]
        raise CliError(
            f"there is no assistant {assistant_id!r}; choose one of: {', '.join(known)}"
        ) from None


async def _stream_run(runner: Any, request: RunRequest, *, as_json: bool) -> RunSummary:
    summary = None
    async for event in runner.stream(request):
        if event["event"] == "end":
            summary = event["summary"]
        elif as_json:
            _emit_json(event)
        else:
            _print_event(event)
    assert summary is not None
    return summary


def _emit_json(payload: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(payload, ensure_ascii=False, default=str) + "\n")
    sys.stdout.flush()


def _print_event(event: dict[str, Any]) -> None:
    if event["event"] == "metadata":
        out.print(f"[dim]thread {event['thread_id']} · run {event['run_id']}[/]", soft_wrap=True)
        return
    for node, update in (event.get("data") or {}).items():
        if node == "__interrupt__":
            continue
        for message in (update or {}).get("messages", []) if isinstance(update, dict) else []:
            _print_message(message)


def _print_message(message: dict[str, Any]) -> None:
    if message.get("type") == "ai":
        if message.get("content"):
            # Model text is not markup: "[step 1]" must print as written.
            out.print(f"[bold cyan]assistant[/] {escape(str(message['content']))}")
        for call in message.get("tool_calls") or []:
            args = json.dumps(call.get("args"), ensure_ascii=False)
            out.print(f"  [yellow]→ {call['name']}[/] {args}")
    elif message.get("type") == "tool":
        style = "red" if message.get("status") == "error" else "green"
        content = str(message.get("content"))
        if len(content) > 300:
            content = content[:297] + "..."
        out.print(f"  [{style}]← {message.get('name')}[/] {content}", soft_wrap=True)


def invoked_command() -> str:
    """How the user started this CLI, for hints they can paste: ``relaygraph`` when that
    is the one on PATH, else the path they typed (``.venv/bin/relaygraph``), or
    ``PYTHON -m relaygraph``."""
    import shlex
    import shutil
    from pathlib import Path

    typed = sys.argv[0] if sys.argv else ""
    name = Path(typed).name
    if name == "__main__.py":
        return f"{shlex.quote(sys.executable)} -m relaygraph"
    if Path(typed).stem != "relaygraph" or os.sep not in typed:
        return "relaygraph"
    on_path = shutil.which("relaygraph")
    with contextlib.suppress(OSError):
        if on_path and Path(on_path).samefile(typed):
            return "relaygraph"
    return shlex.quote(typed)


def _print_summary(summary: RunSummary) -> None:
    if summary.status == "interrupted" and isinstance(summary.interrupt, dict):
        out.print("[bold magenta]waiting for a reviewer[/]")
        command = escape(invoked_command())
        for action in summary.interrupt.get("action_requests", []):
            args = json.dumps(action.get("args"), ensure_ascii=False)
            out.print(f"  {action.get('name')} {args}\n  [dim]{action.get('description')}[/]")
        out.print(
            f"  approve: [bold]{command} resume {summary.thread_id} --approve[/]\n"
            f"  reject:  [bold]{command} resume {summary.thread_id} --reject 'why'[/]\n"
            f"  edit:    [bold]{command} resume {summary.thread_id} --edit "
            "'{\"args\": {...}}'[/]",
            soft_wrap=True,  # commands to paste: one line each, however narrow the terminal
        )
        return
    colour = {"success": "green", "limit": "yellow"}.get(summary.status, "red")
    out.print(f"[bold {colour}]{summary.status}[/] ({summary.stop_reason})")
    if summary.final_message:
        out.print(summary.final_message, soft_wrap=True, markup=False)


def _ask_decision(interrupt: Any) -> dict[str, Any]:
    from rich.prompt import Prompt

    decisions: list[dict[str, Any]] = []
    actions = interrupt.get("action_requests", []) if isinstance(interrupt, dict) else []
    for action in actions:
        out.print(
            f"[bold magenta]approval needed[/] {action.get('name')} "
            f"{json.dumps(action.get('args'), ensure_ascii=False)}\n"
            f"[dim]{action.get('description')}[/]"
        )
        choice = Prompt.ask("approve / edit / reject", choices=["approve", "edit", "reject"])
        if choice == "approve":
            decisions.append({"type": "approve"})
        elif choice == "reject":
            decisions.append({"type": "reject", "message": Prompt.ask("why")})
        else:
            while True:
                raw = Prompt.ask("new arguments (JSON)", default=json.dumps(action.get("args")))
                try:
                    args = json.loads(raw)
                except json.JSONDecodeError as exc:
                    err.print(f"not JSON: {exc}")
                    continue
                if isinstance(args, dict):
                    break
                err.print("arguments must be a JSON object")
            decisions.append(
                {"type": "edit", "edited_action": {"name": action.get("name"), "args": args}}
            )
    return {"decisions": decisions}


def _interactive(as_json: bool) -> bool:
    return not as_json and sys.stdin.isatty() and sys.stdout.isatty()


@app.command()
def run(
    text: Annotated[str, typer.Argument(help="What to ask the assistant.")],
    assistant: Annotated[str | None, typer.Option("--assistant", help="Assistant id.")] = None,
    thread: Annotated[
        str | None, typer.Option("--thread", help="Continue (or create) this thread.")
    ] = None,
    as_json: JsonOpt = False,
    max_steps: MaxStepsOpt = None,
    max_tool_calls: MaxToolsOpt = None,
    max_wall_seconds: MaxWallOpt = None,
    tenant: TenantOpt = "default",
    user: UserOpt = "local",
) -> None:
    """Run the assistant on TEXT in the foreground, streaming its steps.

    Exit codes: 0 completed, 3 waiting for a human, 4 stopped by a limit, 2 bad input, 1 error.
    """

    def body() -> int:
        from runtime.runs import RunRequest

        if not text.strip():
            raise CliError("TEXT is empty: say what the assistant should do")
        settings = _settings()
        request = RunRequest(
            principal=_principal(tenant, user),
            assistant_id=assistant,
            thread_id=thread,
            input_text=text,
            limits=_limits(max_steps, max_tool_calls, max_wall_seconds),
        )
        return asyncio.run(
            _execute(request, as_json=as_json, interactive=_interactive(as_json), settings=settings)
        )

    _guarded(body)


@app.command()
def resume(
    thread: Annotated[str, typer.Argument(help="Thread to resume.")],
    approve: Annotated[bool, typer.Option("--approve", help="Approve the pending action.")] = False,
    reject: Annotated[
        str | None, typer.Option("--reject", help="Reject the pending action, saying why.")
    ] = None,
    edit: Annotated[
        str | None,
        typer.Option("--edit", help="Approve with new arguments: '{\"args\": {...}}'."),
    ] = None,
    as_json: JsonOpt = False,
    max_steps: MaxStepsOpt = None,
    max_tool_calls: MaxToolsOpt = None,
    max_wall_seconds: MaxWallOpt = None,
    tenant: TenantOpt = "default",
    user: UserOpt = "local",
) -> None:
    """Answer a pending interrupt, or continue a thread whose run died or hit a limit."""

    def body() -> int:
        from runtime.runs import RunNotFound, RunRequest

        chosen = [
            flag
            for flag, given in (
                ("--approve", approve),
                ("--reject", reject is not None),
                ("--edit", edit is not None),
            )
            if given
        ]
        if len(chosen) > 1:
            raise CliError(f"choose one decision, not {' and '.join(chosen)}")
        decisions = None
        if approve:
            decisions = {"decisions": [{"type": "approve"}]}
        elif reject is not None:
            decisions = {"decisions": [{"type": "reject", "message": reject}]}
        elif edit is not None:
            decisions = {"decisions": [_edit_decision(edit)]}
        settings = _settings()
        request = RunRequest(
            principal=_principal(tenant, user),
            thread_id=thread,
            decisions=decisions,
            limits=_limits(max_steps, max_tool_calls, max_wall_seconds),
            if_not_exists="reject",
        )
        try:
            return asyncio.run(
                _execute(
                    request, as_json=as_json, interactive=_interactive(as_json), settings=settings
                )
            )
        except RunNotFound as exc:  # most often a thread another tenant's key created
            raise CliError(
                f"{exc} in tenant {tenant!r}; pass the thread's tenant with --tenant "
                "(`relaygraph threads --tenant T` lists a tenant's threads)"
            ) from None

    _guarded(body)


def _edit_decision(raw: str) -> dict[str, Any]:
    try:
        value = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise CliError(f"--edit is not JSON: {exc}") from exc
    if not isinstance(value, dict) or not isinstance(value.get("args"), dict):
        raise CliError('--edit needs a JSON object like {"args": {"note_id": 3}}')
    action: dict[str, Any] = {"args": value["args"]}
    if "name" in value:
        action["name"] = value["name"]
    return {"type": "edit", "edited_action": action}


@app.command()
def tools(
    as_json: Annotated[bool, typer.Option("--json", help="Print a JSON list.")] = False,
) -> None:
    """List the registered tools with their risk, scope and approval policy."""

    def body() -> int:
        from tools import BUILTIN_TOOLS, ToolRegistry

        registry = ToolRegistry(BUILTIN_TOOLS)
        rows: list[dict[str, Any]] = [
            {
                "name": tool.name,
                "description": tool.description,
                "risk": tool.risk,
                "scope": tool.scope,
                "approval": tool.approval_label(),
                "input_schema": tool.input_schema(),
            }
            for tool in registry
        ]
        if as_json:
            _emit_json_list(rows)
            return EXIT_OK
        from rich.table import Table

        table = Table()
        # Names are what people type (RELAYGRAPH_MCP_TOOLS, assistants' tool lists): never
        # shorten them, however narrow the terminal; the description wraps instead.
        longest = max((len(row["name"]) for row in rows), default=4)
        table.add_column("name", no_wrap=True, min_width=longest)
        for header in ("risk", "scope", "approval", "description"):
            table.add_column(header)
        for row in rows:
            table.add_row(
                row["name"], row["risk"], row["scope"], row["approval"], row["description"]
            )
        out.print(table)
        return EXIT_OK

    _guarded(body)


def _emit_json_list(rows: list[dict[str, Any]]) -> None:
    sys.stdout.write(json.dumps(rows, ensure_ascii=False, indent=2) + "\n")
    sys.stdout.flush()


@app.command()
def migrate(
    revision: Annotated[
        str, typer.Argument(help="Target revision (head, base, -1, 0001...).")
    ] = "head",
    down: Annotated[bool, typer.Option("--down", help="Downgrade to REVISION.")] = False,
) -> None:
    """Apply (or with --down, revert) the store's database migrations."""

    def body() -> int:
        from store import current_revision, downgrade
        from store import migrate as upgrade
        from store.database import ensure_writable_dir, sqlite_path

        settings = _settings()
        path = sqlite_path(settings.store_url)
        if path is not None:
            ensure_writable_dir(path.parent)
        (downgrade if down else upgrade)(settings.store_url, revision)
        out.print(f"store at revision {current_revision(settings.store_url) or 'base'}")
        return EXIT_OK

    _guarded(body)


@app.command()
def demo(
    tenant: TenantOpt = "default",
    user: UserOpt = "local",
) -> None:
    """A guided offline tour: save a note, find it, then ask to delete it, which waits for
    a reviewer. Works with no API key (the scripted demo model)."""

    def body() -> int:
        from runtime.runs import RunRequest
        from runtime.settings import DEMO_MODEL

        settings = _settings()
        if settings.model is None and settings.openai_api_key is None:
            settings = settings.model_copy(update={"model": DEMO_MODEL})
        principal = _principal(tenant, user)
        out.print(
            f"[bold]relaygraph demo[/] · data in {settings.data_dir} · "
            f"model {settings.default_model}\n"
        )

        async def tour() -> int:
            from runtime.runs import Runner
            from runtime.system import open_system

            async with open_system(settings) as system:
                runner = Runner(system)
                thread_id = None
                summary = None
                for text in (
                    "Remember that the launch review is on Friday at 10:00",
                    "Find my notes about the launch",
                    "Delete the note about the launch",
                ):
                    out.print(f"[bold]you[/] {text}")
                    request = RunRequest(principal=principal, thread_id=thread_id, input_text=text)
                    summary = await _stream_run(runner, request, as_json=False)
                    thread_id = summary.thread_id
                    _print_summary(summary)
                    out.print()
                assert summary is not None
                return EXIT_OK if summary.status in ("success", "interrupted") else EXIT_ERROR

        return asyncio.run(tour())

    _guarded(body)


@app.command()
def serve(
    host: Annotated[str, typer.Option("--host", help="Interface to bind.")] = "127.0.0.1",
    port: Annotated[
        int, typer.Option("--port", min=1, max=65535, help="Port to listen on.")
    ] = 8000,
    workers: Annotated[
        int, typer.Option("--workers", min=0, help="In-process run workers (concurrent runs).")
    ] = 4,
    no_workers: Annotated[
        bool, typer.Option("--no-workers", help="Serve the API only; `relaygraph worker` runs.")
    ] = False,
) -> None:
    """Serve the HTTP API (LangGraph-Server-compatible, under /api/v1) with run workers."""

    def body() -> int:
        import uvicorn

        from api.app import create_app

        settings = _settings()
        from relaygraph.addresses import unbindable

        in_use = unbindable(host, port, only_in_use=True)  # before start-up's work
        if in_use is not None:
            raise CliError(in_use)
        application = create_app(settings, workers=0 if no_workers else workers)
        # The banner is printed once start-up succeeded, not before a failure.
        startup = _StartupFailure(
            banner=f"relaygraph API on http://{host}:{port}/api/v1 (docs: /api/v1/docs)"
        )
        application.router.lifespan_context = startup.watch(application.router.lifespan_context)
        uvicorn_log = logging.getLogger("uvicorn.error")
        uvicorn_log.addFilter(startup)
        try:
            # log_config=None: uvicorn's records go through our structured logging.
            uvicorn.run(
                application,
                host=host,
                port=port,
                log_level=settings.log_level.lower(),
                log_config=None,
                lifespan="on",
            )
        except SystemExit:
            if startup.error is None:
                unusable = unbindable(host, port)
                if unusable is None:
                    raise
                startup.error = CliError(unusable)
        finally:
            uvicorn_log.removeFilter(startup)
        if startup.error is not None:  # one line and exit 2, like every other command
            raise startup.error
        return EXIT_OK

    _guarded(body)


class _StartupFailure(logging.Filter):
    """Catches a known configuration error raised while the API starts (a bad rate
    limit, graph or data directory) so that ``serve`` reports it as one line, and keeps
    uvicorn from logging its traceback first."""

    def __init__(self, banner: str | None = None) -> None:
        super().__init__()
        self.error: BaseException | None = None
        self.banner = banner

    def watch(self, lifespan: Callable[[Any], Any]) -> Callable[[Any], Any]:
        @contextlib.asynccontextmanager
        async def watched(app: Any) -> AsyncIterator[Any]:
            started = False
            try:
                async with lifespan(app) as state:
                    started = True
                    if self.banner:
                        err.print(self.banner)
                    yield state
            except _known_errors() as exc:
                if not started:
                    self.error = exc
                raise

        return watched

    def filter(self, record: logging.LogRecord) -> bool:
        if "error while attempting to bind" in record.getMessage():
            return False  # reported as one line by ``serve`` (``relaygraph.addresses``)
        return self.error is None or record.levelno < logging.ERROR


@app.command()
def worker(
    concurrency: Annotated[
        int, typer.Option("--concurrency", min=1, help="Runs this worker executes at once.")
    ] = 4,
    metrics_port: Annotated[
        int | None,
        typer.Option("--metrics-port", help="Serve Prometheus /metrics on 127.0.0.1:PORT."),
    ] = None,
) -> None:
    """Execute queued runs (for `relaygraph serve --no-workers` or more capacity)."""

    def body() -> int:
        import signal

        from runtime.runs import Runner
        from runtime.system import open_system
        from runtime.worker import Worker

        settings = _settings()
        if metrics_port is not None:
            from prometheus_client import start_http_server

            start_http_server(metrics_port, addr="127.0.0.1")

        async def work() -> None:
            async with open_system(settings) as system:
                running = Worker(Runner(system), concurrency=concurrency)
                stop = asyncio.Event()
                loop = asyncio.get_running_loop()
                for signum in (signal.SIGINT, signal.SIGTERM):
                    loop.add_signal_handler(signum, stop.set)
                running.start()
                err.print(f"relaygraph worker {running.owner} waiting for runs")
                await stop.wait()
                await running.stop()

        asyncio.run(work())
        return EXIT_OK

    _guarded(body)


def _register_subcommands() -> None:
    from relaygraph.threads_cli import threads_command

    app.command("threads")(threads_command)
    from relaygraph.keys_cli import keys_app

    app.add_typer(keys_app, name="keys")
    from relaygraph.credentials_cli import credentials_app  # issue 6: bring your own key

    app.add_typer(credentials_app, name="credentials")
    from relaygraph import memory_cli  # issue 5: GDPR export, erase, retention, consent

    app.command("export")(memory_cli.export_command)
    app.command("erase")(memory_cli.erase_command)
    app.add_typer(memory_cli.retention_app, name="retention")
    app.add_typer(memory_cli.consent_app, name="consent")
    from relaygraph.usage_cli import usage_app  # issue 6: model usage and cost

    app.add_typer(usage_app, name="usage")
    from relaygraph.approvals_cli import approvals_app
    from relaygraph.audit_cli import audit_app

    app.add_typer(audit_app, name="audit")
    app.add_typer(approvals_app, name="approvals")
    from relaygraph.webhooks_cli import webhooks_app

    app.add_typer(webhooks_app, name="webhooks")
    from relaygraph.feedback_cli import feedback_app

    app.add_typer(feedback_app, name="feedback")
    from relaygraph.eval_cli import eval_command  # issue 9: evals

    app.command("eval")(eval_command)
    from relaygraph.mcp_cli import mcp_command

    app.command("mcp")(mcp_command)
    from relaygraph.scan_cli import scan_command

    app.command("scan")(scan_command)
    from relaygraph.ingest_cli import ingest_command  # issue 5: documents

    app.command("ingest")(ingest_command)
    from relaygraph.backup_cli import backup_command, restore_command  # issue 10

    app.command("backup")(backup_command)
    app.command("restore")(restore_command)


_register_subcommands()


def main() -> None:
    app()


if __name__ == "__main__":
    main()
