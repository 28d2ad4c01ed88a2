"""BFCL through the agent graph: each record's functions become tools behind the gate, and
the calls the agent made are judged. A hand-made data directory in BFCL's format (two
records share a function name with different parameters) runs without the public data;
the real records run too when ../shared/datasets is there."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from evals.adapters import ADAPTERS
from evals.adapters.bfcl import function_tool, input_model, load_bfcl, without_nulls
from evals.models import MALFORMED, ORACLE
from evals.runner import EvalConfig, SuiteRunner, summarise
from tools.schemas import nulls_as_absent

DATASETS = Path(__file__).resolve().parents[3] / "shared" / "datasets"


def _area(name: str, params: dict[str, str]) -> dict[str, Any]:
    return {
        "name": name,
        "description": "Area of a shape.",
        "parameters": {
            "type": "dict",
            "properties": {key: {"type": kind} for key, kind in params.items()},
            "required": list(params),
        },
    }


def _write(folder: Path) -> Path:
    """A BFCL-format directory: ``geometry.area`` twice with different parameters."""
    (folder / "possible_answer").mkdir(parents=True)
    simple = [
        {
            "id": "simple_python_0",
            "question": [[{"role": "user", "content": "Area of a triangle, base 10, height 5?"}]],
            "function": [_area("geometry.area", {"base": "integer", "height": "float"})],
        },
        {
            "id": "simple_python_1",
            "question": [[{"role": "user", "content": "Area of a circle of radius 3?"}]],
            "function": [_area("geometry.area", {"radius": "float", "unit": "string"})],
        },
    ]
    answers = [
        {
            "id": "simple_python_0",
            "ground_truth": [{"geometry.area": {"base": [10], "height": [5.0]}}],
        },
        {
            "id": "simple_python_1",
            "ground_truth": [{"geometry.area": {"radius": [3.0], "unit": ["cm", ""]}}],
        },
    ]
    irrelevant = [
        {
            "id": "irrelevance_0",
            "question": [[{"role": "user", "content": "Who wrote Hamlet?"}]],
            "function": [_area("bmi.calculate", {"weight": "float", "height": "float"})],
        }
    ]
    lines = {
        "BFCL_v4_simple_python.json": simple,
        "possible_answer/BFCL_v4_simple_python.json": answers,
        "BFCL_v4_multiple.json": [],
        "BFCL_v4_irrelevance.json": irrelevant,
    }
    for name, records in lines.items():
        (folder / name).write_text("".join(json.dumps(r) + "\n" for r in records))
    return folder


def test_functions_become_gated_tools() -> None:
    spec = function_tool(_area("geometry.area", {"base": "integer", "height": "float"}))
    assert spec.name == "geometry_area" and spec.risk == "read"
    schema = spec.input_model.model_json_schema()
    assert schema["properties"]["height"]["type"] == "number"
    assert spec.input_model.model_validate({"base": 1, "height": 2.5})
    with pytest.raises(ValueError, match="base"):
        spec.input_model.model_validate({"base": "ten", "height": 2})
    # Strict tool schemas send left-out optional arguments as null: they count as left out.
    model = input_model("f", {"type": "dict", "properties": {"x": {"type": "string"}}})
    assert model.model_validate(nulls_as_absent(model, {"x": None})).model_dump() == {}
    assert without_nulls({"a": None, "b": 0}) == {"b": 0}


def test_agent_mode_is_the_default_and_model_mode_stays(tmp_path: Path) -> None:
    data = _write(tmp_path / "bfcl")
    assert load_bfcl(data).mode == "agent"
    model = ADAPTERS["bfcl_model"](data)
    assert model.mode == "model" and model.name == "bfcl_model"


async def test_the_oracle_passes_through_the_agent_and_gate(settings: Any, tmp_path: Path) -> None:
    suite = load_bfcl(_write(tmp_path / "bfcl"))
    runner = SuiteRunner(EvalConfig(model=ORACLE, workdir=tmp_path, concurrency=3), settings)
    results = await runner.run([suite])
    assert all(r.passed for r in results), [(r.case_id, r.error, r.scores) for r in results]
    by_id = {r.case_id: r for r in results}
    assert by_id["simple_python_1"].calls == [
        {"tool": "geometry_area", "args": {"radius": 3.0, "unit": "cm"}}
    ]
    assert by_id["irrelevance_0"].calls == []
    assert {s.name for s in by_id["simple_python_0"].scores} == {"bfcl_ast", "trajectory_strict"}
    assert by_id["simple_python_0"].metrics["model_calls"] == 2  # the call, then the answer
    assert by_id["simple_python_0"].metrics["refused_calls"] == 0


async def test_broken_calls_are_refused_by_the_gate_and_fail(settings: Any, tmp_path: Path) -> None:
    suite = load_bfcl(_write(tmp_path / "bfcl"))
    runner = SuiteRunner(EvalConfig(model=MALFORMED, workdir=tmp_path), settings)
    results = await runner.run([suite])
    broken = next(r for r in results if r.case_id == "simple_python_0")
    assert not broken.passed and broken.metrics["refused_calls"] >= 1
    assert summarise(suite, results, 1)["pass@1"] < 0.5


@pytest.mark.skipif(not (DATASETS / "bfcl").is_dir(), reason="../shared/datasets/bfcl absent")
async def test_real_records_run_through_the_agent(settings: Any, tmp_path: Path) -> None:
    suite = load_bfcl(DATASETS / "bfcl", limit=5)
    results = await SuiteRunner(EvalConfig(model=ORACLE, workdir=tmp_path), settings).run([suite])
    assert len(results) == 15 and all(r.passed for r in results), [
        (r.case_id, r.error, r.scores) for r in results if not r.passed
    ]
    assert sum(r.metrics["tool_calls"] for r in results) == 10  # irrelevance: no calls


def test_list_names_both_bfcl_modes(data_dir: Path) -> None:
    from typer.testing import CliRunner

    from relaygraph.cli import app

    result = CliRunner().invoke(app, ["eval", "--list"])
    assert result.exit_code == 0, result.output
    assert "bfcl_model" in result.output and "through the agent" in result.output


async def test_a_function_named_like_a_registered_tool_is_refused() -> None:
    from evals.adapters.bfcl import _registered
    from tools import ToolRegistry

    registry = ToolRegistry([function_tool(_area("notes_search", {"query": "string"}))])
    clash = function_tool(_area("notes_search", {"text": "string"}))
    with pytest.raises(ValueError, match="names of registered tools"):
        async with _registered(registry, [clash]):
            pass
    fresh = function_tool(_area("geometry.area", {"base": "integer"}))
    async with _registered(registry, [fresh]):
        assert registry.get("geometry_area") is fresh
    assert registry.get("geometry_area") is None and registry.get("notes_search") is not None
