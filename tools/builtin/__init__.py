"""Built-in tools."""

from tools.builtin.notes import NOTES_TOOLS

BUILTIN_TOOLS = [*NOTES_TOOLS]

__all__ = ["BUILTIN_TOOLS"]
