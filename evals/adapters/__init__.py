"""Adapters that turn public benchmark data (read from where it lies, never copied into
this repository) into suites."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from evals.adapters.agentdojo import load_agentdojo_banking
from evals.adapters.bfcl import load_bfcl, load_bfcl_model
from evals.adapters.tau2_mock import load_tau2_mock

Adapter = Callable[..., Any]
ADAPTERS: dict[str, Adapter] = {
    "bfcl": load_bfcl,
    "bfcl_model": load_bfcl_model,
    "agentdojo_banking": load_agentdojo_banking,
    "tau2_mock": load_tau2_mock,
}
