"""Configuration errors name the environment variable a person sets (``RELAYGRAPH_MAX_STEPS``),
not the settings field (``max_steps``), in every CLI entry point that reports them
(runtime.settings.configuration_error_message)."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError
from typer.testing import CliRunner

from relaygraph.cli import app
from runtime.settings import Settings, configuration_error_message


def _one_line(text: str) -> str:
    return " ".join(text.split())


@pytest.mark.parametrize(
    "command",
    [
        ["run", "hi"],  # relaygraph.cli
        ["keys", "list"],  # relaygraph.store_cli.with_store
        ["usage"],  # relaygraph.usage_cli
        ["mcp"],  # relaygraph.mcp_cli
        ["retention", "sweep"],  # relaygraph.memory_cli
        ["backup", "backup-dir"],  # relaygraph.backup_cli
    ],
)
def test_a_bad_variable_is_named_as_set(
    data_dir: Path, monkeypatch: pytest.MonkeyPatch, command: list[str]
) -> None:
    monkeypatch.chdir(data_dir.parent)  # where `backup backup-dir` would write
    monkeypatch.setenv("RELAYGRAPH_MAX_STEPS", "abc")

    result = CliRunner().invoke(app, command)

    assert result.exit_code == 2
    message = _one_line(result.output)
    assert "invalid configuration: RELAYGRAPH_MAX_STEPS='abc': Input should be a valid integer" in (
        message
    )
    assert "max_steps" not in message
    assert "Traceback" not in result.output


def test_every_invalid_setting_is_listed_under_its_variable(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("RELAYGRAPH_MAX_STEPS", "0")
    monkeypatch.setenv("RELAYGRAPH_PRIVACY_HOLD", "secretive")

    with pytest.raises(ValidationError) as caught:
        Settings()
    message = configuration_error_message(caught.value)

    assert message.startswith("invalid configuration: ")
    assert "RELAYGRAPH_MAX_STEPS='0': Input should be greater than or equal to 1" in message
    assert "RELAYGRAPH_PRIVACY_HOLD='secretive': privacy levels must be among" in message
    assert "Value error" not in message


def test_an_aliased_setting_is_named_as_set_and_urls_and_secrets_are_not_echoed(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("OPENAI_BASE_URL", "http://127.0.0.1:9/v1")

    with pytest.raises(ValidationError) as caught:
        Settings(openai_base_url=3, secret_key=4)  # type: ignore[arg-type]
    message = configuration_error_message(caught.value)

    assert "OPENAI_BASE_URL: Input should be a valid string" in message
    assert "RELAYGRAPH_SECRET_KEY: Input should be a valid string" in message
    assert "3" not in message and "4" not in message


def test_another_models_error_is_worded_by_pydantic() -> None:
    from pydantic import BaseModel

    class Other(BaseModel):
        count: int

    with pytest.raises(ValidationError) as caught:
        Other(count="many")  # type: ignore[arg-type]

    assert configuration_error_message(caught.value).startswith(
        "invalid configuration: 1 validation error for Other\ncount"
    )
