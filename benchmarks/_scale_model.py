"""The scripted model of ``benchmarks.scale_workers``: one 200 ms call, then the answer
(the provider runs it in a thread, so the wait does not block the worker's event loop)."""

from __future__ import annotations

import time
from typing import Any

from langchain_core.messages import BaseMessage

MODEL_SECONDS = 0.2


def turn(messages: list[BaseMessage]) -> dict[str, Any]:
    time.sleep(MODEL_SECONDS)
    return {"content": "done"}
