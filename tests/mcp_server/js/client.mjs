// Drives relaygraph's MCP server with the TypeScript SDK that desktop clients (Claude
// Desktop, Cursor, VS Code, MCP Inspector) are built on, over stdio and Streamable HTTP.
//
// Usage: node client.mjs CONFIG.json   (written by tests/mcp_server/test_ts_client.py)
//
// CONFIG: {
//   "stdio": {"command", "args", "env", "cwd"},          spawn like claude_desktop_config.json
//   "http": {"url", "headers", "bad_headers"},           Streamable HTTP like .vscode/mcp.json
//   "approve": {"url" (with {id}), "headers"},            a reviewer's approval on the API
//   "expect": {"server_name", "protocol_version", "read_tool", "read_args", "invalid_args",
//              "write_tool", "write_args", "approval_tool", "hidden_tools": {stdio|http: [..]}}
// }
// Every step is asserted here; the last stdout line is one JSON summary:
//   {"ok": bool, "transports": {"stdio": {...}, "http": {...}}, "failures": [...]}
// and the exit code is 0 only when every step passed.

import { readFileSync } from 'node:fs';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StdioClientTransport } from '@modelcontextprotocol/sdk/client/stdio.js';
import {
    StreamableHTTPClientTransport,
    StreamableHTTPError
} from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { ErrorCode, LATEST_PROTOCOL_VERSION, McpError } from '@modelcontextprotocol/sdk/types.js';
import Ajv from 'ajv';
import addFormats from 'ajv-formats';

const config = JSON.parse(readFileSync(process.argv[2], 'utf8'));
const expect = config.expect;
const NAME_PATTERN = /^[A-Za-z0-9_-]{1,64}$/;
const TIMEOUT = { timeout: 60_000 };
// Clients that check tool schemas (VS Code warns on and drops invalid ones) compile them
// with a JSON Schema validator: the schemas must pass the meta-schema and compile.
const ajv = new Ajv({ strict: false, validateSchema: true, allErrors: true });
addFormats(ajv);

class CheckFailed extends Error {}

function check(condition, message) {
    if (!condition) throw new CheckFailed(message);
}

