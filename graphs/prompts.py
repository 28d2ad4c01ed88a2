"""Versioned prompt files: ``graphs/prompts/NAME.vN.md``."""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from pathlib import Path

PROMPTS_DIR = Path(__file__).parent / "prompts"
_FILE = re.compile(r"^(?P<name>[a-z0-9_]+)\.(?P<version>v\d+)\.md$")


class PromptNotFound(LookupError):
    pass


@dataclass(frozen=True)
class Prompt:
    name: str
    version: str
    text: str


def versions(name: str, directory: Path = PROMPTS_DIR) -> list[str]:
    """Versions of prompt ``name``, oldest first."""
    found = [
        match["version"]
        for path in directory.glob(f"{name}.v*.md")
        if (match := _FILE.match(path.name)) and match["name"] == name
    ]
    return sorted(found, key=lambda version: int(version[1:]))


@functools.lru_cache(maxsize=256)
def load_prompt(name: str, version: str | None = None, directory: Path = PROMPTS_DIR) -> Prompt:
    """Prompt ``name`` at ``version`` (default: the newest). Files are read once per
    process: prompt versions are immutable, a change is a new version.

    Raises:
        PromptNotFound: no such prompt or version.
    """
    available = versions(name, directory)
    if not available:
        raise PromptNotFound(f"there is no prompt {name!r} in {directory}")
    chosen = version or available[-1]
    if chosen not in available:
        raise PromptNotFound(
            f"prompt {name!r} has no version {chosen!r}; versions: {', '.join(available)}"
        )
    text = (directory / f"{name}.{chosen}.md").read_text(encoding="utf-8").strip()
    return Prompt(name=name, version=chosen, text=text)
