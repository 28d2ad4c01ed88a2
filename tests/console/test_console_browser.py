"""The review console in real headless Chromium (Debian ``chromium`` + ``chromium-driver``).

Skipped only when /usr/bin/chromium is missing outside CI; with ``CI=true`` a missing
browser fails loudly. ``UPDATE_SCREENSHOTS=1`` rewrites docs/console-*.png (not a
``RELAYGRAPH_*`` name: tests/conftest.py clears those so settings cannot leak in).
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.console.conftest import XSS, ConsoleServer, console_jwt, interrupted_thread

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
DOCS = Path(__file__).resolve().parents[2] / "docs"
SCREENSHOTS = os.environ.get("UPDATE_SCREENSHOTS") == "1"

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(
        not CHROMIUM.exists() and os.environ.get("CI") != "true",
        reason="needs Debian chromium: apt-get install chromium chromium-driver",
    ),
]

WAIT = 20


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    assert CHROMIUM.exists() and CHROMEDRIVER.exists(), "install chromium and chromium-driver"
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    profile = tempfile.TemporaryDirectory(prefix="relaygraph-chromium-")
    for flag in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
        "--window-size=1360,1500",
        f"--user-data-dir={profile.name}",
    ):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=options)
    driver.set_page_load_timeout(WAIT)
    try:
        yield driver
    finally:
        driver.quit()
        profile.cleanup()


def wait_for(
    driver: Any,
    condition: Callable[[Any], Any],
    message: str,
    detail: Callable[[Any], str] | None = None,
) -> Any:
    """Wait for ``condition``; on timeout fail with ``message`` and what ``detail`` shows."""
    from selenium.common.exceptions import (
        NoSuchElementException,
        StaleElementReferenceException,
        TimeoutException,
    )
    from selenium.webdriver.support.ui import WebDriverWait

    # The inbox re-renders when its data changes: an element found a moment ago may be gone.
    ignored = (NoSuchElementException, StaleElementReferenceException)
    try:
        return WebDriverWait(driver, WAIT, poll_frequency=0.1, ignored_exceptions=ignored).until(
            condition
        )
    except TimeoutException:
        shown = detail(driver) if detail else ""
        shown += f" (browser log: {driver.get_log('browser')})"
        pytest.fail(f"{message} {shown}".strip(), pytrace=False)


def by_id(driver: Any, element_id: str) -> Any:
    from selenium.webdriver.common.by import By

    return driver.find_element(By.ID, element_id)


def css(driver: Any, selector: str) -> list[Any]:
    from selenium.webdriver.common.by import By

    return driver.find_elements(By.CSS_SELECTOR, selector)


def sign_in(driver: Any, server: ConsoleServer, who: str, credential: str | None = None) -> None:
    """Sign in as ``who`` with their API key (or ``credential``, e.g. a JWT)."""
    driver.get(f"{server.origin}/console#/signin")
    driver.execute_script("sessionStorage.clear()")
    driver.refresh()  # a fresh page with no key: nothing from the last session is running
    key = wait_for(
        driver,
        lambda d: by_id(d, "api-key").is_displayed() and by_id(d, "api-key"),
        "the sign-in form did not show",
    )
    key.clear()
    key.send_keys(credential or server.keys[who])
    by_id(driver, "signin-submit").click()
    wait_for(driver, lambda d: by_id(d, "who-user").text == who, f"{who} was not signed in")


def inbox_items(driver: Any) -> list[Any]:
    return css(driver, "#inbox-list a.inbox-item")


def screenshot(driver: Any, name: str) -> None:
    if SCREENSHOTS:
        DOCS.mkdir(exist_ok=True)
        driver.execute_script("window.scrollTo(0, 0)")
        driver.save_screenshot(str(DOCS / f"console-{name}.png"))


def set_editor(driver: Any, text: str) -> None:
    editor = by_id(driver, "edit-0")
    editor.clear()
    editor.send_keys(text)


def test_a_wrong_key_is_refused(browser: Any, console_server: ConsoleServer) -> None:
    browser.get(f"{console_server.origin}/console#/signin")
    browser.execute_script("sessionStorage.clear()")
    browser.refresh()
    key = wait_for(
        browser,
        lambda d: by_id(d, "api-key").is_displayed() and by_id(d, "api-key"),
        "no sign-in form",
    )
    key.send_keys("rg_not_a_real_key")
    by_id(browser, "signin-submit").click()
    error = wait_for(
        browser,
        lambda d: by_id(d, "signin-error").is_displayed() and by_id(d, "signin-error"),
        "no error for a wrong key",
    )
    assert "not accepted" in error.text
    assert browser.execute_script("return sessionStorage.length") == 0


def test_reviewer_signs_in_with_a_jwt(browser: Any, console_server: ConsoleServer) -> None:
    token = console_jwt("rita", "a", ["reviewer"])
    sign_in(browser, console_server, "rita", token)
    assert by_id(browser, "who-tenant").text == "tenant a"
    wait_for(
        browser,
        lambda d: any(
            console_server.thread_id in (item.get_attribute("href") or "")
            for item in inbox_items(d)
        ),
        "the JWT reviewer does not see the interrupted thread",
    )
    assert browser.execute_script("return sessionStorage.length") == 1  # kept per tab only

    browser.execute_script("sessionStorage.clear()")
    browser.refresh()
    key = wait_for(
        browser,
        lambda d: by_id(d, "api-key").is_displayed() and by_id(d, "api-key"),
        "no sign-in form",
    )
    key.send_keys(console_jwt("rita", "a", ["reviewer"], expires_in=-60))
    by_id(browser, "signin-submit").click()
    error = wait_for(
        browser,
        lambda d: by_id(d, "signin-error").is_displayed() and by_id(d, "signin-error"),
        "no error for an expired token",
    )
    assert "expired" in error.text
    assert browser.execute_script("return sessionStorage.length") == 0

    key.clear()
    key.send_keys(console_jwt("rita", "a", ["reviewer"]) + "tampered")
    by_id(browser, "signin-submit").click()
    wait_for(
        browser,
        lambda d: "token was not accepted" in by_id(d, "signin-error").text,
        "no error for a bad signature",
    )


def test_reviewer_of_another_tenant_sees_nothing(
    browser: Any, console_server: ConsoleServer
) -> None:
    sign_in(browser, console_server, "rex")
    assert by_id(browser, "who-tenant").text == "tenant b"
    wait_for(browser, lambda d: by_id(d, "inbox-empty").is_displayed(), "inbox not empty")
    assert inbox_items(browser) == []
    assert by_id(browser, "inbox-badge").text == "0"
    # Even with the thread's address, the page gets nothing from the API.
    browser.get(f"{console_server.origin}/console#/thread/{console_server.thread_id}")
    error = wait_for(
        browser,
        lambda d: by_id(d, "thread-error").is_displayed() and by_id(d, "thread-error"),
        "no error for another tenant's thread",
    )
    assert "no such thread" in error.text
    assert css(browser, "[data-testid=action]") == []
    assert css(browser, "[data-testid=message]") == []


def test_reviewer_edits_and_approves_then_watches_the_run_finish(
    browser: Any, console_server: ConsoleServer
) -> None:
    sign_in(browser, console_server, "rita")
    assert by_id(browser, "who-tenant").text == "tenant a"
    assert by_id(browser, "who-roles").text == "reviewer"
    items = wait_for(
        browser,
        lambda d: len(inbox_items(d)) == 2 and inbox_items(d),
        "the inbox does not list the thread and the MCP approval",
    )
    kinds = {item.get_attribute("data-kind"): item for item in items}
    item = kinds["graph"]
    assert item.get_attribute("data-id") == console_server.thread_id
    assert "notes_delete" in item.text and "destructive" in item.text
    assert kinds["mcp"].get_attribute("data-id") == console_server.approval_id
    assert "email_send" in kinds["mcp"].text and "alice via mcp" in kinds["mcp"].text
    summary = by_id(browser, "inbox-summary").text
    assert "2 awaiting a decision" in summary and "1 MCP approval" in summary
    assert by_id(browser, "inbox-badge").text == "2"
    screenshot(browser, "inbox")
    # Filters: risk and tool narrow the list; a risk nobody has empties it.
    from selenium.webdriver.support.ui import Select

    Select(by_id(browser, "filter-risk")).select_by_value("read")
    wait_for(browser, lambda d: not inbox_items(d), "the risk filter did not hide the items")
    Select(by_id(browser, "filter-risk")).select_by_value("destructive")
    wait_for(browser, lambda d: len(inbox_items(d)) == 1, "the risk filter did not narrow")
    Select(by_id(browser, "filter-risk")).select_by_value("")
    Select(by_id(browser, "filter-tool")).select_by_value("notes_delete")
    wait_for(browser, lambda d: len(inbox_items(d)) == 1, "the tool filter did not narrow")
    assert "2 awaiting a decision" in by_id(browser, "inbox-summary").text
    assert "1 shown" in by_id(browser, "inbox-summary").text

    inbox_items(browser)[0].click()
    action = wait_for(browser, lambda d: css(d, "[data-testid=action]"), "no proposed action")[0]
    assert "notes_delete" in action.text
    assert "Approval needed (destructive tool)" in action.text
    assert json.loads(action.find_element("css selector", "pre.args").text) == {"note_id": 2}
    preview = wait_for(browser, lambda d: css(d, "pre.preview"), "no dry-run preview")[0]
    assert json.loads(preview.text)["would_fail"]["error"] == "not_found"
    wait_for(browser, lambda d: css(d, "[data-testid=trace-run]"), "no trace")
    assert "notes_create" in by_id(browser, "trace").text

    # Edit: invalid JSON and schema violations are refused in the page.
    css(browser, "button.choice-edit")[0].click()
    send = by_id(browser, "send-decision")
    set_editor(browser, '{"note_id": ')
    wait_for(
        browser, lambda d: "not valid JSON" in by_id(d, "validation-0").text, "bad JSON passed"
    )
    assert not send.is_enabled()
    set_editor(browser, '{"note_id": 0}')
    wait_for(
        browser, lambda d: "must be ≥ 1" in by_id(d, "validation-0").text, "minimum not checked"
    )
    assert not send.is_enabled()
    set_editor(browser, '{"note_id": "1"}')
    wait_for(
        browser, lambda d: "expected integer" in by_id(d, "validation-0").text, "type not checked"
    )
    set_editor(browser, '{"note_id": 1, "force": true}')
    wait_for(
        browser,
        lambda d: 'unknown property "force"' in by_id(d, "validation-0").text,
        "extra property not refused",
    )
    send.click()  # disabled: nothing is sent
    assert by_id(browser, "resume-card").is_displayed() is False
    set_editor(browser, '{"note_id": 1}')
    wait_for(
        browser,
        lambda d: "match the tool's schema" in by_id(d, "validation-0").text,
        "valid arguments were refused",
    )
    assert send.is_enabled()
    screenshot(browser, "thread")

    send.click()
    wait_for(
        browser,
        lambda d: by_id(d, "run-status").text == "success",
        "the run did not finish",
        lambda d: d.execute_script(
            "return ['run-status', 'run-events', 'run-final', 'thread-error']"
            ".map((id) => document.getElementById(id).textContent).join(' | ')"
        ),
    )
    final = by_id(browser, "run-final")
    assert final.text == "Done: the draft note is gone."
    events = by_id(browser, "run-events").text
    assert "started" in events and "act" in events
    wait_for(browser, lambda d: by_id(d, "thread-status").text == "idle", "thread not idle")
    wait_for(
        browser, lambda d: len(css(d, "[data-testid=trace-run]")) == 2, "resumed run not traced"
    )
    trace = by_id(browser, "trace").text
    assert "approved by rita" in trace
    # The per-step rows: the resumed run's gate, act (the deletion succeeded) and model.
    steps = [row.text for row in css(browser, "[data-testid=trace-step]")]
    assert any("gate" in row for row in steps) and any("model" in row for row in steps)
    assert any("notes_delete success" in row for row in steps), steps
    screenshot(browser, "run-finished")

    # The server agrees: the edited call deleted alice's note 1, decided by rita.
    with httpx.Client(base_url=console_server.api, headers=console_server.headers("alice")) as api:
        state = api.get(f"/threads/{console_server.thread_id}/state").json()
    tool_results = [m for m in state["values"]["messages"] if m["type"] == "tool"]
    assert json.loads(tool_results[-1]["content"])["deleted"] is True
    assert json.loads(tool_results[-1]["content"])["id"] == 1
    browser.get(f"{console_server.origin}/console#/inbox")
    wait_for(
        browser,
        lambda d: [item.get_attribute("data-kind") for item in inbox_items(d)] == ["mcp"],
        "the decided thread is still listed",
    )
    assert by_id(browser, "inbox-badge").text == "1"


def test_reviewer_rejects_an_mcp_approval(browser: Any, console_server: ConsoleServer) -> None:
    sign_in(browser, console_server, "rita")
    browser.get(f"{console_server.origin}/console#/approval/{console_server.approval_id}")
    body = wait_for(
        browser,
        lambda d: "email_send" in by_id(d, "approval-body").text and by_id(d, "approval-body"),
        "the approval did not load",
    )
    assert by_id(browser, "approval-status").text == "pending"
    # Shown as JSON text (quotes escaped), never as markup.
    assert "Weekly report <img src=x onerror=" in body.text
    assert css(browser, "#approval-body img") == []
    note = body.find_element("css selector", "textarea")
    note.send_keys("Not this week")
    body.find_element("css selector", "button.btn-reject").click()
    wait_for(browser, lambda d: by_id(d, "approval-status").text == "rejected", "not rejected")
    assert "rita — Not this week" in by_id(browser, "approval-body").text
    with httpx.Client(base_url=console_server.api, headers=console_server.headers("rita")) as api:
        decided = api.get(f"/approvals/{console_server.approval_id}").json()
    assert (decided["status"], decided["decided_by"]) == ("rejected", "rita")
    browser.get(f"{console_server.origin}/console#/inbox")
    wait_for(
        browser, lambda d: by_id(d, "inbox-empty").is_displayed(), "decided items still listed"
    )
    assert by_id(browser, "inbox-badge").text == "0"
    assert browser.execute_script("return window.__xss === undefined")


def test_untrusted_text_renders_as_text(browser: Any, console_server: ConsoleServer) -> None:
    sign_in(browser, console_server, "rita")
    browser.get(f"{console_server.origin}/console#/thread/{console_server.thread_id}")
    messages = wait_for(browser, lambda d: css(d, "[data-testid=message]"), "no conversation")
    texts = [message.text for message in messages]
    assert any(XSS in text for text in texts), texts
    assert css(browser, "#conversation img, #actions img, #trace img") == []
    assert browser.execute_script("return window.__xss === undefined")


def test_an_open_thread_changed_elsewhere_is_flagged_not_redrawn(
    browser: Any, console_server: ConsoleServer
) -> None:
    sign_in(browser, console_server, "rita")
    browser.get(f"{console_server.origin}/console#/thread/{console_server.thread_id}")
    wait_for(browser, lambda d: css(d, "[data-testid=message]"), "no conversation")
    assert not by_id(browser, "thread-changed").is_displayed()
    with httpx.Client(base_url=console_server.api, headers=console_server.headers("alice")) as api:
        api.patch(
            f"/threads/{console_server.thread_id}", json={"metadata": {"label": "moved on"}}
        ).raise_for_status()
    notice = wait_for(
        browser,
        lambda d: by_id(d, "thread-changed").is_displayed() and by_id(d, "thread-changed"),
        "the change was not noticed",
    )
    assert "changed since it was opened" in notice.text
    notice.find_element("css selector", "button").click()
    wait_for(browser, lambda d: not by_id(d, "thread-changed").is_displayed(), "notice stayed")


def test_admin_sees_runs_and_verified_audit_chain(
    browser: Any, console_server: ConsoleServer
) -> None:
    sign_in(browser, console_server, "ada")
    browser.get(f"{console_server.origin}/console#/runs")
    rows = wait_for(browser, lambda d: css(d, "#runs-table tbody tr td a"), "no runs listed")
    assert any(row.get_attribute("title") == console_server.thread_id for row in rows)
    assert "runs" in by_id(browser, "runs-summary").text
    browser.get(f"{console_server.origin}/console#/audit")
    chain = wait_for(
        browser,
        lambda d: "Chain verified" in by_id(d, "audit-chain").text and by_id(d, "audit-chain"),
        "the audit chain was not verified",
    )
    assert "every link checks out" in chain.text
    audit = wait_for(browser, lambda d: css(d, "#audit-table tbody tr"), "no audit entries")
    assert any("notes_delete" in row.text and "rita" in row.text for row in audit)
    screenshot(browser, "audit")
    # A reviewer has no admin sections.
    sign_in(browser, console_server, "rita")
    assert not css(browser, "#nav a[data-section=runs]")[0].is_displayed()


def test_schema_validator_handles_refs_unions_and_arrays(
    browser: Any, console_server: ConsoleServer
) -> None:
    browser.get(f"{console_server.origin}/console")
    schema = {
        "type": "object",
        "additionalProperties": False,
        "required": ["tags"],
        "properties": {
            "title": {"anyOf": [{"type": "string", "minLength": 1}, {"type": "null"}]},
            "tags": {"type": "array", "items": {"$ref": "#/$defs/Tag"}, "maxItems": 2},
            "mode": {"enum": ["fast", "safe"]},
        },
        "$defs": {"Tag": {"type": "string", "pattern": "^[a-z]+$"}},
    }
    check = "return window.relaygraphConsole.validateSchema(arguments[0], arguments[1])"
    assert browser.execute_script(check, {"tags": ["ok"], "title": None}, schema) == []
    errors = browser.execute_script(
        check, {"tags": ["Bad", "b", "c"], "title": "", "mode": "x"}, schema
    )
    joined = " | ".join(errors)
    assert "must match ^[a-z]+$" in joined
    assert "at most 2 items" in joined
    assert "at least 1 character" in joined
    assert 'must be one of "fast", "safe"' in joined
    assert browser.execute_script(check, {}, schema) == ['$: missing required property "tags"']


def test_reviewer_rates_a_run_and_sees_the_feedback(
    browser: Any, console_server: ConsoleServer
) -> None:
    sign_in(browser, console_server, "rita")
    browser.get(f"{console_server.origin}/console#/thread/{console_server.thread_id}")
    blocks = wait_for(
        browser, lambda d: css(d, "[data-testid=feedback] .feedback-form"), "no feedback form"
    )
    first = blocks[0]
    first.find_element("css selector", "input.feedback-comment").send_keys(f"Useful {XSS}")
    first.find_element("css selector", "button.btn-small").click()  # ✓ Good
    listed = wait_for(
        browser, lambda d: css(d, "[data-testid=feedback] .feedback-list li"), "feedback not shown"
    )
    assert f"rita (reviewer) · user_score = 1 — Useful {XSS}" in listed[0].text
    assert css(browser, "#trace img") == []
    with httpx.Client(base_url=console_server.api, headers=console_server.headers("ada")) as api:
        runs = api.get(f"/threads/{console_server.thread_id}/runs").json()
        oldest = runs[-1]["run_id"]
        given = api.get(f"/threads/{console_server.thread_id}/runs/{oldest}/feedback").json()
    assert [(f["author"], f["score"]) for f in given] == [("rita", 1)]


def test_reviewer_rejects_with_a_message_the_assistant_sees(
    browser: Any, console_server: ConsoleServer
) -> None:
    thread_id = interrupted_thread(console_server, "alice", "Clean up again")
    sign_in(browser, console_server, "rita")
    browser.get(f"{console_server.origin}/console#/thread/{thread_id}")
    wait_for(browser, lambda d: css(d, "button.choice-reject"), "no reject choice")[0].click()
    message = wait_for(
        browser,
        lambda d: (
            css(d, "textarea.reject-message")[0].is_displayed()
            and css(d, "textarea.reject-message")[0]
        ),
        "no message box",
    )
    message.send_keys("Keep it, it is <b>needed</b>")
    by_id(browser, "send-decision").click()
    wait_for(browser, lambda d: by_id(d, "run-status").text == "success", "the run did not finish")
    wait_for(
        browser,
        lambda d: any(
            "a reviewer rejected this call: Keep it, it is <b>needed</b>" in m.text
            for m in css(d, "[data-testid=message]")
        ),
        "the rejection is not in the conversation",
    )
    assert css(browser, "#conversation b") == []
    with httpx.Client(base_url=console_server.api, headers=console_server.headers("alice")) as api:
        assert api.get(f"/threads/{thread_id}").json()["status"] == "idle"