function isPlainObject(value) {
    return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function describe(error) {
    if (error instanceof McpError) return `McpError ${error.code}: ${error.message}`;
    if (error instanceof StreamableHTTPError) return `StreamableHTTPError ${error.code}: ${error.message}`;
    return `${error?.name ?? 'Error'}: ${error?.message ?? String(error)}`;
}

/** The text blocks of a tool result, joined. */
function textOf(result) {
    return (result.content ?? [])
        .filter(block => block.type === 'text')
        .map(block => block.text)
        .join('\n');
}

/** The JSON details an error result carries on the last line of its text. */
function errorDetails(result) {
    const text = textOf(result);
    const last = text.trimEnd().split('\n').pop();
    try {
        return JSON.parse(last);
    } catch {
        throw new CheckFailed(`the error text ends without its JSON details: ${text.slice(0, 300)}`);
    }
}

/** What a call returned: the result, or the error the SDK threw (schema checks included). */
async function call(client, name, args) {
    try {
        return { result: await client.callTool({ name, arguments: args }, undefined, TIMEOUT) };
    } catch (error) {
        return { error };
    }
}

function expectToolError(outcome, code, what) {
    check(!outcome.error, `${what}: the client threw instead of returning an isError result: ${outcome.error && describe(outcome.error)}`);
    const { result } = outcome;
    check(result.isError === true, `${what}: isError is ${result.isError}, expected true`);
    check(textOf(result).includes(code), `${what}: the text does not name ${code}: ${textOf(result).slice(0, 300)}`);
    const details = errorDetails(result);
    check(details.error === code, `${what}: details.error is ${details.error}, expected ${code}`);
    check(typeof details.message === 'string' && details.message.length > 0, `${what}: no message`);
    return details;
}

function checkSchema(tool) {
    const schema = tool.inputSchema;
    check(isPlainObject(schema), `${tool.name}: inputSchema is not an object`);
    check(schema.type === 'object', `${tool.name}: inputSchema.type is ${schema.type}`);
    if ('properties' in schema) check(isPlainObject(schema.properties), `${tool.name}: properties is not an object`);
    if ('required' in schema) {
        check(Array.isArray(schema.required), `${tool.name}: required is not an array`);
        for (const name of schema.required) {
            check(name in (schema.properties ?? {}), `${tool.name}: required ${name} is not a property`);
        }
    }
    check(ajv.validateSchema(schema), `${tool.name}: inputSchema fails the meta-schema: ${ajv.errorsText(ajv.errors)}`);
    ajv.compile(schema);
    if (tool.outputSchema !== undefined) {
        check(isPlainObject(tool.outputSchema) && tool.outputSchema.type === 'object', `${tool.name}: outputSchema is not an object schema`);
        check(ajv.validateSchema(tool.outputSchema), `${tool.name}: outputSchema fails the meta-schema: ${ajv.errorsText(ajv.errors)}`);
    }
    const hints = tool.annotations ?? {};
    for (const hint of ['readOnlyHint', 'destructiveHint', 'idempotentHint', 'openWorldHint']) {
        check(typeof hints[hint] === 'boolean', `${tool.name}: annotation ${hint} is not set`);
    }
}

async function session(label, makeTransport, extra) {
    const report = { steps: {} };
    const failures = [];
    const transportErrors = [];
    let client;
    let transport;

    async function step(name, body) {
        try {
            const value = await body();
            report.steps[name] = value === undefined ? 'ok' : value;
        } catch (error) {
            report.steps[name] = `FAILED: ${describe(error)}`;
            failures.push(`${label}.${name}: ${describe(error)}`);
            if (!(error instanceof CheckFailed) && name === 'initialize') throw error;
        }
    }

    try {
        await step('initialize', async () => {
            transport = makeTransport();
            let negotiated;
            const setVersion = transport.setProtocolVersion?.bind(transport);
            transport.setProtocolVersion = version => {
                negotiated = version;
                setVersion?.(version);
            };
            client = new Client({ name: 'relaygraph-ts-compat', version: '1.0.0' }, { capabilities: {} });
            client.onerror = error => transportErrors.push(describe(error));
            await client.connect(transport, TIMEOUT);
            const info = client.getServerVersion();
            const capabilities = client.getServerCapabilities();
            check(info?.name === expect.server_name, `serverInfo.name is ${info?.name}`);
            check(typeof info.version === 'string' && info.version.length > 0, 'serverInfo.version is missing');
            check(negotiated === expect.protocol_version, `negotiated ${negotiated}, expected ${expect.protocol_version}`);
            check(isPlainObject(capabilities?.tools), 'the server does not advertise tools');
            const instructions = client.getInstructions();
            check(typeof instructions === 'string' && instructions.includes('approval_id'), 'no instructions about approval_id');
            report.server_info = info;
            report.protocol_version = negotiated;
            report.capabilities = capabilities;
            if (label === 'http') report.session_id = transport.sessionId ?? null;
        });

        await step('ping', async () => {
            const answer = await client.ping(TIMEOUT);
            check(isPlainObject(answer), 'ping did not answer with an object');
        });

        let tools = [];
        await step('tools_list', async () => {
            const listed = await client.listTools(undefined, TIMEOUT);
            tools = listed.tools;
            check(tools.length > 0, 'no tools listed');
            const names = tools.map(tool => tool.name);
            check(new Set(names).size === names.length, 'duplicate tool names');
            for (const tool of tools) {
                check(NAME_PATTERN.test(tool.name), `tool name ${tool.name} is not [A-Za-z0-9_-]{1,64}`);
                check(typeof tool.description === 'string' && tool.description.length > 0, `${tool.name}: no description`);
                checkSchema(tool);
            }
            report.tools = names;
            report.next_cursor = listed.nextCursor ?? null;
            // Paginated lists: follow every cursor and check no tool repeats.
            let cursor = listed.nextCursor;
            let pages = 1;
            while (cursor) {
                const page = await client.listTools({ cursor }, TIMEOUT);
                for (const tool of page.tools) {
                    check(!names.includes(tool.name), `${tool.name} listed on two pages`);
                    checkSchema(tool);
                    names.push(tool.name);
                }
                cursor = page.nextCursor;
                pages += 1;
                check(pages < 100, 'more than 100 pages of tools');
            }
            report.pages = pages;
            const read = tools.find(tool => tool.name === expect.read_tool);
            check(read?.annotations?.readOnlyHint === true, `${expect.read_tool} is not marked read-only`);
            const destructive = tools.find(tool => tool.name === expect.approval_tool);
            check(destructive?.annotations?.destructiveHint === true, `${expect.approval_tool} is not marked destructive`);
            check('approval_id' in (destructive?.inputSchema?.properties ?? {}), `${expect.approval_tool} has no approval_id argument`);
            check(!('approval_id' in (read?.inputSchema?.properties ?? {})), `${expect.read_tool} offers approval_id`);
            // The schema says what the server accepts: the valid arguments pass it, the
            // invalid ones do not (a client validating before sending agrees with us).
            const validate = ajv.compile(read.inputSchema);
            check(validate(expect.read_args), `${expect.read_tool}: valid arguments fail its schema: ${ajv.errorsText(validate.errors)}`);
            check(!validate(expect.invalid_args), `${expect.read_tool}: invalid arguments pass its schema`);
            for (const hidden of extra.hidden_tools ?? []) {
                check(!names.includes(hidden), `${hidden} is listed but the principal may not use it`);
            }
        });

        let created;
        await step('call_write', async () => {
            const outcome = await call(client, expect.write_tool, expect.write_args);
            check(!outcome.error, `threw: ${outcome.error && describe(outcome.error)}`);
            const { result } = outcome;
            check(result.isError !== true, `isError: ${textOf(result).slice(0, 300)}`);
            check(isPlainObject(result.structuredContent), 'no structuredContent');
            check(JSON.parse(textOf(result)).id === result.structuredContent.id, 'the text is not the structured JSON');
            created = result.structuredContent;
            return { id: created.id };
        });

        await step('call_read', async () => {
            const outcome = await call(client, expect.read_tool, expect.read_args);
            check(!outcome.error, `threw: ${outcome.error && describe(outcome.error)}`);
            const { result } = outcome;
            check(result.isError !== true, `isError: ${textOf(result).slice(0, 300)}`);
            check(isPlainObject(result.structuredContent), 'no structuredContent');
            check(result.content?.[0]?.type === 'text', 'no text content');
            check(JSON.stringify(JSON.parse(textOf(result))) === JSON.stringify(result.structuredContent), 'text and structuredContent differ');
            return { structured: result.structuredContent };
        });

        await step('call_invalid_args', async () => {
            const details = expectToolError(await call(client, expect.read_tool, expect.invalid_args), 'invalid_arguments', 'invalid arguments');
            return { error: details.error };
        });

        await step('call_unknown_tool', async () => {
            const details = expectToolError(await call(client, 'no_such_tool', {}), 'unknown_tool', 'unknown tool');
            return { error: details.error };
        });

        for (const hidden of extra.hidden_tools ?? []) {
            await step(`call_forbidden_${hidden}`, async () => {
                const details = expectToolError(await call(client, hidden, {}), 'unknown_tool', `forbidden ${hidden}`);
                const offered = (details.message.split('tools: ')[1] ?? '').split(', ');
                check(!offered.includes(hidden), 'the refusal offers the forbidden tool');
                return { error: details.error };
            });
        }

        await step('call_needs_approval', async () => {
            check(created, 'nothing was created to delete');
            const args = { [expect.approval_arg]: created.id };
            const details = expectToolError(await call(client, expect.approval_tool, args), 'approval_required', 'approval');
            check(typeof details.approval_id === 'string' && details.approval_id.length > 0, 'no approval_id');
            check(details.retry_with?.approval_id === details.approval_id, 'retry_with does not carry the approval id');
            check(details.preview !== undefined && details.preview !== null, 'no dry-run preview');
            // Repeating before a reviewer decided: still refused, and readable.
            const early = expectToolError(
                await call(client, expect.approval_tool, { ...args, approval_id: details.approval_id }),
                'approval_pending',
                'approval pending'
            );
            // A reviewer approves on the API; the repeated call then runs, and its result
            // passes the client's output-schema check.
            const decided = await fetch(config.approve.url.replace('{id}', details.approval_id), {
                method: 'POST',
                headers: config.approve.headers
            });
            check(decided.ok, `approving failed: ${decided.status} ${await decided.text()}`);
            const done = await call(client, expect.approval_tool, { ...args, approval_id: details.approval_id });
            check(!done.error, `the approved call threw: ${done.error && describe(done.error)}`);
            check(done.result.isError !== true, `the approved call failed: ${textOf(done.result).slice(0, 300)}`);
            check(done.result.structuredContent?.deleted === true, 'the approved delete did not delete');
            return { error: details.error, approval_id: details.approval_id, repeated: early.error, approved: 'done' };
        });

        await step('resources_prompts', async () => {
            const capabilities = client.getServerCapabilities() ?? {};
            const seen = {};
            for (const [kind, list] of [
                ['resources', () => client.listResources(undefined, TIMEOUT)],
                ['prompts', () => client.listPrompts(undefined, TIMEOUT)]
            ]) {
                if (capabilities[kind]) {
                    const listed = await list();
                    check(Array.isArray(listed[kind]), `${kind}/list has no ${kind} array`);
                    seen[kind] = listed[kind].length;
                } else {
                    // Not advertised: a request for it must get a JSON-RPC error, not hang.
                    try {
                        await list();
                        throw new CheckFailed(`${kind}/list answered although ${kind} is not advertised`);
                    } catch (error) {
                        if (error instanceof CheckFailed) throw error;
                        check(error instanceof McpError && error.code === ErrorCode.MethodNotFound, `${kind}/list: ${describe(error)}`);
                        seen[kind] = 'not advertised';
                    }
                }
            }
            return seen;
        });

        await step('ping_after_errors', async () => {
            check(isPlainObject(await client.ping(TIMEOUT)), 'ping after the errors failed');
        });

        await step('close', async () => {
            if (label === 'http') {
                await transport.terminateSession();
                check(transport.sessionId === undefined, 'the session was not terminated');
            }
            await client.close();
            check(transportErrors.length === 0, `transport errors: ${transportErrors.join('; ')}`);
        });
    } catch (error) {
        // initialize threw: nothing more to run on this transport
        try {
            await client?.close();
        } catch {
            // already broken
        }
    }
    if (transportErrors.length) report.transport_errors = transportErrors;
    return { report, failures };
}

async function refusedWithoutKey(http) {
    // What a client sending a wrong key sees: HTTP 401, no session.
    const transport = new StreamableHTTPClientTransport(new URL(http.url), {
        requestInit: { headers: http.bad_headers }
    });
    const client = new Client({ name: 'relaygraph-ts-compat', version: '1.0.0' });
    try {
        await client.connect(transport, TIMEOUT);
    } catch (error) {
        check(error instanceof StreamableHTTPError && error.code === 401, `expected a 401, got ${describe(error)}`);
        return { status: 401 };
    } finally {
        await client.close().catch(() => {});
    }
    throw new CheckFailed('a wrong key was accepted');
}

const summary = { ok: false, sdk_protocol: LATEST_PROTOCOL_VERSION, transports: {}, failures: [] };
let stdioStderr = '';

if (config.stdio) {
    const { report, failures } = await session(
        'stdio',
        () => {
            const transport = new StdioClientTransport({ ...config.stdio, stderr: 'pipe' });
            transport.stderr?.on('data', chunk => {
                stdioStderr = (stdioStderr + chunk.toString()).slice(-4000);
            });
            return transport;
        },
        { hidden_tools: expect.hidden_tools?.stdio }
    );
    summary.transports.stdio = report;
    summary.failures.push(...failures);
}

if (config.http) {
    const { report, failures } = await session(
        'http',
        () => new StreamableHTTPClientTransport(new URL(config.http.url), { requestInit: { headers: config.http.headers } }),
        { hidden_tools: expect.hidden_tools?.http }
    );
    try {
        report.steps.wrong_key = await refusedWithoutKey(config.http);
    } catch (error) {
        report.steps.wrong_key = `FAILED: ${describe(error)}`;
        failures.push(`http.wrong_key: ${describe(error)}`);
    }
    summary.transports.http = report;
    summary.failures.push(...failures);
}

summary.ok = summary.failures.length === 0 && Object.keys(summary.transports).length > 0;
if (!summary.ok && stdioStderr) summary.stdio_stderr_tail = stdioStderr;
process.stdout.write(JSON.stringify(summary) + '\n');
process.exit(summary.ok ? 0 : 1);
