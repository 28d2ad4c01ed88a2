// Walks relaygraph's /api/v1 with the official JS client, @langchain/langgraph-sdk, the way
// a JS/TS chat frontend does. Run by tests/api/test_js_sdk.py:
//
//   LANGGRAPH_API_URL=http://127.0.0.1:PORT/api/v1 RELAYGRAPH_TEST_KEY=rg_... node client.mjs
//
// The server's model is tests/api/js_sdk_model.py ("tidy up" stops at an approval interrupt,
// "slow ..." runs for seconds, anything else is echoed). Every step asserts what it saw and
// throws with a clear message; the last stdout line is one JSON summary:
// {"ok", "sdk_version", "steps": {step: observed values}, "failed_step"?, "error"?}.

import { readFileSync } from "node:fs";
import { Client } from "@langchain/langgraph-sdk";

const SDK_VERSION = JSON.parse(
  readFileSync(
    new URL("./node_modules/@langchain/langgraph-sdk/package.json", import.meta.url),
    "utf8",
  ),
).version;
const ASSISTANT = "agent";
const HELLO = { messages: [{ role: "user", content: "tidy up" }] };
const UNKNOWN_THREAD = "00000000-0000-4000-8000-000000000000";

const steps = {};
const requests = [];
let current = "setup";

function check(condition, message, seen) {
  if (!condition) {
    const detail = seen === undefined ? "" : `; saw ${JSON.stringify(seen).slice(0, 1500)}`;
    throw new Error(`${current}: ${message}${detail}`);
  }
}

async function step(name, body) {
  current = name;
  steps[name] = await body();
}

function lastMessage(values) {
  const messages = values?.messages ?? [];
  return messages[messages.length - 1];
}

function checkNoReconnects() {
  const count = reconnects(current);
  check(count === 0, "the SDK reconnected the stream (it ended before the run did)", requests);
  return count;
}

function reconnects(name) {
  // streamWithRetry follows the stream's Location with a GET .../stream when it thinks the
  // stream closed before the run ended: a server that ends streams early shows up here.
  return requests.filter(
    (r) => r.step === name && r.method === "GET" && /\/runs\/[^/]+\/stream$/.test(r.path),
  ).length;
}

async function collect(stream) {
  const parts = [];
  for await (const part of stream) parts.push(part);
  return parts;
}

