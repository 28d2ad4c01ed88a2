"""The graph registry: built-in graphs plus user graphs declared in settings.

A user graph is ``package.module:attr`` or ``path/to/file.py:attr`` where ``attr``
is a ``StateGraph``, a compiled graph, or a factory returning either. relaygraph
compiles it with its own checkpointer, so user graphs get the same durability,
limits and API as the built-ins, and the same ``RunContext`` (``runtime.context``: the
principal, the tool executor, the assistant's model and limits). Its version is the
module's ``GRAPH_VERSION`` (or ``__version__``): threads pin it, and refuse to run on
another version. A module may declare ``ASSISTANT_OPTIONS``, a pydantic model of the
assistant ``options`` it understands; assistants are checked against it when they are
created or changed (and at start-up for configured ones), not at their first run.
"""

from __future__ import annotations

import importlib
import importlib.util
import inspect
import json
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from langgraph.checkpoint.base import BaseCheckpointSaver
from langgraph.graph import StateGraph
from langgraph.pregel import Pregel
from pydantic import BaseModel, ConfigDict, ValidationError

from graphs import agent, planner
from graphs.workflows import triage

Compiler = Callable[[BaseCheckpointSaver | None], Pregel[Any, Any, Any, Any]]


class GraphNotFound(LookupError):
    pass


class GraphLoadError(ValueError):
    """A user graph cannot be imported or is not a LangGraph graph."""


class InvalidOptions(ValueError):
    """An assistant's ``options`` do not fit its graph; the message lists the valid ones."""


class AgentOptions(BaseModel):
    """Assistant ``options`` the agent graph understands."""

    model_config = ConfigDict(extra="forbid")

    web_search: bool = False
    """Let the model search the web (results are untrusted content)."""
    memory: bool = False
    """Recall and remember long-term memories."""


class TriageOptions(BaseModel):
    """Assistant ``options`` the triage workflow understands."""

    model_config = ConfigDict(extra="forbid")

    memory: bool = False


@dataclass(frozen=True)
class GraphEntry:
    graph_id: str
    version: str
    compile: Compiler
    builtin: bool
    prompt: str | None = None
    """Name of the versioned prompt the graph's model node uses (None: no system prompt)."""
    source: str = ""
    options: type[BaseModel] | None = None
    """The assistant ``options`` this graph understands (None: not checked)."""

    @property
    def uses_run_context(self) -> bool:
        """Every graph, built-in or the user's, runs with the ``RunContext``."""
        return True

    def check_options(self, options: Mapping[str, Any]) -> None:
        """Raises:
        InvalidOptions: ``options`` do not validate against this graph's options model."""
        if self.options is None:
            return
        try:
            self.options.model_validate(dict(options))
        except ValidationError as exc:
            fields = ", ".join(
                f"{name} ({_type_name(field.annotation)})"
                for name, field in self.options.model_fields.items()
            )
            problems = "; ".join(
                f"{'.'.join(str(p) for p in error['loc']) or 'options'}: {error['msg']}"
                for error in exc.errors()
            )
            raise InvalidOptions(
                f"options for graph {self.graph_id!r} are invalid ({problems}); "
                f"it understands: {fields or 'no options'}"
            ) from None


class GraphRegistry:
    def __init__(self) -> None:
        self._graphs: dict[str, GraphEntry] = {}

    def register(self, entry: GraphEntry) -> None:
        if entry.graph_id in self._graphs:
            raise GraphLoadError(f"graph {entry.graph_id!r} is registered twice")
        self._graphs[entry.graph_id] = entry

    def get(self, graph_id: str, version: str | None = None) -> GraphEntry:
        """The graph ``graph_id``; with ``version``, only if that version is still installed.

        Raises:
            GraphNotFound: no such graph, or the pinned version is gone.
        """
        entry = self._graphs.get(graph_id)
        if entry is None:
            raise GraphNotFound(
                f"there is no graph {graph_id!r}; graphs: {', '.join(sorted(self._graphs))}"
            )
        if version is not None and version != entry.version:
            raise GraphNotFound(
                f"graph {graph_id!r} is at version {entry.version}, but this thread was started "
                f"on version {version}; start a new thread (or copy the thread) to use the new one"
            )
        return entry

    def ids(self) -> list[str]:
        return sorted(self._graphs)

    def __iter__(self):  # type: ignore[no-untyped-def]
        return iter(self._graphs[graph_id] for graph_id in self.ids())


