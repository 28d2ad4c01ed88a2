// relaygraph review console. Plain JavaScript, no build step, no third-party code.
//
// Safety rule for this file: data from the API (tool arguments, messages, errors, names)
// comes from models and users. It only ever reaches the page as text: through the
// el() helper (textContent / whitelisted attributes), never innerHTML.
"use strict";

(() => {
  const API = "/api/v1";
  const KEY_STORAGE = "relaygraph.console.apiKey";
  const POLL_MS = 3000;

  const state = {
    me: null,
    tools: new Map(),      // name -> tool (risk, input_schema, ...)
    inbox: [],             // normalised inbox items
    inboxSignature: "",
    pollTimer: null,
    route: { name: "signin" },
    runsFilter: "",
    resuming: false,
  };

  // --- DOM helpers (text only) ---------------------------------------------------------

  const $ = (id) => document.getElementById(id);

  const SAFE_ATTRS = new Set([
    "class", "id", "href", "type", "title", "role", "for", "value", "disabled", "hidden",
    "aria-label", "aria-pressed", "aria-current", "aria-live", "aria-invalid", "aria-describedby",
    "rows", "spellcheck", "placeholder", "maxlength", "datetime", "data-kind", "data-id", "data-testid", "tabindex",
  ]);

  /** Build an element; children are nodes or strings (always inserted as text). */
  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [name, value] of Object.entries(attrs || {})) {
      if (value === null || value === undefined || value === false) continue;
      if (name.startsWith("on") && typeof value === "function") {
        node.addEventListener(name.slice(2), value);
      } else if (SAFE_ATTRS.has(name)) {
        if (name === "href" && !String(value).startsWith("#/")) continue;  // our own routes only
        node.setAttribute(name, value === true ? "" : String(value));
      }
    }
    for (const child of children.flat()) {
      if (child === null || child === undefined || child === false) continue;
      node.append(child instanceof Node ? child : document.createTextNode(String(child)));
    }
    return node;
  }

  function setChildren(node, ...children) {
    node.replaceChildren(...children.flat().filter((c) => c !== null && c !== undefined && c !== false)
      .map((c) => (c instanceof Node ? c : document.createTextNode(String(c)))));
  }

  function showError(id, message) {
    const node = $(id);
    if (!node) return;
    node.textContent = message || "";
    node.hidden = !message;
  }

  const pretty = (value) => JSON.stringify(value, null, 2);
  const short = (id) => (id ? String(id).slice(0, 8) : "");

  function badge(kind, value) {
    const text = value || "unknown";
    return el("span", { class: `${kind} ${kind}-${String(text).replace(/[^a-z_-]/gi, "")}` }, text);
  }

  function parseTime(value) {
    if (!value) return null;
    const text = String(value);
    // Naive timestamps from the API are UTC.
    const date = new Date(/[zZ]|[+-]\d\d:?\d\d$/.test(text) ? text : `${text}Z`);
    return Number.isNaN(date.getTime()) ? null : date;
  }

  function age(value) {
    const date = parseTime(value);
    if (!date) return "";
    const seconds = Math.max(0, (Date.now() - date.getTime()) / 1000);
    if (seconds < 60) return "just now";
    if (seconds < 3600) return `${Math.floor(seconds / 60)} min ago`;
    if (seconds < 86400) return `${Math.floor(seconds / 3600)} h ago`;
    return `${Math.floor(seconds / 86400)} d ago`;
  }

  function timeEl(value) {
    const date = parseTime(value);
    return el("time", { datetime: date ? date.toISOString() : "", title: date ? date.toISOString() : "" },
      date ? date.toLocaleString() : "—");
  }

  // --- API --------------------------------------------------------------------------------

  class ApiError extends Error {
    constructor(status, code, message) {
      super(message);
      this.status = status;
      this.code = code;
    }
  }

  function apiKey() { return sessionStorage.getItem(KEY_STORAGE); }

  // The credential is an API key (rg_...) or a JWT (three base64url parts); a JWT goes as a
  // bearer token, a key as x-api-key. Both are kept in this tab's session storage only.
  const JWT_SHAPE = /^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*$/;
  function isJwt(token) { return !!token && !token.startsWith("rg_") && JWT_SHAPE.test(token); }

  function authHeaders() {
    const token = apiKey() || "";
    return isJwt(token) ? { Authorization: `Bearer ${token}` } : { "x-api-key": token };
  }

  /** Seconds since the epoch at which a JWT expires (its exp claim), or null. */
  function jwtExpiry(token) {
    try {
      const part = token.split(".")[1].replace(/-/g, "+").replace(/_/g, "/");
      const claims = JSON.parse(atob(part + "=".repeat((4 - (part.length % 4)) % 4)));
      return typeof claims.exp === "number" ? claims.exp : null;
    } catch {
      return null;
    }
  }

  let expiryTimer = null;
  function watchExpiry(token) {
    clearTimeout(expiryTimer);
    expiryTimer = null;
    const exp = isJwt(token) ? jwtExpiry(token) : null;
    if (exp === null) return;
    const left = exp * 1000 - Date.now();
    // setTimeout holds at most ~24.8 days; a longer-lived token is checked on each 401.
    if (left < 2 ** 31 - 1) expiryTimer = setTimeout(() => signOut("Your token expired; sign in again."), Math.max(0, left));
  }

  async function api(path, options = {}) {
    const headers = { ...authHeaders(), Accept: "application/json" };
    if (options.body !== undefined) headers["Content-Type"] = "application/json";
    const response = await fetch(API + path, {
      method: options.method || (options.body !== undefined ? "POST" : "GET"),
      headers,
      body: options.body !== undefined ? JSON.stringify(options.body) : undefined,
      cache: "no-store",
    });
    if (response.status === 401) {
      signOut(isJwt(apiKey() || "")
        ? "Your token was not accepted (expired?). Sign in again."
        : "Your API key was not accepted (expired or revoked?). Sign in again.");
      throw new ApiError(401, "unauthorized", "not signed in");
    }
    const text = await response.text();
    let data = null;
    try { data = text ? JSON.parse(text) : null; } catch { data = null; }
    if (!response.ok) {
      const code = (data && data.error) || `http_${response.status}`;
      const message = (data && data.message) || text || response.statusText;
      throw new ApiError(response.status, code, message);
    }
    return data;
  }

  /** POST that answers with Server-Sent Events; calls onEvent({event, data, id}). */
  async function apiStream(path, body, onEvent) {
    const response = await fetch(API + path, {
      method: "POST",
      headers: { ...authHeaders(), "Content-Type": "application/json", Accept: "text/event-stream" },
      body: JSON.stringify(body),
      cache: "no-store",
    });
    if (!response.ok) {
      let data = null;
      try { data = await response.json(); } catch { data = null; }
      throw new ApiError(response.status, (data && data.error) || `http_${response.status}`,
        (data && data.message) || response.statusText);
    }
    const reader = response.body.getReader();
    const decoder = new TextDecoder();
    let buffer = "";
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      buffer += decoder.decode(value, { stream: true }).replace(/\r\n/g, "\n");
      let cut;
      while ((cut = buffer.indexOf("\n\n")) >= 0) {
        const block = buffer.slice(0, cut);
        buffer = buffer.slice(cut + 2);
        const event = { event: "message", data: "", id: null };
        const lines = [];
        for (const line of block.split("\n")) {
          if (line.startsWith(":")) continue;  // heartbeat comment
          const colon = line.indexOf(":");
          const field = colon < 0 ? line : line.slice(0, colon);
          const val = colon < 0 ? "" : line.slice(colon + 1).replace(/^ /, "");
          if (field === "event") event.event = val;
          else if (field === "data") lines.push(val);
          else if (field === "id") event.id = val;
        }
        if (!lines.length) continue;
        try { event.data = JSON.parse(lines.join("\n")); } catch { event.data = lines.join("\n"); }
        onEvent(event);
      }
    }
  }

  // --- JSON Schema validation ------------------------------------------------------------
  // A small validator for the subset of JSON Schema that our tools' pydantic input models
  // produce: type (incl. lists and integer), properties, required, additionalProperties,
  // enum, const, string length and pattern, numeric bounds, items and array length,
  // anyOf / oneOf / allOf, and local $ref ("#/$defs/..."). Formats are not checked. The
  // server validates again at the gate: this only stops obvious mistakes before sending.

  function typeOf(value) {
    if (value === null) return "null";
    if (Array.isArray(value)) return "array";
    if (typeof value === "number") return Number.isInteger(value) ? "integer" : "number";
    return typeof value;
  }

  function resolveRef(root, ref) {
    if (!ref.startsWith("#/")) return null;
    let node = root;
    for (const part of ref.slice(2).split("/")) {
      node = node && node[part.replace(/~1/g, "/").replace(/~0/g, "~")];
    }
    return node || null;
  }

  function validateSchema(value, schema, root = schema, path = "$", depth = 0) {
    const errors = [];
    if (schema === true || schema === undefined || schema === null) return errors;
    if (schema === false) return [`${path}: no value is allowed here`];
    if (depth > 40) return [`${path}: the schema nests too deeply to check`];
    if (schema.$ref) {
      const target = resolveRef(root, schema.$ref);
      if (!target) return [`${path}: cannot resolve ${schema.$ref}`];
      errors.push(...validateSchema(value, target, root, path, depth + 1));
    }
    const actual = typeOf(value);
    if (schema.type !== undefined) {
      const allowed = Array.isArray(schema.type) ? schema.type : [schema.type];
      const fits = allowed.some((t) => t === actual || (t === "number" && actual === "integer"));
      if (!fits) return [...errors, `${path}: expected ${allowed.join(" or ")}, got ${actual}`];
    }
    if (schema.const !== undefined && JSON.stringify(schema.const) !== JSON.stringify(value)) {
      errors.push(`${path}: must be ${JSON.stringify(schema.const)}`);
    }
    if (Array.isArray(schema.enum) && !schema.enum.some((v) => JSON.stringify(v) === JSON.stringify(value))) {
      errors.push(`${path}: must be one of ${schema.enum.map((v) => JSON.stringify(v)).join(", ")}`);
    }
    if (actual === "string") {
      const length = [...value].length;
      if (schema.minLength !== undefined && length < schema.minLength) errors.push(`${path}: at least ${schema.minLength} character(s)`);
      if (schema.maxLength !== undefined && length > schema.maxLength) errors.push(`${path}: at most ${schema.maxLength} characters`);
      if (schema.pattern) {
        let re = null;
        try { re = new RegExp(schema.pattern, "u"); } catch { re = null; }
        if (re && !re.test(value)) errors.push(`${path}: must match ${schema.pattern}`);
      }
    }
    if (actual === "integer" || actual === "number") {
      if (schema.minimum !== undefined && value < schema.minimum) errors.push(`${path}: must be ≥ ${schema.minimum}`);
      if (schema.maximum !== undefined && value > schema.maximum) errors.push(`${path}: must be ≤ ${schema.maximum}`);
      if (schema.exclusiveMinimum !== undefined && value <= schema.exclusiveMinimum) errors.push(`${path}: must be > ${schema.exclusiveMinimum}`);
      if (schema.exclusiveMaximum !== undefined && value >= schema.exclusiveMaximum) errors.push(`${path}: must be < ${schema.exclusiveMaximum}`);
      if (schema.multipleOf !== undefined && Math.abs(value / schema.multipleOf - Math.round(value / schema.multipleOf)) > 1e-9) errors.push(`${path}: must be a multiple of ${schema.multipleOf}`);
    }
    if (actual === "array") {
      if (schema.minItems !== undefined && value.length < schema.minItems) errors.push(`${path}: at least ${schema.minItems} item(s)`);
      if (schema.maxItems !== undefined && value.length > schema.maxItems) errors.push(`${path}: at most ${schema.maxItems} items`);
      if (schema.items && typeof schema.items === "object") {
        value.forEach((item, i) => errors.push(...validateSchema(item, schema.items, root, `${path}[${i}]`, depth + 1)));
      }
      if (schema.uniqueItems) {
        const seen = new Set(value.map((v) => JSON.stringify(v)));
        if (seen.size !== value.length) errors.push(`${path}: items must be unique`);
      }
    }
    if (actual === "object") {
      const props = schema.properties || {};
      for (const name of schema.required || []) {
        if (!(name in value)) errors.push(`${path}: missing required property "${name}"`);
      }
      for (const [name, item] of Object.entries(value)) {
        const child = `${path}.${name}`;
        if (name in props) errors.push(...validateSchema(item, props[name], root, child, depth + 1));
        else if (schema.additionalProperties === false) errors.push(`${path}: unknown property "${name}"`);
        else if (schema.additionalProperties && typeof schema.additionalProperties === "object") {
          errors.push(...validateSchema(item, schema.additionalProperties, root, child, depth + 1));
        }
      }
    }
    for (const sub of schema.allOf || []) errors.push(...validateSchema(value, sub, root, path, depth + 1));
    const variants = schema.anyOf || schema.oneOf;
    if (Array.isArray(variants)) {
      const results = variants.map((sub) => validateSchema(value, sub, root, path, depth + 1));
      const passing = results.filter((r) => r.length === 0).length;
      if (schema.anyOf && passing === 0) errors.push(...results.reduce((a, b) => (b.length < a.length ? b : a)));
      if (schema.oneOf && passing !== 1) errors.push(`${path}: must match exactly one allowed form (matched ${passing})`);
    }
    return errors;
  }

  /** Parse and check edited arguments: {ok, args, errors, note}. */
  function checkEditedArgs(toolName, text) {
    let args;
    try {
      args = JSON.parse(text);
    } catch (err) {
      return { ok: false, errors: [`not valid JSON: ${err.message}`] };
    }
    if (typeOf(args) !== "object") return { ok: false, errors: ["the arguments must be a JSON object"] };
    const tool = state.tools.get(toolName);
    if (!tool) return { ok: true, args, errors: [], note: "no schema known for this tool here; the server checks it" };
    const errors = validateSchema(args, tool.input_schema);
    return { ok: errors.length === 0, args, errors };
  }

  // --- session ----------------------------------------------------------------------------

  async function signIn(key) {
    const exp = isJwt(key) ? jwtExpiry(key) : null;
    if (exp !== null && exp * 1000 <= Date.now()) {
      throw new ApiError(401, "token_expired", "That token has expired.");
    }
    sessionStorage.setItem(KEY_STORAGE, key);
    try {
      state.me = await api("/whoami");
    } catch (err) {
      sessionStorage.removeItem(KEY_STORAGE);
      throw err;
    }
    watchExpiry(key);
    try {
      const listed = await api("/tools");
      state.tools = new Map((listed.tools || []).map((tool) => [tool.name, tool]));
    } catch {
      state.tools = new Map();
    }
    renderWhoami();
  }

  function signOut(message) {
    sessionStorage.removeItem(KEY_STORAGE);
    clearTimeout(expiryTimer);
    expiryTimer = null;
    state.me = null;
    state.inbox = [];
    state.inboxSignature = "";
    stopPolling();
    $("whoami").hidden = true;
    $("nav").hidden = true;
    showError("signin-error", message || "");
    if (location.hash !== "#/signin") location.hash = "#/signin";
    else route();
  }

  function isAdmin() { return !!state.me && state.me.scopes.includes("tenant:read"); }
  function isReviewer() { return !!state.me && state.me.scopes.includes("reviews:decide"); }
  function canReadAudit() { return !!state.me && state.me.scopes.includes("audit:read"); }

  function renderWhoami() {
    const me = state.me;
    $("who-user").textContent = me.user;
    $("who-tenant").textContent = `tenant ${me.tenant}`;
    $("who-roles").textContent = me.roles.join(", ") || "no role";
    $("whoami").hidden = false;
    $("nav").hidden = false;
    for (const link of document.querySelectorAll("#nav a[data-admin]")) {
      link.hidden = link.dataset.section === "audit" ? !canReadAudit() : !isAdmin();
    }
  }

  // --- routing ----------------------------------------------------------------------------

  function parseRoute() {
    const parts = location.hash.replace(/^#\/?/, "").split("/").map(decodeURIComponent);
    const [name, id] = parts;
    if (!apiKey() || !state.me) return { name: "signin" };
    if (name === "thread" && id) return { name: "thread", id };
    if (name === "approval" && id) return { name: "approval", id };
    if (name === "runs" && isAdmin()) return { name: "runs" };
    if (name === "audit" && canReadAudit()) return { name: "audit" };
    return { name: "inbox" };
  }

  function showView(name) {
    for (const view of document.querySelectorAll("main > .view")) view.hidden = view.id !== `view-${name}`;
    for (const link of document.querySelectorAll("#nav a")) {
      const current = link.dataset.section === name || (link.dataset.section === "inbox" && ["thread", "approval"].includes(name));
      if (current) link.setAttribute("aria-current", "page");
      else link.removeAttribute("aria-current");
    }
  }

  function route() {
    state.routed = (state.routed || 0) + 1;
    state.route = parseRoute();
    showView(state.route.name);
    window.scrollTo(0, 0);
    if (state.route.name === "signin") {
      $("api-key").focus();
      return;
    }
    startPolling();
    if (state.route.name === "inbox") refreshInbox();
    else if (state.route.name === "thread") loadThread(state.route.id);
    else if (state.route.name === "approval") loadApproval(state.route.id);
    else if (state.route.name === "runs") loadRuns();
    else if (state.route.name === "audit") loadAudit();
  }

  // --- inbox ------------------------------------------------------------------------------

  function riskOf(name, description) {
    const tool = state.tools.get(name);
    if (tool) return tool.risk;
    const match = /\((read|write|destructive) tool\)/.exec(description || "");
    return match ? match[1] : "unknown";
  }

  function threadItems(thread) {
    const requests = [];
    for (const list of Object.values(thread.interrupts || {})) {
      for (const pending of list) {
        const value = pending && pending.value;
        if (value && Array.isArray(value.action_requests)) requests.push(...value.action_requests);
      }
    }
    const tools = [...new Set(requests.map((r) => String(r.name)))];
    const risks = [...new Set(requests.map((r) => riskOf(r.name, r.description)))];
    const metadata = thread.metadata || {};
    return {
      kind: "graph",
      id: thread.thread_id,
      href: `#/thread/${encodeURIComponent(thread.thread_id)}`,
      title: tools.length ? tools.join(", ") : "Awaiting input",
      detail: requests.length ? String(requests[0].description || "") : "The graph paused for a human.",
      assistant: metadata.assistant_id || metadata.graph_id || "",
      tools,
      risks,
      at: thread.updated_at || thread.created_at,
    };
  }

  function approvalItem(approval) {
    return {
      kind: "mcp",
      id: approval.approval_id,
      href: `#/approval/${encodeURIComponent(approval.approval_id)}`,
      title: String(approval.tool),
      detail: `${approval.requester} via ${approval.via || "mcp"}: ${approval.reason || ""}`,
      assistant: "",
      tools: [String(approval.tool)],
      risks: [approval.risk || riskOf(approval.tool)],
      at: approval.created_at,
    };
  }

  async function fetchInbox() {
    const threads = await api("/threads/search", {
      body: { status: "interrupted", limit: 100, sort_by: "updated_at", sort_order: "desc" },
    });
    let approvals = [];
    state.approvalsAvailable = false;
    if (isReviewer()) {
      try {
        approvals = (await api("/approvals?status=pending&limit=100")).approvals || [];
        state.approvalsAvailable = true;
      } catch (err) {
        if (err.status !== 404 && err.status !== 403) throw err;  // no approvals API here
      }
    }
    state.threadTotal = threads.length;
    if (threads.length >= 100) {
      try { state.threadTotal = await api("/threads/count", { body: { status: "interrupted" } }); } catch { /* keep the listed count */ }
    }
    const items = [...threads.map(threadItems), ...approvals.map(approvalItem)];
    items.sort((a, b) => (parseTime(b.at) || 0) - (parseTime(a.at) || 0));
    return items;
  }

  function matchesFilters(item) {
    const assistant = $("filter-assistant").value;
    const tool = $("filter-tool").value;
    const risk = $("filter-risk").value;
    const ageFilter = $("filter-age").value;
    if (assistant && item.assistant !== assistant) return false;
    if (tool && !item.tools.includes(tool)) return false;
    if (risk && !item.risks.includes(risk)) return false;
    if (ageFilter) {
      const at = parseTime(item.at);
      const hours = at ? (Date.now() - at.getTime()) / 3600000 : Infinity;
      if (ageFilter === "1h" && hours > 1) return false;
      if (ageFilter === "24h" && hours > 24) return false;
      if (ageFilter === "old" && hours <= 24) return false;
    }
    return true;
  }

  function fillSelect(select, values) {
    const current = select.value;
    const wanted = ["", ...values];
    const existing = [...select.options].map((o) => o.value);
    if (JSON.stringify(existing) === JSON.stringify(wanted)) return;
    const first = select.options[0].cloneNode(true);
    setChildren(select, first, values.map((v) => el("option", { value: v }, v)));
    select.value = wanted.includes(current) ? current : "";
  }

  function renderInbox() {
    const items = state.inbox;
    fillSelect($("filter-assistant"), [...new Set(items.map((i) => i.assistant).filter(Boolean))].sort());
    fillSelect($("filter-tool"), [...new Set(items.flatMap((i) => i.tools))].sort());
    const shown = items.filter(matchesFilters);
    const graphCount = items.filter((i) => i.kind === "graph").length;
    const mcpCount = items.length - graphCount;
    const parts = [`${items.length} awaiting a decision`, `${graphCount} interrupted thread${graphCount === 1 ? "" : "s"}`];
    if (state.approvalsAvailable) parts.push(`${mcpCount} MCP approval${mcpCount === 1 ? "" : "s"}`);
    if (state.threadTotal > graphCount) parts.push(`newest ${graphCount} of ${state.threadTotal} threads listed`);
    if (shown.length !== items.length) parts.push(`${shown.length} shown`);
    $("inbox-summary").textContent = parts.join(" · ");
    $("inbox-empty").hidden = shown.length > 0;
    $("inbox-empty").textContent = items.length ? "No item matches these filters." : "Nothing awaits a decision.";
    setChildren($("inbox-list"), shown.map((item) => el("li", {},
      el("a", { class: "inbox-item", href: item.href, "data-kind": item.kind, "data-id": item.id },
        el("div", {}, item.risks.map((r) => badge("risk", r)),
          el("div", { class: "tags" }, el("span", { class: `tag tag-${item.kind}` }, item.kind === "mcp" ? "MCP" : "graph"))),
        el("div", {},
          el("div", { class: "title" }, item.title),
          el("div", { class: "detail", title: item.detail }, item.detail),
          el("div", { class: "meta muted" }, [
            item.assistant ? `assistant ${item.assistant}` : null,
            item.kind === "graph" ? `thread ${short(item.id)}` : `approval ${short(item.id)}`,
          ].filter(Boolean).join(" · "))),
        el("div", { class: "age" }, age(item.at))))));
  }

  function updateBadge() {
    const count = state.inbox.length;
    const node = $("inbox-badge");
    node.textContent = String(count);
    node.classList.toggle("has-items", count > 0);
  }

  async function refreshInbox() {
    if (!state.me) return;
    try {
      const items = await fetchInbox();
      const signature = JSON.stringify(items) + (state.approvalsAvailable ? "1" : "0");
      state.inbox = items;
      updateBadge();
      $("live").classList.remove("stale");
      $("live").title = `Updated ${new Date().toLocaleTimeString()}`;
      showError("inbox-error", "");
      if (state.route.name === "inbox" && (signature !== state.inboxSignature || !$("inbox-list").childElementCount)) {
        state.inboxSignature = signature;
        renderInbox();
      } else if (state.route.name === "inbox") {
        // Ages move on even when nothing else changed.
        for (const [i, node] of [...$("inbox-list").querySelectorAll(".age")].entries()) {
          const item = state.inbox.filter(matchesFilters)[i];
          if (item) node.textContent = age(item.at);
        }
      }
    } catch (err) {
      if (err.status === 401) return;
      $("live").classList.add("stale");
      showError("inbox-error", `Could not refresh the inbox: ${err.message}`);
    }
  }

  function startPolling() {
    if (state.pollTimer) return;
    state.pollTimer = setInterval(() => {
      if (document.hidden) return;
      refreshInbox();
      if (state.route.name === "thread") checkThreadChanged(state.route.id);
    }, POLL_MS);
    refreshInbox();
  }

  function stopPolling() {
    clearInterval(state.pollTimer);
    state.pollTimer = null;
  }

  // --- thread view ------------------------------------------------------------------------

  function messageText(content) {
    if (typeof content === "string") return content;
    if (Array.isArray(content)) {
      return content.map((part) => (typeof part === "string" ? part : part && part.type === "text" ? part.text : pretty(part))).join("\n");
    }
    return content === undefined || content === null ? "" : pretty(content);
  }

  function renderConversation(messages) {
    const list = $("conversation");
    if (!messages.length) {
      setChildren(list, el("li", { class: "muted" }, "No messages yet."));
      return;
    }
    const roleName = { human: "User", ai: "Assistant", tool: "Tool", system: "System" };
    setChildren(list, messages.map((m) => {
      const type = m.type || m.role || "message";
      const calls = (m.tool_calls || []).map((c) => el("span", { class: "call-chip", title: pretty(c.args) }, `${c.name}(${short(c.id)})`));
      const role = type === "tool" ? `Tool ${m.name || ""}${m.status === "error" ? " · error" : ""}` : roleName[type] || type;
      return el("li", { class: `msg msg-${String(type).replace(/[^a-z]/gi, "")}`, "data-testid": "message" },
        el("div", { class: "msg-role" }, role),
        el("div", { class: "msg-text" }, messageText(m.content)),
        calls.length ? el("div", {}, calls) : null);
    }));
  }

  function pendingInterrupts(thread) {
    const out = [];
    for (const list of Object.values(thread.interrupts || {})) {
      for (const pending of list) out.push(pending);
    }
    return out;
  }

  function decisionEditor(interruptId, index, request, preview) {
    const toolName = String(request.name);
    const risk = riskOf(toolName, request.description);
    const tool = state.tools.get(toolName);
    const allowed = ((request.review_config || {}).allowed_decisions) || ["approve", "edit", "reject"];
    const model = { type: "approve", valid: true, args: request.args, message: "" };
    const editorId = `edit-${index}`;
    const validationId = `validation-${index}`;
    const editor = el("textarea", { id: editorId, rows: 10, spellcheck: "false", "aria-label": `Edited arguments for ${toolName}`, "aria-describedby": validationId });
    editor.value = pretty(request.args || {});
    const validation = el("p", { id: validationId, class: "validation", role: "status" });
    const message = el("textarea", { rows: 3, "aria-label": "Message to the assistant", class: "reject-message" });
    message.placeholder = "Why this is rejected (the assistant sees this).";
    const editPane = el("div", { class: "edit-pane" },
      el("div", { class: "field-label" }, tool ? "Edit arguments (checked against the tool's input schema)" : "Edit arguments"),
      editor, validation);
    const rejectPane = el("div", { class: "reject-pane" }, el("div", { class: "field-label" }, "Message"), message);
    editPane.hidden = true;
    rejectPane.hidden = true;

    const validate = () => {
      const result = checkEditedArgs(toolName, editor.value);
      model.valid = result.ok;
      model.args = result.args;
      editor.classList.toggle("invalid", !result.ok);
      editor.setAttribute("aria-invalid", result.ok ? "false" : "true");
      validation.className = `validation ${result.ok ? "ok" : "bad"}`;
      validation.textContent = result.ok
        ? (result.note ? `✓ ${result.note}` : "✓ Arguments match the tool's schema.")
        : `✗ ${result.errors.slice(0, 5).join("; ")}`;
      onChange();
    };
    editor.addEventListener("input", validate);
    message.addEventListener("input", () => { model.message = message.value; });

    const buttons = {};
    const choose = (type) => {
      model.type = type;
      for (const [name, button] of Object.entries(buttons)) button.setAttribute("aria-pressed", String(name === type));
      editPane.hidden = type !== "edit";
      rejectPane.hidden = type !== "reject";
      if (type === "edit") { validate(); editor.focus(); } else { model.valid = true; onChange(); }
      if (type === "reject") message.focus();
    };
    const labels = { approve: "Approve", edit: "Edit", reject: "Reject" };
    for (const type of ["approve", "edit", "reject"]) {
      if (!allowed.includes(type)) continue;
      buttons[type] = el("button", { type: "button", class: `btn choice-${type}`, "aria-pressed": String(type === "approve"), onclick: () => choose(type) }, labels[type]);
    }
    let onChange = () => {};
    const node = el("div", { class: "action", "data-testid": "action" },
      el("div", { class: "action-head" }, el("span", { class: "tool" }, toolName), badge("risk", risk),
        tool && tool.supports_dry_run ? el("span", { class: "tag" }, "dry run available") : null),
      el("p", { class: "why" }, String(request.description || "This action needs a human decision.")),
      tool && tool.description ? el("p", { class: "muted" }, tool.description) : null,
      el("div", { class: "field-label" }, "Arguments"),
      el("pre", { class: "args" }, pretty(request.args || {})),
      preview ? [el("div", { class: "field-label" }, "Dry-run preview (nothing was changed)"), el("pre", { class: "preview" }, pretty(preview))] : null,
      el("div", { class: "decision" }, el("div", { class: "choice", role: "group", "aria-label": "Decision" }, Object.values(buttons))),
      editPane, rejectPane);
    return {
      node,
      interruptId,
      model,
      setOnChange(fn) { onChange = fn; },
      decision() {
        if (model.type === "approve") return { type: "approve" };
        if (model.type === "reject") return { type: "reject", message: model.message || "rejected by the reviewer" };
        return { type: "edit", edited_action: { name: toolName, args: model.args } };
      },
    };
  }

  async function loadThread(threadId, keepResumed = false, force = false) {
    const load = (state.threadLoads = (state.threadLoads || 0) + 1);
    showError("thread-error", "");
    $("thread-id").textContent = short(threadId);
    $("thread-id").title = threadId;
    if (!state.resuming && !keepResumed) {
      $("resume-card").hidden = true;
      setChildren($("run-events"));
      $("run-final").hidden = true;
    }
    let thread;
    try {
      thread = await api(`/threads/${encodeURIComponent(threadId)}`);
    } catch (err) {
      setChildren($("actions"));
      $("actions").dataset.signature = "";
      setChildren($("conversation"));
      setChildren($("trace"));
      setChildren($("thread-status"));
      showError("thread-error", err.status === 404 ? "There is no such thread, or your key may not see it." : `Could not load the thread: ${err.message}`);
      return;
    }
    if (state.route.name !== "thread" || state.route.id !== threadId || load !== state.threadLoads) return;
    state.threadStamp = threadStamp(thread);
    $("thread-changed").hidden = true;
    const status = $("thread-status");
    status.className = `status status-${thread.status}`;
    status.textContent = thread.status;
    const md = thread.metadata || {};
    $("thread-meta").textContent = [
      md.assistant_id ? `assistant ${md.assistant_id}` : null,
      md.graph_id ? `graph ${md.graph_id}` : null,
      `created ${age(thread.created_at)}`,
      `updated ${age(thread.updated_at)}`,
    ].filter(Boolean).join(" · ");
    renderConversation(((thread.values || {}).messages) || []);
    renderPlan((thread.values || {}).plan);
    await renderActions(thread, force);
    loadTrace(threadId);
  }

  /** The planner graph's plan, when the thread's state has one (a list of steps or text). */
  function renderPlan(plan) {
    const card = $("plan-card");
    card.hidden = plan === undefined || plan === null;
    if (card.hidden) return;
    const steps = Array.isArray(plan) ? plan : Array.isArray(plan.steps) ? plan.steps : [plan];
    setChildren($("plan"), steps.map((step) => {
      if (typeof step === "string") return el("li", {}, step);
      const title = step.title || step.description || step.name || step.task;
      const status = step.status || step.state;
      return el("li", {}, status ? badge("status", String(status)) : null, " ",
        title ? String(title) : el("pre", {}, pretty(step)));
    }));
  }

  const threadStamp = (thread) => `${thread.status}|${thread.updated_at}`;

  /** Tell the reviewer when the open thread changed elsewhere (never re-render under them). */
  async function checkThreadChanged(threadId) {
    if (state.resuming || !state.threadStamp) return;
    let thread;
    try { thread = await api(`/threads/${encodeURIComponent(threadId)}`); } catch { return; }
    if (state.route.name !== "thread" || state.route.id !== threadId || state.resuming) return;
    const changed = threadStamp(thread) !== state.threadStamp;
    const notice = $("thread-changed");
    if (changed && notice.hidden) {
      setChildren(notice, `This thread changed since it was opened (now ${thread.status}). `,
        el("button", { type: "button", class: "btn btn-small", onclick: () => loadThread(threadId, false, true) }, "Reload"));
      notice.hidden = false;
    }
  }

  async function renderActions(thread, force = false) {
    const container = $("actions");
    const pending = pendingInterrupts(thread);
    // The same pending decision is already on screen: keep the reviewer's edits.
    const signature = JSON.stringify([thread.thread_id, pending.map((p) => p.id)]);
    if (!force && pending.length && container.dataset.signature === signature) return;
    container.dataset.signature = pending.length ? signature : "";
    if (!pending.length) {
      setChildren(container, el("p", { class: "muted", "data-testid": "no-action" },
        thread.status === "interrupted" ? "The thread is paused without an action request." : "Nothing awaits a decision on this thread."));
      return;
    }
    let previews = {};
    try {
      previews = (await api(`/console/threads/${encodeURIComponent(thread.thread_id)}/preview`)).previews || {};
    } catch {
      previews = {};
    }
    const editors = [];
    for (const interrupt of pending) {
      const value = interrupt.value || {};
      const requests = Array.isArray(value.action_requests) ? value.action_requests : [];
      const configs = Array.isArray(value.review_configs) ? value.review_configs : [];
      requests.forEach((request, i) => {
        const preview = (previews[interrupt.id] || [])[i] || null;
        editors.push(decisionEditor(interrupt.id, editors.length, { ...request, review_config: configs[i] }, preview));
      });
      if (!requests.length) {
        editors.push(null);
      }
    }
    const usable = editors.filter(Boolean);
    if (!usable.length) {
      setChildren(container, el("p", { class: "muted" }, "This interrupt is not a tool approval; answer it from the API."),
        el("pre", {}, pretty(pending.map((p) => p.value))));
      return;
    }
    const send = el("button", { type: "button", class: "btn btn-primary", id: "send-decision" }, "Send decision");
    const hint = el("span", { class: "muted", id: "send-hint", role: "status" });
    const refresh = () => {
      const invalid = usable.some((e) => e.model.type === "edit" && !e.model.valid);
      send.disabled = invalid || state.resuming;
      hint.textContent = invalid ? "Fix the edited arguments first." : "";
      const kinds = new Set(usable.map((e) => e.model.type));
      send.className = `btn ${kinds.size === 1 && kinds.has("approve") ? "btn-approve" : kinds.has("reject") && kinds.size === 1 ? "btn-reject" : "btn-primary"}`;
    };
    for (const editor of usable) editor.setOnChange(refresh);
    send.addEventListener("click", () => {
      if (usable.some((e) => e.model.type === "edit" && !e.model.valid)) { refresh(); return; }
      resume(thread, usable);
    });
    refresh();
    setChildren(container, usable.map((e) => e.node), el("div", { class: "send-row" }, send, hint));
  }

  function describeEvent(event) {
    const data = event.data;
    if (event.event === "metadata") return `run ${short(data && data.run_id)} started`;
    if (event.event === "error") return `error: ${(data && (data.message || data.error)) || "unknown"}`;
    if (event.event.startsWith("updates") && data && typeof data === "object") {
      return Object.entries(data).map(([node, update]) => {
        if (node === "__interrupt__") return "paused: a new decision is needed";
        const messages = (update && update.messages) || [];
        const bits = messages.map((m) => {
          if (m.tool_calls && m.tool_calls.length) return `proposes ${m.tool_calls.map((c) => c.name).join(", ")}`;
          const text = messageText(m.content);
          return text ? `“${text.length > 160 ? `${text.slice(0, 160)}…` : text}”` : m.type;
        });
        return `${node}${bits.length ? `: ${bits.join("; ")}` : ""}`;
      }).join(" · ");
    }
    return `${event.event}`;
  }

  async function resume(thread, editors) {
    if (state.resuming) return;
    const decisionsBy = new Map();
    for (const editor of editors) {
      if (!decisionsBy.has(editor.interruptId)) decisionsBy.set(editor.interruptId, []);
      decisionsBy.get(editor.interruptId).push(editor.decision());
    }
    const resumeValue = decisionsBy.size === 1
      ? { decisions: [...decisionsBy.values()][0] }
      : Object.fromEntries([...decisionsBy.entries()].map(([id, decisions]) => [id, { decisions }]));
    const md = thread.metadata || {};
    const body = {
      assistant_id: md.assistant_id || md.graph_id || "agent",
      input: {},
      command: { resume: resumeValue },
      stream_mode: ["updates"],
      on_disconnect: "continue",  // leaving the page must not cancel the decided run
      multitask_strategy: "reject",
    };
    state.resuming = true;
    state.threadStamp = null;  // our own run changes the thread: no "changed elsewhere" notice
    const send = $("send-decision");
    if (send) send.disabled = true;
    const events = $("run-events");
    const runStatus = $("run-status");
    $("resume-card").hidden = false;
    setChildren(events);
    $("run-final").hidden = true;
    runStatus.className = "status status-running";
    runStatus.textContent = "running";
    let failed = null;
    try {
      await apiStream(`/threads/${encodeURIComponent(thread.thread_id)}/runs/stream`, body, (event) => {
        if (event.event === "error") failed = (event.data && (event.data.message || event.data.error)) || "the run failed";
        events.append(el("li", {}, describeEvent(event)));
        events.scrollTop = events.scrollHeight;
      });
    } catch (err) {
      failed = err.message;
    }
    state.resuming = false;
    if (failed && send) send.disabled = false;  // the decision still waits: let them retry
    let after = null;
    try { after = await api(`/threads/${encodeURIComponent(thread.thread_id)}`); } catch { after = null; }
    const final = $("run-final");
    if (failed) {
      runStatus.className = "status status-error";
      runStatus.textContent = "error";
      final.className = "final error";
      final.textContent = failed;
      final.hidden = false;
    } else {
      const waiting = after && after.status === "interrupted";
      runStatus.className = `status status-${waiting ? "interrupted" : "success"}`;
      runStatus.textContent = waiting ? "waiting for a new decision" : "success";
      const messages = ((after && after.values) || {}).messages || [];
      const lastAi = [...messages].reverse().find((m) => m.type === "ai" && messageText(m.content));
      final.className = "final";
      final.textContent = waiting ? "The run paused again: see the new proposed action." : lastAi ? messageText(lastAi.content) : "The run finished.";
      final.hidden = false;
    }
    refreshInbox();
    if (state.route.name === "thread" && state.route.id === thread.thread_id) await loadThread(thread.thread_id, true);
  }

  function fmtMs(ms) {
    if (ms === null || ms === undefined) return "—";
    return ms >= 1000 ? `${(ms / 1000).toFixed(2)} s` : `${Math.round(ms)} ms`;
  }

  function duration(run) {
    const start = parseTime(run.started_at);
    const end = parseTime(run.ended_at);
    return start && end ? fmtMs(end - start) : "—";
  }

  async function loadTrace(threadId) {
    const container = $("trace");
    let trace;
    try {
      trace = await api(`/console/threads/${encodeURIComponent(threadId)}/trace`);
    } catch (err) {
      setChildren(container, el("p", { class: "error" }, `Could not load the trace: ${err.message}`));
      return;
    }
    if (!trace.runs.length) {
      setChildren(container, el("p", { class: "muted" }, "No runs yet."));
      return;
    }
    const feedbackBlocks = [];
    setChildren(container, trace.runs.map((run) => {
      const steps = run.steps || [];
      const rows = steps.map((step) => step.kind === "model"
        ? el("tr", {},
          el("td", {}, "model"), el("td", {}, step.node || "—"),
          el("td", { class: "wrap" }, `${step.alias === step.deployment ? step.alias : `${step.alias} → ${step.deployment}`}${step.prompt ? ` · prompt ${step.prompt}` : ""}${step.cache_hit ? " · cache hit" : ""}${step.fallback ? " · fallback" : ""}`),
          el("td", {}, `${step.input_tokens} / ${step.output_tokens}${step.tokens_estimated ? " (est.)" : ""}`),
          el("td", {}, `$${Number(step.cost_usd || 0).toFixed(5)}`),
          el("td", {}, fmtMs(step.latency_ms)),
          el("td", {}, step.error ? badge("status", "error") : badge("status", "ok"), step.error ? ` ${step.error}` : ""))
        : el("tr", {},
          el("td", {}, "tool"), el("td", {}, "act"),
          el("td", { class: "wrap" }, el("code", {}, step.tool), " ", el("span", { class: "muted" }, JSON.stringify(step.args)),
            step.approved_by ? el("span", { class: "muted" }, ` · approved by ${step.approved_by}`) : null),
          el("td", {}, "—"), el("td", {}, "—"), el("td", {}, fmtMs(step.latency_ms)),
          el("td", {}, badge("status", step.status), step.error ? ` ${step.error}` : "")));
      const nodes = run.nodes || [];
      const nodeRows = nodes.map((step) => el("tr", { "data-testid": "trace-step" },
        el("td", {}, String(step.step)),
        el("td", {}, step.namespace ? `${step.namespace.split(":")[0]} › ${step.node}` : step.node),
        el("td", { class: "wrap" }, step.alias
          ? `${step.alias === step.deployment ? step.alias : `${step.alias} → ${step.deployment}`}${step.prompt ? ` · prompt ${step.prompt}` : ""}${(step.model_calls || []).some((c) => c.paid_by === "tenant") ? " · tenant key" : ""}`
          : "—"),
        el("td", {}, step.alias ? `${step.input_tokens} / ${step.output_tokens}` : "—"),
        el("td", {}, step.alias ? `$${Number(step.cost_usd || 0).toFixed(5)}` : "—"),
        el("td", {}, fmtMs(step.latency_ms)),
        el("td", { class: "wrap" }, (step.tool_calls || []).length
          ? (step.tool_calls || []).map((call) => el("span", { class: "tool-outcome" }, el("code", {}, call.tool), ` ${call.outcome} `))
          : "—"),
        el("td", { class: "wrap mono" }, (step.retrieved || []).length
          ? (step.retrieved || []).map((hit) => `${hit.kind} ${short(hit.id)} (${Number(hit.score).toFixed(3)})`).join(", ")
          : "—"),
        el("td", {}, badge("status", step.status), step.error ? ` ${step.error}` : "")));
      const totals = run.totals || {};
      const events = Object.entries(run.events || {}).map(([name, count]) => `${name} ${count}`).join(", ");
      const feedback = el("div", { class: "feedback", "data-testid": "feedback" });
      feedbackBlocks.push([run, feedback]);
      return el("div", { class: "trace-run", "data-testid": "trace-run" },
        el("div", { class: "trace-run-head" },
          badge("status", run.status),
          el("span", { class: "mono", title: run.run_id }, `run ${short(run.run_id)}`),
          el("span", {}, timeEl(run.created_at)),
          el("span", {}, `took ${duration(run)}`),
          run.stop_reason ? el("span", {}, `stop: ${run.stop_reason}`) : null,
          el("span", {}, `by ${run.submitted_by || run.requester}${run.submitted_by && run.submitted_by !== run.requester ? ` for ${run.requester}` : ""}`),
          el("span", { class: "muted" }, `${totals.model_calls || 0} model · ${totals.tool_calls || 0} tool calls · ${totals.input_tokens || 0}/${totals.output_tokens || 0} tokens · $${Number(totals.cost_usd || 0).toFixed(5)}`),
          events ? el("span", { class: "muted" }, `events: ${events}`) : null),
        run.error ? el("p", { class: "error" }, run.error) : null,
        nodeRows.length
          ? el("table", { class: "table", "data-testid": "trace-steps" },
            el("thead", {}, el("tr", {}, ["Step", "Node", "Model / prompt", "Tokens in/out", "Cost", "Latency", "Tool calls", "Retrieved (score)", "Outcome"].map((h) => el("th", {}, h)))),
            el("tbody", {}, nodeRows))
          : null,
        rows.length
          ? el("table", { class: "table" },
            el("thead", {}, el("tr", {}, ["Kind", "Node", "Model / tool", "Tokens in/out", "Cost", "Latency", "Outcome"].map((h) => el("th", {}, h)))),
            el("tbody", {}, rows))
          : el("p", { class: "trace-slot" }, "No model or tool calls were recorded for this run."),
        feedback);
    }));
    // Feedback for the latest runs (one small request each).
    for (const [run, node] of feedbackBlocks.slice(-10)) renderFeedback(threadId, run, node);
  }

  async function renderFeedback(threadId, run, node) {
    const path = `/threads/${encodeURIComponent(threadId)}/runs/${encodeURIComponent(run.run_id)}/feedback`;
    let given = [];
    try {
      given = await api(path);
    } catch (err) {
      setChildren(node, el("p", { class: "trace-slot" }, err.status === 404 ? "Feedback is not available here." : `Feedback: ${err.message}`));
      return;
    }
    const comment = el("input", { type: "text", class: "feedback-comment", "aria-label": `Feedback comment on run ${short(run.run_id)}` });
    comment.placeholder = "Comment (optional)";
    comment.maxLength = 4000;
    const status = el("span", { class: "muted", role: "status" });
    const send = async (score) => {
      try {
        await api(path, { body: { score, comment: comment.value.trim() || null } });
        renderFeedback(threadId, run, node);
      } catch (err) {
        status.textContent = `Could not save: ${err.message}`;
      }
    };
    setChildren(node,
      given.length
        ? el("ul", { class: "feedback-list" }, given.map((f) => el("li", {},
          el("strong", {}, f.author), ` (${(f.author_roles || []).join(", ") || "no role"}) · ${f.key}`,
          f.score !== null && f.score !== undefined ? ` = ${f.score}` : "",
          f.comment ? ` — ${f.comment}` : "")))
        : null,
      el("div", { class: "feedback-form" },
        el("span", { class: "muted" }, "Rate this run:"),
        el("button", { type: "button", class: "btn btn-small", onclick: () => send(1) }, "✓ Good"),
        el("button", { type: "button", class: "btn btn-small", onclick: () => send(0) }, "✗ Bad"),
        comment, status));
  }

  // --- MCP approval view -------------------------------------------------------------------

  async function loadApproval(id) {
    showError("approval-error", "");
    $("approval-id").textContent = short(id);
    const body = $("approval-body");
    let approval;
    try {
      approval = await api(`/approvals/${encodeURIComponent(id)}`);
    } catch (err) {
      setChildren(body);
      showError("approval-error", err.status === 404 ? "There is no such approval for your tenant." : err.message);
      return;
    }
    const status = $("approval-status");
    status.className = `status status-${approval.status}`;
    status.textContent = approval.status;
    const note = el("textarea", { rows: 3, "aria-label": "Note (kept in the audit log)" });
    note.placeholder = "Optional note, kept in the audit log.";
    const decide = async (verb) => {
      try {
        await api(`/approvals/${encodeURIComponent(id)}/${verb}`, { body: { note: note.value || null } });
        refreshInbox();
        await loadApproval(id);
      } catch (err) {
        showError("approval-error", err.message);
      }
    };
    const pendingNow = approval.status === "pending";
    setChildren(body,
      el("div", { class: "action-head" }, el("span", { class: "tool" }, String(approval.tool)), badge("risk", approval.risk)),
      el("p", { class: "why" }, String(approval.reason || "")),
      el("dl", { class: "kv" },
        el("dt", {}, "Requested by"), el("dd", {}, `${approval.requester} via ${approval.via || "mcp"}`),
        el("dt", {}, "Created"), el("dd", {}, timeEl(approval.created_at)),
        el("dt", {}, "Expires"), el("dd", {}, timeEl(approval.expires_at)),
        approval.decided_by ? [el("dt", {}, "Decided by"), el("dd", {}, `${approval.decided_by}${approval.decision_note ? ` — ${approval.decision_note}` : ""}`)] : null),
      el("div", { class: "field-label" }, "Arguments"), el("pre", {}, pretty(approval.args)),
      approval.preview && Object.keys(approval.preview).length ? [el("div", { class: "field-label" }, "Dry-run preview"), el("pre", {}, pretty(approval.preview))] : null,
      pendingNow ? [el("div", { class: "field-label" }, "Note"), note,
        el("div", { class: "send-row" },
          el("button", { type: "button", class: "btn btn-approve", onclick: () => decide("approve") }, "Approve"),
          el("button", { type: "button", class: "btn btn-reject", onclick: () => decide("reject") }, "Reject"),
          el("span", { class: "muted" }, "The client repeats the call with this approval id; it is single-use."))] : null);
  }

  // --- admin: runs and audit --------------------------------------------------------------

  async function loadRuns() {
    showError("runs-error", "");
    const filter = state.runsFilter;
    let data;
    try {
      data = await api(`/console/runs?limit=100${filter ? `&status=${encodeURIComponent(filter)}` : ""}`);
    } catch (err) {
      showError("runs-error", err.message);
      return;
    }
    const counts = data.counts || {};
    const total = Object.values(counts).reduce((a, b) => a + b, 0);
    const failed = (counts.error || 0) + (counts.timeout || 0);
    $("runs-summary").textContent = `${total} runs · ${failed} failed`;
    const chip = (value, label) => el("button", {
      type: "button", class: "btn", "aria-pressed": String(filter === value),
      onclick: () => { state.runsFilter = value; loadRuns(); },
    }, label);
    setChildren($("runs-filter"), chip("", `All ${total}`), chip("failed", `Failures ${failed}`),
      Object.entries(counts).map(([name, count]) => chip(name, `${name} ${count}`)));
    const tbody = $("runs-table").querySelector("tbody");
    if (!data.runs.length) {
      setChildren(tbody, el("tr", {}, el("td", { class: "muted" }, "No runs.")));
      return;
    }
    setChildren(tbody, data.runs.map((run) => el("tr", {},
      el("td", {}, timeEl(run.created_at)),
      el("td", {}, badge("status", run.status)),
      el("td", {}, run.assistant_id),
      el("td", {}, el("a", { href: `#/thread/${encodeURIComponent(run.thread_id)}`, class: "mono", title: run.thread_id }, short(run.thread_id))),
      el("td", {}, run.requester),
      el("td", {}, run.stop_reason || "—"),
      el("td", { class: "wrap" }, run.error || ""))));
  }

  async function loadAudit() {
    showError("audit-error", "");
    const chain = $("audit-chain");
    chain.className = "chain unknown";
    chain.textContent = "Verifying the audit chain…";
    try {
      const report = await api("/audit/verify");
      chain.className = `chain ${report.ok ? "ok" : "broken"}`;
      chain.textContent = report.ok
        ? `✓ Chain verified: ${report.entries} entries, every link checks out${report.erased_payloads ? ` (${report.erased_payloads} payloads erased)` : ""}.`
        : `✗ Chain broken: ${(report.problems || []).length} problem(s) — ${(report.problems || []).slice(0, 3).map((p) => (typeof p === "string" ? p : JSON.stringify(p))).join("; ")}`;
    } catch (err) {
      chain.className = "chain unknown";
      chain.textContent = err.status === 404 ? "Chain verification is not available on this server." : `Could not verify the chain: ${err.message}`;
    }
    try {
      const data = await api("/audit?limit=100");
      const tbody = $("audit-table").querySelector("tbody");
      setChildren(tbody, (data.entries || []).map((entry) => el("tr", {},
        el("td", {}, String(entry.seq)),
        el("td", {}, timeEl(entry.at)),
        el("td", {}, entry.event),
        el("td", {}, entry.actor),
        el("td", {}, entry.via),
        el("td", {}, el("code", {}, entry.tool)),
        el("td", {}, entry.decision),
        el("td", {}, entry.approver || "—"),
        el("td", {}, badge("status", entry.status), entry.error_code ? ` ${entry.error_code}` : ""),
        el("td", {}, entry.thread_id
          ? el("a", { href: `#/thread/${encodeURIComponent(entry.thread_id)}`, class: "mono" }, short(entry.thread_id))
          : entry.run_id ? short(entry.run_id) : "—"))));
    } catch (err) {
      showError("audit-error", err.status === 404 ? "The audit log is not available on this server." : err.message);
    }
  }

  // --- start ------------------------------------------------------------------------------

  async function start() {
    $("signin-form").addEventListener("submit", async (event) => {
      event.preventDefault();
      const key = $("api-key").value.trim();
      if (!key) return;
      const button = $("signin-submit");
      button.disabled = true;
      showError("signin-error", "");
      try {
        await signIn(key);
        $("api-key").value = "";
        if (location.hash.startsWith("#/signin") || !location.hash) location.hash = "#/inbox";
        else route();
      } catch (err) {
        showError("signin-error", err.code === "token_expired" ? err.message
          : err.status === 401 || err.code === "unauthorized"
            ? `That ${isJwt(key) ? "token" : "API key"} was not accepted.` : `Could not sign in: ${err.message}`);
      } finally {
        button.disabled = false;
      }
    });
    $("sign-out").addEventListener("click", () => signOut(""));
    for (const id of ["filter-assistant", "filter-tool", "filter-risk", "filter-age"]) {
      $(id).addEventListener("change", () => { state.inboxSignature = ""; renderInbox(); });
    }
    window.addEventListener("hashchange", route);
    const routedBefore = state.routed || 0;
    if (apiKey()) {
      try {
        await signIn(apiKey());
      } catch {
        signOut("Your session ended; sign in again.");
        return;
      }
    }
    // Someone navigated while the stored key was checked: that route already rendered.
    if ((state.routed || 0) === routedBefore) route();
  }

  // Exposed for tests of the validator (pure functions, no data).
  window.relaygraphConsole = { validateSchema, checkEditedArgs };
  document.addEventListener("DOMContentLoaded", start);
})();
