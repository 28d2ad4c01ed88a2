"""The tool registry: every tool relaygraph can call, by name.

Tools are registered at start-up. :meth:`ToolRegistry.registered` adds tools for a while
(an eval's fixture functions, a test's stand-ins) and removes exactly those afterwards;
:meth:`~ToolRegistry.unregister` and :meth:`~ToolRegistry.replace` remove or swap one.
None of them awaits, so on one event loop each change is atomic for concurrent callers.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from contextlib import contextmanager

from tools.types import ToolSpec


class ToolRegistry:
    def __init__(self, tools: Iterable[ToolSpec] = ()) -> None:
        self._tools: dict[str, ToolSpec] = {}
        for tool in tools:
            self.register(tool)

    def register(self, tool: ToolSpec) -> None:
        """Add a tool.

        Raises:
            ValueError: a tool with that name is already registered.
        """
        if tool.name in self._tools:
            raise ValueError(f"tool {tool.name!r} is already registered")
        self._tools[tool.name] = tool

    def unregister(self, name: str) -> ToolSpec:
        """Remove the tool called ``name`` and return it.

        Raises:
            KeyError: no tool has that name.
        """
        try:
            return self._tools.pop(name)
        except KeyError:
            raise KeyError(f"no tool {name!r} is registered") from None

    def replace(self, tool: ToolSpec) -> ToolSpec | None:
        """Register ``tool`` in place of the tool of the same name, if any; return that one."""
        previous = self._tools.get(tool.name)
        self._tools[tool.name] = tool
        return previous

    @contextmanager
    def registered(self, tools: Iterable[ToolSpec]) -> Iterator[list[ToolSpec]]:
        """``tools`` registered for the duration of the ``with`` block, then removed
        (each only if it is still the registered entry of its name).

        Raises:
            ValueError: a name is already registered or given twice; nothing is added.
        """
        added = list(tools)
        names = [tool.name for tool in added]
        clashes = sorted({name for name in names if name in self._tools or names.count(name) > 1})
        if clashes:
            raise ValueError(f"tools {clashes} are already registered or given twice")
        for tool in added:
            self._tools[tool.name] = tool
        try:
            yield added
        finally:
            for tool in added:
                if self._tools.get(tool.name) is tool:
                    del self._tools[tool.name]

    def get(self, name: str) -> ToolSpec | None:
        return self._tools.get(name)

    def names(self) -> list[str]:
        return sorted(self._tools)

    def __contains__(self, name: object) -> bool:
        return name in self._tools

    def __iter__(self) -> Iterator[ToolSpec]:
        return iter(sorted(self._tools.values(), key=lambda tool: tool.name))

    def __len__(self) -> int:
        return len(self._tools)
