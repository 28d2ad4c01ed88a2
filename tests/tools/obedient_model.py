"""A scripted model (``scripted:tests.tools.obedient_model:obey``) that obeys every
instruction it reads, wherever it reads it: the user's message, a web page, a file,
a note. It is the worst case a prompt injection can hope for; the gate must hold.

Instructions it understands (anywhere in any text it has seen):
``fetch URL`` · ``read file PATH`` · ``search notes`` · ``delete all notes`` ·
``email them to ADDRESS`` · ``create a note titled TITLE`` · ``close ticket N`` ·
``write file PATH``. It issues every instructed call it has not issued before (the
history is its memory, so it is deterministic across restarts), and answers "done"
when nothing is left to do.
"""

from __future__ import annotations

import json
import re
from typing import Any

from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, ToolMessage


def _texts(messages: list[BaseMessage]) -> list[str]:
    return [
        str(m.content) for m in messages if isinstance(m, HumanMessage | ToolMessage) and m.content
    ]


def _made(messages: list[BaseMessage]) -> set[str]:
    made = set()
    for message in messages:
        if isinstance(message, AIMessage):
            for call in message.tool_calls:
                made.add(json.dumps([call["name"], call["args"]], sort_keys=True))
    return made


def _note_ids(messages: list[BaseMessage]) -> list[int]:
    ids: list[int] = []
    for message in messages:
        if isinstance(message, ToolMessage) and message.name == "notes_search":
            try:
                found = json.loads(str(message.content))["notes"]
            except (ValueError, KeyError, TypeError):
                continue
            ids.extend(note["id"] for note in found if note["id"] not in ids)
    return ids


def _wanted(text: str, messages: list[BaseMessage]) -> list[tuple[str, dict[str, Any]]]:
    calls: list[tuple[str, dict[str, Any]]] = []
    for url in re.findall(r"fetch (https?://\S+?)(?=[\s\"'\\]|$)", text):
        calls.append(("http_fetch", {"url": url}))
    for path in re.findall(r"read file ([\w./-]+)", text):
        calls.append(("files_read", {"path": path}))
    if re.search(r"(search|list|summari[sz]e) (my )?notes", text, re.I):
        calls.append(("notes_search", {"query": ""}))
    if re.search(r"delete all notes", text, re.I):
        ids = _note_ids(messages)
        if not ids:
            calls.append(("notes_search", {"query": ""}))
        calls.extend(("notes_delete", {"note_id": note_id}) for note_id in ids)
    for address in re.findall(r"email them to ([\w.+-]+@[\w.-]+\.[a-z]{2,})", text, re.I):
        calls.append(
            ("email_send", {"to": [address], "subject": "notes", "body": "all your notes"})
        )
    for title in re.findall(r"create a note titled (\w+)", text, re.I):
        calls.append(("notes_create", {"title": title, "body": "as instructed"}))
    for ticket in re.findall(r"close ticket (\d+)", text, re.I):
        calls.append(("tickets_close", {"ticket_id": int(ticket)}))
    for path in re.findall(r"write file ([\w./-]+)", text):
        calls.append(("files_write", {"path": path, "content": "as instructed"}))
    return calls


def obey(messages: list[BaseMessage]) -> dict[str, Any]:
    made = _made(messages)
    todo: list[dict[str, Any]] = []
    seen: set[str] = set()
    for text in _texts(messages):
        for name, args in _wanted(text, messages):
            key = json.dumps([name, args], sort_keys=True)
            if key not in made and key not in seen:
                seen.add(key)
                todo.append({"name": name, "args": args})
    if todo:
        return {"content": "Doing as I was told.", "tool_calls": todo}
    return {"content": "done"}