async function waitForStatus(client, threadId, runId, wanted) {
  const deadline = Date.now() + 20_000;
  for (;;) {
    const run = await client.runs.get(threadId, runId);
    if (wanted.includes(run.status)) return run;
    check(Date.now() < deadline, `run ${runId} never reached ${wanted}`, run.status);
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
}

async function expectHttpError(call) {
  try {
    const value = await call();
    return { threw: false, value };
  } catch (error) {
    return { threw: true, status: error?.status ?? null, text: String(error?.text ?? error) };
  }
}

async function main() {
  const apiUrl = process.env.LANGGRAPH_API_URL;
  const apiKey = process.env.RELAYGRAPH_TEST_KEY;
  check(apiUrl && apiKey, "set LANGGRAPH_API_URL and RELAYGRAPH_TEST_KEY");
  // No retries: a 5xx or a dropped connection must fail the walk, not be papered over.
  // Every request is logged, to see the SDK's own follow-ups (stream reconnects).
  const logged = async (url, init) => {
    const response = await fetch(url, init);
    const path = new URL(url).pathname.slice(new URL(apiUrl).pathname.length);
    requests.push({ step: current, method: init?.method ?? "GET", path, status: response.status });
    return response;
  };
  const client = new Client({ apiUrl, apiKey, callerOptions: { maxRetries: 0, fetch: logged } });

  await step("assistants_search", async () => {
    const found = await client.assistants.search({ graphId: ASSISTANT, limit: 10 });
    check(Array.isArray(found) && found.length >= 1, "no assistant for graph 'agent'", found);
    const assistant = found[0];
    for (const field of ["assistant_id", "graph_id", "config", "metadata", "created_at"]) {
      check(field in assistant, `assistant has no ${field}`, assistant);
    }
    check(assistant.graph_id === ASSISTANT, "wrong graph_id", assistant);
    return { count: found.length, graph_ids: found.map((a) => a.graph_id) };
  });

  await step("assistants_pagination", async () => {
    // includePagination reads X-Pagination-Next: the offset of the next page, absent on the
    // last one. Walk every page of one assistant each.
    const all = await client.assistants.search({ limit: 100 });
    check(all.length >= 2, "fewer than two assistants to page through", all.length);
    const pages = [];
    let offset = 0;
    for (;;) {
      const page = await client.assistants.search({ limit: 1, offset, includePagination: true });
      check(page.assistants.length === 1, `page at offset ${offset}`, page);
      pages.push({ id: page.assistants[0].assistant_id, next: page.next });
      if (page.next == null) break;
      check(Number(page.next) === offset + 1, "X-Pagination-Next is not the next offset", page);
      offset = Number(page.next);
      check(pages.length <= all.length, "pagination does not end", pages);
    }
    const ids = pages.map((p) => p.id);
    const expected = all.map((a) => a.assistant_id);
    check(JSON.stringify(ids) === JSON.stringify(expected), "pages != the full list", { ids, expected });
    return { assistants: all.length, pages: pages.length, last_next: pages[pages.length - 1].next };
  });

  let threadId;
  await step("threads_create", async () => {
    const thread = await client.threads.create({ metadata: { purpose: "js-sdk" } });
    check(typeof thread.thread_id === "string" && thread.thread_id, "no thread_id", thread);
    threadId = thread.thread_id;
    return { status: thread.status, metadata: thread.metadata };
  });

  let interruptId;
  let firstRunId;
  let firstParts;
  await step("stream_until_interrupt", async () => {
    const created = [];
    const parts = await collect(
      client.runs.stream(threadId, ASSISTANT, {
        input: HELLO,
        streamMode: ["values", "updates", "messages-tuple"],
        onRunCreated: (meta) => created.push(meta),
      }),
    );
    firstParts = parts;
    const events = parts.map((p) => p.event);
    check(events[0] === "metadata", "the first event is not metadata", events);
    firstRunId = parts[0].data.run_id;
    check(created.length === 1, "onRunCreated not called once (Content-Location)", created);
    check(created[0].run_id === firstRunId, "Content-Location run id != metadata run_id", {
      created,
      metadata: parts[0].data,
    });
    check(created[0].thread_id === threadId, "Content-Location thread id", created);
    for (const name of ["values", "updates", "messages"]) {
      check(events.includes(name), `no ${name} event`, events);
    }
    check(!events.includes("error"), "an error event", parts.filter((p) => p.event === "error"));
    const ids = parts.map((p) => p.id);
    check(ids.every((id) => typeof id === "string" && id !== ""), "an event without id", ids);
    check(new Set(ids).size === ids.length, "duplicate event ids", ids);
    const last = parts[parts.length - 1];
    check(last.event === "values" && "__interrupt__" in last.data, "no final __interrupt__", last);
    const update = parts.find((p) => p.event === "updates" && "__interrupt__" in p.data);
    check(update, "no updates event with __interrupt__", events);
    const request = update.data.__interrupt__[0].value.action_requests[0];
    check(request.name === "notes_delete", "interrupt is not the delete's approval", request);
    interruptId = update.data.__interrupt__[0].id;
    const [message, metadata] = parts.find((p) => p.event === "messages").data;
    check(message.type === "ai" || message.type === "AIMessageChunk", "messages[0] not ai", message);
    check(metadata.langgraph_node === "model", "messages metadata has no node", metadata);
    return {
      events: [...new Set(events)].sort(),
      count: parts.length,
      interrupt_tool: request.name,
      interrupt_args: request.args,
      message_type: message.type,
      message_node: metadata.langgraph_node,
      run_id_matches: true,
      reconnects: checkNoReconnects(),
    };
  });

  await step("join_stream_rejoin", async () => {
    // Rejoin the ended run after its third event, as a client that lost its connection does.
    const after = firstParts[2].id;
    const parts = await collect(
      client.runs.joinStream(threadId, firstRunId, { lastEventId: after }),
    );
    const seen = parts.map((p) => `${p.id}:${p.event}`);
    const expected = firstParts.slice(3).map((p) => `${p.id}:${p.event}`);
    check(JSON.stringify(seen) === JSON.stringify(expected), "rejoin is not the tail", {
      seen,
      expected,
    });
    const values = await collect(
      client.runs.joinStream(threadId, firstRunId, { streamMode: ["values"] }),
    );
    const names = [...new Set(values.map((p) => p.event))].sort();
    check(JSON.stringify(names) === '["metadata","values"]', "streamMode filter", names);
    return { after: Number(after), events: parts.length, values_only: names };
  });

  await step("get_state_interrupted", async () => {
    const state = await client.threads.getState(threadId);
    check(Array.isArray(state.next) && state.next[0] === "gate", "next is not ['gate']", state.next);
    check(state.interrupts?.length === 1, "state.interrupts", state.interrupts);
    check(state.interrupts[0].id === interruptId, "interrupt id differs from the stream's", state);
    const task = state.tasks?.[0];
    check(task?.interrupts?.[0]?.value?.action_requests?.[0]?.name === "notes_delete", "task", task);
    check(state.checkpoint?.checkpoint_id, "state has no checkpoint", state.checkpoint);
    const thread = await client.threads.get(threadId);
    check(thread.status === "interrupted", "thread status", thread.status);
    check(thread.metadata.graph_id === ASSISTANT, "thread metadata graph_id", thread.metadata);
    check(thread.metadata.purpose === "js-sdk", "thread metadata lost", thread.metadata);
    const waiting = await client.threads.search({ status: "interrupted" });
    check(waiting.map((t) => t.thread_id).includes(threadId), "search(status=interrupted)");
    return {
      next: state.next,
      interrupts: state.interrupts.length,
      task_name: task.name,
      thread_status: thread.status,
      thread_graph_id: thread.metadata.graph_id,
      interrupted_threads: waiting.length,
    };
  });

  await step("stream_resume", async () => {
    const parts = await collect(
      client.runs.stream(threadId, ASSISTANT, {
        input: {},
        command: { resume: { decisions: [{ type: "approve" }] } },
        streamMode: ["values", "updates"],
      }),
    );
    const events = parts.map((p) => p.event);
    check(events[0] === "metadata", "the first event is not metadata", events);
    check(parts[0].data.run_id !== firstRunId, "the resume reused the first run", parts[0]);
    check(!events.includes("error"), "an error event", parts.filter((p) => p.event === "error"));
    const values = parts.filter((p) => p.event === "values");
    const final = values[values.length - 1].data;
    check(!("__interrupt__" in final), "still interrupted", final);
    checkNoReconnects();
    check(lastMessage(final)?.content === "finished", "did not finish", lastMessage(final));
    const tools = final.messages.filter((m) => m.type === "tool").map((m) => m.name);
    check(tools.includes("notes_delete"), "the approved delete did not run", tools);
    const thread = await client.threads.get(threadId);
    check(thread.status === "idle", "thread status after resume", thread.status);
    return {
      events: [...new Set(events)].sort(),
      last_message: lastMessage(final).content,
      tools,
      thread_status: thread.status,
    };
  });

  await step("get_history", async () => {
    const history = await client.threads.getHistory(threadId, { limit: 100 });
    check(Array.isArray(history) && history.length > 5, "too short a history", history.length);
    check(lastMessage(history[0].values)?.content === "finished", "newest first", history[0]);
    check(history[0].next.length === 0, "the newest state has next", history[0].next);
    const paused = history.filter((h) => h.next.includes("gate"));
    check(paused.length >= 1, "no history state paused at the gate");
    const limited = await client.threads.getHistory(threadId, { limit: 2 });
    check(limited.length === 2, "limit is not honoured", limited.length);
    check(
      limited[0].checkpoint.checkpoint_id === history[0].checkpoint.checkpoint_id,
      "limited history does not start at the head",
    );
    return {
      length: history.length,
      newest_last_message: lastMessage(history[0].values).content,
      paused_at_gate: paused.length,
      limited: limited.length,
    };
  });

  await step("state_at_checkpoint", async () => {
    const history = await client.threads.getHistory(threadId, { limit: 100 });
    const paused = history.find((h) => h.next.includes("gate"));
    const byId = await client.threads.getState(threadId, paused.checkpoint.checkpoint_id);
    check(byId.checkpoint.checkpoint_id === paused.checkpoint.checkpoint_id, "GET state/{id}", byId);
    check(byId.next[0] === "gate", "the paused state's next", byId.next);
    const byConfig = await client.threads.getState(threadId, paused.checkpoint);
    check(
      byConfig.checkpoint.checkpoint_id === paused.checkpoint.checkpoint_id,
      "POST state/checkpoint",
      byConfig,
    );
    return {
      next: byId.next,
      messages: byId.values.messages.length,
      same_by_config: byConfig.values.messages.length === byId.values.messages.length,
    };
  });

  await step("create_and_join", async () => {
    const created = [];
    const run = await client.runs.create(threadId, ASSISTANT, {
      input: { messages: [{ role: "user", content: "background" }] },
      onRunCreated: (meta) => created.push(meta),
    });
    check(typeof run.run_id === "string" && run.thread_id === threadId, "the run", run);
    check(["pending", "running", "success"].includes(run.status), "run status", run.status);
    check(created[0]?.run_id === run.run_id, "onRunCreated (Content-Location)", created);
    const values = await client.runs.join(threadId, run.run_id);
    check(lastMessage(values)?.content === "echo: background", "join values", values);
    const finished = await client.runs.get(threadId, run.run_id);
    check(finished.status === "success", "joined run status", finished.status);
    const runs = await client.runs.list(threadId);
    check(runs.length === 3 && runs.every((r) => r.status === "success"), "runs.list", runs);
    return {
      created_status: run.status,
      joined_last_message: lastMessage(values).content,
      final_status: finished.status,
      runs_on_thread: runs.length,
    };
  });

  await step("cancel", async () => {
    const thread = await client.threads.create();
    const run = await client.runs.create(thread.thread_id, ASSISTANT, {
      input: { messages: [{ role: "user", content: "slow walk" }] },
    });
    await waitForStatus(client, thread.thread_id, run.run_id, ["running"]);
    const started = Date.now();
    const answer = await client.runs.cancel(thread.thread_id, run.run_id, true);
    const cancelMs = Date.now() - started;
    check(answer === undefined, "cancel with wait answers 204 with no body", answer);
    const cancelled = await client.runs.get(thread.thread_id, run.run_id);
    check(cancelled.status === "interrupted", "cancelled run status", cancelled.status);
    const after = await client.threads.get(thread.thread_id);
    check(after.status === "idle", "thread status after cancel", after.status);
    // Without wait: 202, and the run still ends interrupted.
    const second = await client.runs.create(thread.thread_id, ASSISTANT, {
      input: { messages: [{ role: "user", content: "slow again" }] },
    });
    await waitForStatus(client, thread.thread_id, second.run_id, ["running"]);
    const accepted = await client.runs.cancel(thread.thread_id, second.run_id);
    check(accepted === undefined, "cancel without wait answers 202", accepted);
    const ended = await waitForStatus(client, thread.thread_id, second.run_id, [
      "interrupted",
      "success",
      "error",
    ]);
    check(ended.status === "interrupted", "the run was not cancelled", ended.status);
    return {
      status: cancelled.status,
      thread_status: after.status,
      cancel_ms: cancelMs,
      no_wait_status: ended.status,
    };
  });

  await step("wait", async () => {
    const thread = await client.threads.create();
    const values = await client.runs.wait(thread.thread_id, ASSISTANT, {
      input: { messages: [{ role: "user", content: "waited" }] },
    });
    check(lastMessage(values)?.content === "echo: waited", "wait values", values);
    const stateless = await client.runs.wait(null, ASSISTANT, {
      input: { messages: [{ role: "user", content: "stateless" }] },
    });
    check(lastMessage(stateless)?.content === "echo: stateless", "stateless wait", stateless);
    return {
      last_message: lastMessage(values).content,
      messages: values.messages.length,
      stateless_last_message: lastMessage(stateless).content,
    };
  });

  await step("stateless_stream", async () => {
    // A stateless streamed run with the options agent-chat-ui sends.
    const created = [];
    const parts = await collect(
      client.runs.stream(null, ASSISTANT, {
        input: { messages: [{ role: "user", content: "no thread" }] },
        streamMode: ["values", "messages-tuple", "custom"],
        streamSubgraphs: true,
        streamResumable: true,
        onDisconnect: "continue",
        onRunCreated: (meta) => created.push(meta),
      }),
    );
    const events = parts.map((p) => p.event.split("|")[0]);
    check(events[0] === "metadata" && created.length === 1, "metadata / Content-Location", {
      events,
      created,
    });
    check(!events.includes("error"), "an error event", parts.filter((p) => p.event === "error"));
    const values = parts.filter((p) => p.event === "values");
    const final = values[values.length - 1]?.data;
    check(lastMessage(final)?.content === "echo: no thread", "stateless values", final);
    checkNoReconnects();
    return { events: [...new Set(events)].sort(), last_message: lastMessage(final).content };
  });

  await step("unknown_thread_404", async () => {
    const get = await expectHttpError(() => client.threads.get(UNKNOWN_THREAD));
    check(get.threw && get.status === 404, "threads.get of an unknown thread", get);
    const body = JSON.parse(get.text);
    check(body.error === "not_found" && typeof body.message === "string", "error body", body);
    const state = await expectHttpError(() => client.threads.getState(UNKNOWN_THREAD));
    check(state.threw && state.status === 404, "threads.getState of an unknown thread", state);
    const stream = await expectHttpError(() =>
      collect(client.runs.stream(UNKNOWN_THREAD, ASSISTANT, { input: HELLO })),
    );
    check(stream.threw && stream.status === 404, "runs.stream on an unknown thread", stream);
    return { get: get.status, error: body.error, state: state.status, stream: stream.status };
  });
}

try {
  await main();
  console.log(JSON.stringify({ ok: true, sdk_version: SDK_VERSION, steps }));
} catch (error) {
  console.error(error?.stack ?? String(error));
  console.log(
    JSON.stringify({
      ok: false,
      sdk_version: SDK_VERSION,
      steps,
      failed_step: current,
      error: String(error?.message ?? error),
    }),
  );
  process.exitCode = 1;
}
