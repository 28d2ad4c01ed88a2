"""tau2-bench's ``mock`` domain in solo mode (the task's ``ticket``, no user simulator).

Data is read from ``--data`` (``../shared/datasets/tau2_mock``; MIT, never copied here).
The domain's four agent tools are re-implemented from the dataset README's description as
fixture tools over a per-tenant world ``{"agent": db, "user": user_db}``; the initial state's
``initialization_data`` and ``initialization_actions`` are applied. Scoring follows each
task's ``reward_basis`` (default DB + COMMUNICATE): DB is our final-state hash against the
world the reference actions produce, ENV_ASSERTION the environment checks, ACTION a superset
trajectory match on ``compare_args``, COMMUNICATE ``answer_contains`` on ``communicate_info``.
Tasks without a ticket, or whose user must act, are played as conversations with the
scripted user simulator (``evals.user_sim.ScriptedUser``): the task's message history is
replayed as earlier turns (its user messages, with the history's tool calls as their gold),
then each request of the user's instructions is a turn, and the user's own tool calls
(``check_notifications``, ``dismiss_notification``) act on the world's ``user`` side. A
task whose criteria name no reference action but assert a task's status gets that status
update as its reference call (the only way to reach it). The policy text is given to the
agent with the first user turn.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from evals.adapters._fixture_tools import NoArgs, Result, fixture_tool
from evals.cases import Suite, SuiteError
from evals.harness import Fixtures
from evals.user_sim import USER_TOOLS, ScriptedUser
from tools import ToolContext, ToolError, ToolSpec

NEEDS_USER = ("update_task_with_user_tools",)
"""Tasks that need a user simulator even though they have a ticket (the user must act)."""


def check_notifications(world: dict[str, Any]) -> list[dict[str, Any]]:
    return list(world["user"]["notifications"].values())


def dismiss_notification(world: dict[str, Any], notification_id: str) -> str:
    notification = world["user"]["notifications"].get(notification_id)
    if notification is None:
        raise ToolError("not_found", f"Notification {notification_id} not found")
    notification["status"] = "read"
    return f"Notification {notification_id} dismissed"


USER_TOOLS.update(
    {"check_notifications": check_notifications, "dismiss_notification": dismiss_notification}
)


class CreateTaskInput(BaseModel):
    model_config = ConfigDict(extra="forbid")
    user_id: str = Field(min_length=1)
    title: str
    description: str | None = None


class UpdateStatusInput(BaseModel):
    model_config = ConfigDict(extra="forbid")
    task_id: str = Field(min_length=1)
    status: str = Field(description="pending or completed")


class TransferInput(BaseModel):
    model_config = ConfigDict(extra="forbid")
    summary: str = ""


def create_task(agent: dict[str, Any], user_id: str, title: str, description: Any = None) -> Any:
    if user_id not in agent["users"]:
        raise ToolError("not_found", f"User {user_id} not found")
    task_id = f"task_{len(agent['tasks']) + 1}"
    task = {"task_id": task_id, "title": title, "description": description, "status": "pending"}
    agent["tasks"][task_id] = task
    agent["users"][user_id]["tasks"].append(task_id)
    return task


def mock_tools(fixtures: Fixtures) -> list[ToolSpec]:
    def agent(ctx: ToolContext) -> dict[str, Any]:
        world = fixtures.environments.get(ctx.principal.tenant)
        if world is None:
            raise ToolError("not_found", "this workspace has no task database")
        return world["agent"]  # type: ignore[no-any-return]

    async def create(ctx: ToolContext, args: CreateTaskInput) -> Result:
        return Result(result=create_task(agent(ctx), args.user_id, args.title, args.description))

    async def get_users(ctx: ToolContext, args: NoArgs) -> Result:
        return Result(result=list(agent(ctx)["users"].values()))

    async def update_status(ctx: ToolContext, args: UpdateStatusInput) -> Result:
        task = agent(ctx)["tasks"].get(args.task_id)
        if task is None:
            raise ToolError("not_found", f"Task {args.task_id} not found")
        task["status"] = args.status
        return Result(result=task)

    async def transfer(ctx: ToolContext, args: TransferInput) -> Result:
        return Result(result="Transfer successful")

    return [
        fixture_tool("create_task", create, CreateTaskInput, "write", "Create a task for a user."),
        fixture_tool("get_users", get_users, NoArgs, "read", "All users with their task ids."),
        fixture_tool(
            "update_task_status", update_status, UpdateStatusInput, "write",
            "Set a task's status (pending or completed).",
        ),
        fixture_tool(
            "transfer_to_human_agents", transfer, TransferInput, "read",
            "Hand the conversation to a human agent, when the user asks for one or the request "
            "cannot be handled with the policy and tools.",
        ),
    ]  # fmt: skip


def _merge(base: dict[str, Any], extra: dict[str, Any]) -> None:
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(base.get(key), dict):
            _merge(base[key], value)
        else:
            base[key] = copy.deepcopy(value)


def initial_world(data: Path, initial_state: dict[str, Any] | None) -> dict[str, Any]:
    world = {
        "agent": json.loads((data / "db.json").read_text("utf-8")),
        "user": json.loads((data / "user_db.json").read_text("utf-8")),
    }
    state = initial_state or {}
    init = state.get("initialization_data") or {}
    _merge(world["agent"], init.get("agent_data") or {})
    _merge(world["user"], init.get("user_data") or {})
    for action in state.get("initialization_actions") or []:
        args = action.get("arguments") or {}
        if action["func_name"] == "create_task":
            create_task(world["agent"], **args)
        elif action["func_name"] == "add_notification":
            world["user"]["notifications"][args["notification_id"]] = {
                "notification_id": args["notification_id"],
                "message": args["message"],
                "status": "unread",
                "task_id": args.get("task_id"),
            }
        else:
            raise SuiteError(f"tau2 mock: unknown initialization action {action['func_name']}")
    return world


_ASSERTIONS = {
    "assert_task_status": lambda a: {
        "path": f"agent/tasks/{a['task_id']}/status",
        "equals": a["expected_status"],
    },
    "assert_number_of_tasks": lambda a: {
        "path": f"agent/users/{a['user_id']}/tasks",
        "length": a["expected_number"],
    },
    "assert_notification_status": lambda a: {
        "path": f"user/notifications/{a['notification_id']}/status",
        "equals": a["expected_status"],
    },
}


def load_tau2_mock(data: Path, *, limit: int | None = None) -> Suite:
    """Raises:
    SuiteError: the directory does not hold the mock domain."""
    try:
        tasks = json.loads((data / "tasks.json").read_text("utf-8"))
        policy = (data / "policy_solo.md").read_text("utf-8").strip()
    except (OSError, json.JSONDecodeError) as exc:
        raise SuiteError(f"cannot read tau2 mock data in {data}: {exc}") from exc
    cases = []
    for task in tasks:
        criteria = task.get("evaluation_criteria") or {}
        basis = set(criteria.get("reward_basis") or ["DB", "COMMUNICATE"])
        actions = [
            a
            for a in criteria.get("actions") or []
            if a.get("requestor", "assistant") == "assistant"
        ]
        if not actions:  # an ENV_ASSERTION-only task: the status update it asserts
            actions = [
                {
                    "name": "update_task_status",
                    "arguments": {
                        "task_id": e["arguments"]["task_id"],
                        "status": e["arguments"]["expected_status"],
                    },
                }
                for e in criteria.get("env_assertions") or []
                if e["func_name"] == "assert_task_status" and e.get("assert_value", True)
            ]
        # Reference calls keep only the arguments the task compares (``compare_args``;
        # absent: all of them), so any summary passes for a hand-off to a human.
        gold = [
            {
                "tool": a["name"],
                "args": {
                    k: v
                    for k, v in (a.get("arguments") or {}).items()
                    if a.get("compare_args") is None or k in a["compare_args"]
                },
            }
            for a in actions
        ]
        communicate = [c.replace(",", "") for c in criteria.get("communicate_info") or []]
        checks = []
        for assertion in criteria.get("env_assertions") or []:
            if assertion.get("assert_value", True) is not True:
                continue
            checks.append(_ASSERTIONS[assertion["func_name"]](assertion["arguments"]))
        expect: dict[str, Any] = {
            "state": "DB" in basis,
            "trajectory": "superset" if "ACTION" in basis else None,
            "args": "subset",
            "answer_contains": communicate if "COMMUNICATE" in basis else [],
            "environment": checks if "ENV_ASSERTION" in basis else [],
        }
        if "NL_ASSERTION" in basis:
            expect["judge"] = "; ".join(criteria.get("nl_assertions") or [])
        world = initial_world(data, task.get("initial_state"))
        turns = _turns(task, policy, gold, communicate, world)
        cases.append(
            {
                "id": task["id"],
                "tags": ["tau2", "mock", *sorted(basis)],
                "seed": {"environment": world},
                "turns": turns,
                "user": _user(task, turns),
                "expect": expect,
                "reviewer": "gold",
            }
        )
    return Suite.model_validate(
        {
            "name": "tau2_mock",
            "description": "tau2-bench mock domain: tickets, and conversations with the "
            "scripted user simulator.",
            "fixtures": ["tau2_mock"],
            "cases": cases[:limit] if limit else cases,
            "path": str(data),
        }
    )


def _turns(
    task: dict[str, Any],
    policy: str,
    gold: list[dict[str, Any]],
    communicate: list[str],
    world: dict[str, Any],
) -> list[dict[str, Any]]:
    """The case's user turns: the ticket alone (solo mode), or the replayed message history
    and the scripted user's requests, the task's reference calls on the last request."""
    answer = " ".join(communicate) or "Done."
    if task.get("ticket") and task["id"] not in NEEDS_USER:
        return [{"input": f"{policy}\n\nRequest: {task['ticket']}", "gold": gold, "answer": answer}]
    turns: list[dict[str, Any]] = []
    for message in (task.get("initial_state") or {}).get("message_history") or []:
        if message["role"] == "user":
            turns.append({"input": message["content"], "gold": [], "answer": ""})
        elif message["role"] == "assistant" and turns:
            turns[-1]["gold"] += [
                {"tool": c["name"], "args": c.get("arguments") or {}}
                for c in message.get("tool_calls") or []
            ]
            turns[-1]["answer"] = message.get("content") or turns[-1]["answer"]
    scenario = task.get("user_scenario") or {}
    instructions = scenario.get("instructions") or ""
    if isinstance(instructions, dict):  # tau2's structured instructions
        instructions = " ".join(str(v) for v in instructions.values() if v)
    script = ScriptedUser(instructions, copy.deepcopy(world)).turns()
    if not script:
        raise SuiteError(f"tau2 mock: the user of {task['id']} makes no request")
    for said in script:
        actions = [{"tool": a["tool"], "args": a["args"]} for a in said.actions_after]
        turns.append({"input": said.text, "gold": [], "answer": "", "user_actions": actions})
    turns[-1]["gold"], turns[-1]["answer"] = gold, answer
    turns[0]["input"] = f"{policy}\n\n{turns[0]['input']}"
    for turn in turns:
        turn["answer"] = turn["answer"] or "Done."
    return turns


def _user(task: dict[str, Any], turns: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The user scenario for ``--user-model`` on a conversation case: the LLM user takes
    over after the replayed message history."""
    if task.get("ticket") and task["id"] not in NEEDS_USER:
        return None
    scenario = task.get("user_scenario") or {}
    instructions = scenario.get("instructions") or ""
    if isinstance(instructions, dict):
        instructions = " ".join(str(v) for v in instructions.values() if v)
    history = (task.get("initial_state") or {}).get("message_history") or []
    replayed = sum(1 for m in history if m["role"] == "user")
    return {
        "instructions": instructions,
        "persona": scenario.get("persona"),
        "from_turn": min(replayed, len(turns) - 1),
    }
