"""Web search on the provider's side, behind one flag: ``web_search=True`` on the call.

OpenAI answers it with the built-in ``web_search`` tool of the Responses API (langchain-
openai switches to that API by itself when the tool is bound); Gemini with the
``google_search`` grounding tool. Their answers differ: OpenAI returns content blocks
(a ``web_search_call`` block, text with ``url_citation`` annotations), Gemini returns
``grounding_metadata`` (queries, web chunks, supports tying text to chunks). Both are
normalised here into plain text content plus one shape in ``response_metadata``::

    {"web_search": {"used": True, "queries": [...],
                    "citations": [{"title": ..., "url": ..., "snippet": ...}]}}

Search results are untrusted content: ``search_used(message)`` tells the graph to mark
the run tainted and audit it (providers never import tools; the graph does that).
"""

from __future__ import annotations

from typing import Any, TypedDict

from langchain_core.messages import AIMessage, BaseMessage

WEB_SEARCH_KEY = "web_search"


class Citation(TypedDict):
    """One source of a searched answer, the same for every provider."""

    title: str
    url: str
    snippet: str
    """The part of the answer the source supports (may be empty)."""


def search_tool_for(kind: str) -> dict[str, Any]:
    """The provider's built-in search tool in the form its ``bind_tools`` accepts."""
    if kind == "google":
        return {"google_search": {}}
    return {"type": "web_search"}


def search_used(message: BaseMessage) -> bool:
    """Whether the provider searched the web for ``message`` (its content is untrusted)."""
    info = message.response_metadata.get(WEB_SEARCH_KEY)
    return bool(isinstance(info, dict) and info.get("used"))


def citations(message: BaseMessage) -> list[Citation]:
    """The normalised citations of a searched answer (empty for any other message)."""
    info = message.response_metadata.get(WEB_SEARCH_KEY)
    return list(info.get("citations") or []) if isinstance(info, dict) else []


def normalise_search_answer(message: AIMessage) -> AIMessage:
    """``message`` with plain text content and the ``web_search`` metadata (see the module).

    Runs on every answer to a web-search call: an answer without any sign of a search is
    marked ``used: False`` (the model chose not to search).
    """
    queries: list[str] = []
    found: list[Citation] = []
    used = False
    content: Any = message.content
    if isinstance(content, list):
        texts: list[str] = []
        for block in content:
            if isinstance(block, str):
                texts.append(block)
                continue
            if not isinstance(block, dict):
                continue
            kind = block.get("type")
            if kind in ("web_search_call", "server_tool_call"):
                used = True
                action = block.get("action") or block.get("args") or {}
                query = action.get("query") if isinstance(action, dict) else None
                if query:
                    queries.append(str(query))
            elif kind == "text":
                text = str(block.get("text") or "")
                for note in block.get("annotations") or []:
                    if isinstance(note, dict) and note.get("type") in ("url_citation", "citation"):
                        start, end = note.get("start_index"), note.get("end_index")
                        snippet = text[start:end] if isinstance(start, int) else ""
                        found.append(
                            Citation(
                                title=str(note.get("title") or ""),
                                url=str(note.get("url") or ""),
                                snippet=str(note.get("cited_text") or snippet),
                            )
                        )
                texts.append(text)
        content = "".join(texts)
    grounding = message.response_metadata.get("grounding_metadata")
    if isinstance(grounding, dict):
        chunks = grounding.get("grounding_chunks") or []
        queries += [str(q) for q in grounding.get("web_search_queries") or []]
        snippets: dict[int, list[str]] = {}
        for support in grounding.get("grounding_supports") or []:
            text = ((support or {}).get("segment") or {}).get("text") or ""
            for index in support.get("grounding_chunk_indices") or []:
                snippets.setdefault(index, []).append(text)
        for index, chunk in enumerate(chunks):
            web = (chunk or {}).get("web")
            if web:
                found.append(
                    Citation(
                        title=str(web.get("title") or ""),
                        url=str(web.get("uri") or ""),
                        snippet=" … ".join(s for s in snippets.get(index, []) if s),
                    )
                )
        used = used or bool(chunks or queries)
    used = used or bool(found)
    metadata = {
        **message.response_metadata,
        WEB_SEARCH_KEY: {"used": used, "queries": queries, "citations": found},
    }
    return message.model_copy(update={"content": content, "response_metadata": metadata})