def builtin_registry() -> GraphRegistry:
    registry = GraphRegistry()
    registry.register(
        GraphEntry(
            graph_id=agent.GRAPH_ID,
            version=agent.GRAPH_VERSION,
            compile=agent.compile_agent,
            builtin=True,
            prompt=agent.PROMPT,
            source="graphs.agent",
            options=AgentOptions,
        )
    )
    registry.register(
        GraphEntry(
            graph_id=planner.GRAPH_ID,
            version=planner.GRAPH_VERSION,
            compile=planner.compile_planner,
            builtin=True,
            prompt=planner.PROMPT,
            source="graphs.planner",
            options=planner.PlannerOptions,
        )
    )
    registry.register(
        GraphEntry(
            graph_id=triage.GRAPH_ID,
            version=triage.GRAPH_VERSION,
            compile=triage.compile_triage,
            builtin=True,
            prompt=triage.PROMPT,
            source="graphs.workflows.triage",
            options=TriageOptions,
        )
    )
    return registry


def read_graphs_file(path: Path) -> dict[str, str]:
    """The ``graphs`` map of a langgraph.json-style file; relative paths resolve beside it.

    Raises:
        GraphLoadError: the file is missing or malformed.
    """
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise GraphLoadError(f"cannot read graphs file {path}: {exc}") from exc
    graphs = data.get("graphs") if isinstance(data, dict) else None
    if not isinstance(graphs, dict) or not all(isinstance(v, str) for v in graphs.values()):
        raise GraphLoadError(f'{path}: expected {{"graphs": {{"name": "module:attr"}}}}')
    resolved = {}
    for name, target in graphs.items():
        location, _, attr = target.rpartition(":")
        if location.endswith(".py") and not Path(location).is_absolute():
            location = str((path.parent / location).resolve())
        resolved[name] = f"{location}:{attr}"
    return resolved


def load_user_graph(graph_id: str, target: str) -> GraphEntry:
    """Import ``target`` and wrap it as a registry entry.

    Raises:
        GraphLoadError: the target cannot be imported or is not a graph.
    """
    location, sep, attr = target.rpartition(":")
    if not sep or not location or not attr:
        raise GraphLoadError(f"graph {graph_id!r}: {target!r} is not module:attr or file.py:attr")
    try:
        if location.endswith(".py"):
            path = Path(location)
            if not path.exists():
                raise GraphLoadError(f"graph {graph_id!r}: file {path} does not exist")
            module_name = f"relaygraph_user_graph_{graph_id}"
            module_spec = importlib.util.spec_from_file_location(module_name, path)
            assert module_spec is not None and module_spec.loader is not None
            module = importlib.util.module_from_spec(module_spec)
            sys.modules[module_name] = module
            module_spec.loader.exec_module(module)
        else:
            module = importlib.import_module(location)
    except GraphLoadError:
        raise
    except Exception as exc:
        raise GraphLoadError(f"graph {graph_id!r}: cannot import {location!r}: {exc}") from exc
    if not hasattr(module, attr):
        raise GraphLoadError(f"graph {graph_id!r}: {location!r} has no attribute {attr!r}")
    obj = getattr(module, attr)
    version = str(getattr(module, "GRAPH_VERSION", None) or getattr(module, "__version__", "0"))

    def compile_user_graph(checkpointer: BaseCheckpointSaver | None) -> Pregel:
        return _as_compiled(graph_id, obj, checkpointer)

    _as_compiled(graph_id, obj, None)  # fail at load time, not at first run
    options = getattr(module, "ASSISTANT_OPTIONS", None)
    if options is not None and not (isinstance(options, type) and issubclass(options, BaseModel)):
        raise GraphLoadError(
            f"graph {graph_id!r}: ASSISTANT_OPTIONS must be a pydantic model class, "
            f"got {type(options).__name__}"
        )
    return GraphEntry(
        graph_id, version, compile_user_graph, builtin=False, source=target, options=options
    )


def _type_name(annotation: Any) -> str:
    return getattr(annotation, "__name__", None) or str(annotation).replace("typing.", "")


def _as_compiled(graph_id: str, obj: Any, checkpointer: BaseCheckpointSaver | None) -> Pregel:
    if isinstance(obj, StateGraph):
        return obj.compile(checkpointer=checkpointer, name=graph_id)
    if isinstance(obj, Pregel):
        return obj.copy(update={"checkpointer": checkpointer})
    if callable(obj) and not inspect.iscoroutinefunction(obj):
        made = obj()
        if isinstance(made, StateGraph | Pregel):
            return _as_compiled(graph_id, made, checkpointer)
    raise GraphLoadError(
        f"graph {graph_id!r}: expected a StateGraph, a compiled graph or a factory "
        f"returning one, got {type(obj).__name__}"
    )


def add_user_graphs(registry: GraphRegistry, graphs: Mapping[str, str]) -> None:
    for graph_id, target in graphs.items():
        registry.register(load_user_graph(graph_id, target))
