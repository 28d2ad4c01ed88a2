"""runtime/settings.py: where data lives, user graphs from JSON, and the default model."""

from __future__ import annotations

from pathlib import Path

import pytest

from runtime.settings import DEMO_MODEL, Settings


def test_data_dir_from_the_environment(data_dir: Path) -> None:
    settings = Settings()

    assert settings.data_dir == data_dir
    assert settings.store_url == f"sqlite+aiosqlite:///{data_dir / 'relaygraph.db'}"
    assert settings.checkpoint_path == data_dir / "checkpoints.db"


def test_relative_data_dir_is_made_absolute(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("RELAYGRAPH_DATA_DIR", "rel/data")

    settings = Settings()

    assert settings.data_dir.is_absolute()
    assert settings.data_dir == tmp_path.resolve() / "rel" / "data"


def test_default_data_dir_is_absolute(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))

    assert Settings().data_dir == tmp_path / "xdg" / "relaygraph"


def test_default_data_dir_is_absolute_with_a_relative_xdg_home(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("XDG_DATA_HOME", "relative")

    data_dir = Settings().data_dir

    assert data_dir.is_absolute()
    assert data_dir.name == "relaygraph"


def test_graphs_are_parsed_from_json(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(
        "RELAYGRAPH_GRAPHS", '{"triage": "pkg.graphs:triage", "echo": "pkg.echo:build"}'
    )

    assert Settings().graphs == {"triage": "pkg.graphs:triage", "echo": "pkg.echo:build"}


def test_graphs_default_to_empty() -> None:
    assert Settings().graphs == {}


def test_graphs_that_are_not_json_are_refused_naming_the_field(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("RELAYGRAPH_GRAPHS", "{triage: pkg.graphs:triage}")

    with pytest.raises(ValueError, match="graphs"):
        Settings()


def test_graphs_given_as_a_json_string_argument_are_parsed() -> None:
    assert Settings(graphs='{"a": "m:g"}').graphs == {"a": "m:g"}  # type: ignore[arg-type]
    assert Settings(graphs="  ").graphs == {}  # type: ignore[arg-type]


def test_empty_graphs_variable_means_no_graphs(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RELAYGRAPH_GRAPHS", "")

    assert Settings().graphs == {}


def test_default_model_is_the_offline_demo_without_a_key() -> None:
    settings = Settings()

    assert settings.openai_api_key is None
    assert settings.default_model == DEMO_MODEL == "scripted:providers.scripted:demo_turn"


@pytest.mark.parametrize("variable", ["OPENAI_API_KEY", "RELAYGRAPH_OPENAI_API_KEY"])
def test_default_model_is_openai_with_a_key(variable: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(variable, "sk-test")

    settings = Settings()

    assert settings.default_model == "openai:gpt-4o-mini"
    assert settings.openai_api_key is not None
    assert settings.openai_api_key.get_secret_value() == "sk-test"
    assert "sk-test" not in repr(settings)


def test_explicit_model_wins_over_the_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    monkeypatch.setenv("RELAYGRAPH_MODEL", "scripted:/srv/script.json")

    assert Settings().default_model == "scripted:/srv/script.json"
