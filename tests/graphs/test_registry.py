"""User graphs registered in settings run under relaygraph's checkpointer and limits."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest

from graphs.registry import GraphLoadError, read_graphs_file
from identity import local_principal
from runtime.runs import Runner, RunRequest
from runtime.settings import Settings
from runtime.system import build_graph_registry, open_system

USER_GRAPH = textwrap.dedent(
    """
    from typing import Annotated, TypedDict
    from langchain_core.messages import AIMessage, AnyMessage
    from langgraph.graph import END, START, StateGraph
    from langgraph.graph.message import add_messages

    GRAPH_VERSION = "7"

    class State(TypedDict, total=False):
        messages: Annotated[list[AnyMessage], add_messages]
        ticks: int

    def tick(state: State) -> dict:
        ticks = state.get("ticks", 0) + 1
        return {"ticks": ticks, "messages": [AIMessage(content=f"tick {ticks}")]}

    def more(state: State) -> str:
        return "tick" if state["ticks"] < 5 else END

    builder = StateGraph(State)
    builder.add_node("tick", tick)
    builder.add_edge(START, "tick")
    builder.add_conditional_edges("tick", more)
    graph = builder.compile()  # compiled without a checkpointer: relaygraph adds its own

    def make_graph():
        return builder
    """
)


@pytest.fixture
def user_graph_file(tmp_path: Path) -> Path:
    path = tmp_path / "my_graphs.py"
    path.write_text(USER_GRAPH, encoding="utf-8")
    return path


@pytest.mark.parametrize("attr", ["graph", "make_graph"])
async def test_user_graph_runs_with_our_checkpointer_and_limits(
    data_dir: Path, user_graph_file: Path, attr: str
) -> None:
    settings = Settings(data_dir=data_dir, graphs={"ticker": f"{user_graph_file}:{attr}"})
    principal = local_principal()
    async with open_system(settings) as system:
        assert system.graphs.get("ticker").version == "7"
        runner = Runner(system)
        first = await runner.run(
            RunRequest(
                principal=principal, assistant_id="ticker", input_text="go", limits={"max_steps": 3}
            )
        )
        assert (first.status, first.stop_reason) == ("limit", "step_limit")
        entry = system.graphs.get("ticker")
        state = await entry.compile(system.checkpointer).aget_state(
            {"configurable": {"thread_id": first.thread_id}}
        )
        assert state.values["ticks"] == 3  # checkpointed by relaygraph's saver
        done = await runner.run(
            RunRequest(principal=principal, thread_id=first.thread_id, limits={"max_steps": 10})
        )
        assert (done.status, done.final_message) == ("success", "tick 5")


def test_graphs_file_resolves_paths_beside_it(tmp_path: Path, user_graph_file: Path) -> None:
    config = tmp_path / "langgraph.json"
    config.write_text(json.dumps({"graphs": {"ticker": "./my_graphs.py:graph"}}))
    assert read_graphs_file(config) == {"ticker": f"{user_graph_file}:graph"}
    registry = build_graph_registry(Settings(data_dir=tmp_path / "d", graphs_file=config))
    assert registry.ids() == ["agent", "planner", "ticker", "triage"]


@pytest.mark.parametrize(
    ("target", "message"),
    [
        ("nowhere_module_xyz:graph", "cannot import"),
        ("{file}:missing", "no attribute 'missing'"),
        ("{file}:GRAPH_VERSION", "expected a StateGraph"),
        ("no-colon", "not module:attr"),
    ],
)
def test_bad_user_graphs_fail_clearly(
    tmp_path: Path, user_graph_file: Path, target: str, message: str
) -> None:
    settings = Settings(data_dir=tmp_path, graphs={"bad": target.format(file=user_graph_file)})
    with pytest.raises(GraphLoadError, match=message):
        build_graph_registry(settings)


CONTEXT_GRAPH = textwrap.dedent(
    """
    from typing import Annotated, TypedDict
    from langchain_core.messages import AIMessage, AnyMessage
    from langgraph.graph import START, StateGraph
    from langgraph.graph.message import add_messages
    from langgraph.runtime import Runtime
    from pydantic import BaseModel, ConfigDict

    class ASSISTANT_OPTIONS(BaseModel):
        model_config = ConfigDict(extra="forbid")
        greeting: str = "hello"

    class State(TypedDict, total=False):
        messages: Annotated[list[AnyMessage], add_messages]

    async def greet(state: State, runtime: Runtime) -> dict:
        ctx = runtime.context
        steps = len(ctx.tool_names) > 0 and ctx.limits.max_steps
        text = f"{ctx.options.get('greeting', 'hello')} {ctx.principal.user}: {steps}"
        return {"messages": [AIMessage(content=text)]}

    builder = StateGraph(State)
    builder.add_node("greet", greet)
    builder.add_edge(START, "greet")
    graph = builder
    """
)


async def test_user_graphs_get_the_run_context_and_their_options_are_checked(
    data_dir: Path, tmp_path: Path
) -> None:
    from graphs.assistants import AssistantCatalog

    path = tmp_path / "context_graph.py"
    path.write_text(CONTEXT_GRAPH, encoding="utf-8")
    settings = Settings(
        data_dir=data_dir,
        graphs={"greeter": f"{path}:graph"},
        assistants={"polite": {"graph_id": "greeter", "options": {"greeting": "good day"}}},
    )
    async with open_system(settings) as system:
        summary = await Runner(system).run(
            RunRequest(
                principal=local_principal(user="ann"), assistant_id="polite", input_text="hi"
            )
        )
        assert summary.status == "success", summary.final_message
        assert summary.final_message == f"good day ann: {settings.max_steps}"

        with pytest.raises(
            ValueError, match=r"greeter.*greting: Extra inputs.*understands: greeting \(str\)"
        ):
            AssistantCatalog.build(
                system.graphs, {"bad": {"graph_id": "greeter", "options": {"greting": "x"}}}
            )
        with pytest.raises(ValueError, match="review_plan"):
            AssistantCatalog.build(
                system.graphs, {"p": {"graph_id": "planner", "options": {"review_plan": "maybe"}}}
            )
