"""tau2-bench's ``mock`` domain in solo mode (the task's ``ticket``, no user simulator).

Data is read from ``--data`` (``../shared/datasets/tau2_mock``; MIT, never copied here).
The domain's four agent tools are re-implemented from the dataset README's description as
fixture tools over a per-tenant world ``{"agent": db, "user": user_db}``; the initial state's
``initialization_data`` and ``initialization_actions`` are applied. Scoring follows each
task's ``reward_basis`` (default DB + COMMUNICATE): DB is our final-state hash against the
world the reference actions produce, ENV_ASSERTION the environment checks, ACTION a superset
trajectory match on ``compare_args``, COMMUNICATE ``answer_contains`` on ``communicate_info``.
Left out, and reported: tasks without a ticket (they need their message history replayed as
a conversation) and ``update_task_with_user_tools`` (its user must act, which needs a user
simulator). The policy text is given to the agent with the ticket.
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
from tools import ToolContext, ToolError, ToolSpec

NEEDS_USER = ("update_task_with_user_tools",)


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
        if not task.get("ticket") or task["id"] in NEEDS_USER:
            continue
        criteria = task.get("evaluation_criteria") or {}
        basis = set(criteria.get("reward_basis") or ["DB", "COMMUNICATE"])
        actions = [
            a
            for a in criteria.get("actions") or []
            if a.get("requestor", "assistant") == "assistant"
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
        cases.append(
            {
                "id": task["id"],
                "tags": ["tau2", "mock", *sorted(basis)],
                "seed": {"environment": initial_world(data, task.get("initial_state"))},
                "turns": [
                    {
                        "input": f"{policy}\n\nRequest: {task['ticket']}",
                        "gold": gold,
                        "answer": " ".join(communicate) or "Done.",
                    }
                ],
                "expect": expect,
                "reviewer": "gold",
            }
        )
    return Suite.model_validate(
        {
            "name": "tau2_mock",
            "description": "tau2-bench mock domain, solo mode (tickets).",
            "fixtures": ["tau2_mock"],
            "cases": cases[:limit] if limit else cases,
            "path": str(data),
        }
    )
