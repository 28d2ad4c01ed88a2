"""The router: an alias → ordered deployments, with retries, breakers, fallback, budgets,
cache, context fitting and usage rows.

``RouterChatModel`` is a LangChain chat model, so graphs call it like any other and
LangGraph's ``messages`` stream still sees its tokens. Per call it:

1. keeps the deployments that can serve it (tools, structured output, context window
   after fitting the messages, breaker not open), ordered by the alias, cost or latency;
2. checks the run's token budget and the spend budgets against an estimate;
3. answers from the response cache when allowed;
4. calls the deployment (the client library's own retries are off): transient failures
   are retried with backoff and jitter honouring ``Retry-After``; any failure falls back to
   the next deployment, for streams too as long as no token was sent. A stream that breaks
   after its first token raises ``StreamInterrupted`` (never a silent truncation). An
   answer stopped by the provider's content filter is a failure (``ContentFiltered``, not
   retried, not held against the breaker); a refused key (401/403) is not retried and is
   logged with the setting to fix, so a fallback never hides it;
5. writes a usage row per deployment tried (tokens, cost, latency, fallback, error).

Per-call facts (tenant, user, run, node, prompt, sensitivity) arrive as the ``call``
keyword (a ``CallInfo``): ``await model.ainvoke(messages, call=CallInfo(...))``.
"""

from __future__ import annotations

import asyncio
import json
import logging
import sys
import time
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any, Literal

from langchain_core.callbacks import AsyncCallbackManagerForLLMRun, CallbackManagerForLLMRun
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, AIMessageChunk, BaseMessage, HumanMessage
from langchain_core.outputs import ChatGeneration, ChatGenerationChunk, ChatResult
from langchain_core.runnables import Runnable, RunnableBinding
from langchain_core.utils.function_calling import convert_to_openai_tool
from pydantic import ConfigDict, Field

from providers.breaker import CircuitBreaker
from providers.budgets import TOKEN_BUDGET, SpendBudgets
from providers.cache import ResponseCache, cache_key
from providers.catalog import ModelInfo
from providers.credentials import (
    PROVIDERS,
    SCOPED_PROVIDERS,
    CredentialError,
    CredentialSource,
    normalise_base_url,
)
from providers.errors import (
    AllDeploymentsFailed,
    BudgetExceeded,
    ContentFiltered,
    InvalidModelOutput,
    NoCapableDeployment,
    StreamInterrupted,
)
from providers.factory import KeylessModel
from providers.retry import RetryPolicy, describe, is_transient, retry_after_seconds, status_of
from providers.specs import ModelSpec
from providers.tokens import (
    Summariser,
    estimate_tokens,
    extractive_summary,
    fit_or_summarise,
    truncate_to_tokens,
)
from providers.usage import PaidBy, UsageRecord, UsageRecorder
from providers.websearch import normalise_search_answer, search_tool_for

logger = logging.getLogger(__name__)

Strategy = Literal["ordered", "cost", "latency"]
KEY_SETTINGS = {
    "openai": "OPENAI_API_KEY",
    "google": "GOOGLE_API_KEY",
    "openai-compatible": "RELAYGRAPH_COMPATIBLE_API_KEY",
}
"""Where each deployment kind's default key is configured (named in warnings)."""
EXPECTED_OUTPUT_TOKENS = 1024
"""Output assumed when estimating a call's cost before it is made."""


@dataclass(frozen=True)
class CallInfo:
    """Who and what a model call is for: usage rows, budgets and cache rules use it."""

    tenant: str = "default"
    user: str | None = None
    run_id: str | None = None
    assistant_id: str | None = None
    node: str | None = None
    prompt_name: str | None = None
    prompt_version: str | None = None
    sensitive: bool = False
    """Never cached (personal or special-category data in the prompt)."""
    use_cache: bool = True
    """False bypasses the response cache for this call."""
    max_tokens: int | None = None
    """Tokens the run may still use (None: no run budget); checked against the estimate."""
    web_search: bool = False
    """Let the provider search the web (also: ``web_search=True`` on the call); only
    deployments whose catalog entry says ``web_search`` are used. See providers/websearch."""


@dataclass
class Deployment:
    """One concrete model behind an alias, with its breaker and measured latency."""

    spec: ModelSpec
    model: BaseChatModel
    info: ModelInfo
    breaker: CircuitBreaker = field(default_factory=CircuitBreaker)
    latency_ewma_ms: float | None = None
    build_with_key: Callable[[str], BaseChatModel] | None = None
    """Builds this deployment's model with another API key (a tenant's own); None: the
    deployment takes no tenant keys (scripted models)."""
    tenant_models: dict[str, tuple[str, BaseChatModel]] = field(default_factory=dict, repr=False)
    """tenant → (key fingerprint, model with that tenant's key): one client per tenant."""

    @property
    def name(self) -> str:
        return str(self.spec)

    @property
    def credential_provider(self) -> str | None:
        """Which provider's tenant credential applies (None: no tenant keys)."""
        kind = self.spec.kind
        if kind not in PROVIDERS or self.build_with_key is None:
            return None
        if kind in SCOPED_PROVIDERS and self.credential_base_url is None:
            return None
        return kind

    @cached_property
    def credential_base_url(self) -> str | None:
        """The normalised base URL whose tenant key this deployment may use (``openai-
        compatible`` only; None otherwise, and for a base URL no key can be stored for,
        e.g. one with a query: such a deployment takes no tenant keys)."""
        if self.spec.kind not in SCOPED_PROVIDERS or not self.spec.base_url:
            return None
        try:
            return normalise_base_url(self.spec.base_url)
        except CredentialError:
            return None

    @property
    def cacheable(self) -> bool:
        return self.spec.kind != "scripted"

    def observe_latency(self, ms: float) -> None:
        old = self.latency_ewma_ms
        self.latency_ewma_ms = ms if old is None else 0.8 * old + 0.2 * ms


@dataclass
class RouterServices:
    """What the router writes to and checks against; all optional (tests, offline demo)."""

    recorder: UsageRecorder | None = None
    budgets: SpendBudgets | None = None
    cache: ResponseCache | None = None
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    attempt_timeout_seconds: float = 60.0
    """Per attempt (non-streaming); for streams: until the first chunk, then between chunks."""
    credentials: CredentialSource | None = None
    """Tenants' own provider keys (bring your own key); None: default keys only."""
    summariser: Summariser | None = None
    """Condenses older turns when trimming alone would drop too much; None: the router's
    cheapest deployment when ``summarise_with_model``, else the offline extractive one."""
    summarise_with_model: bool = False
    summarise_above: float = 0.5
    """Fraction of the conversation's tokens that trimming may drop before summarising."""


@dataclass
class _Request:
    messages: list[BaseMessage]
    tools: list[Any]
    tool_choice: Any
    structured: bool
    call: CallInfo
    params: dict[str, Any]
    openai_tools: list[dict[str, Any]]
    web_search: bool = False
    paid_by: PaidBy = "deployment"
    """Whose key the current attempt uses (recorded on its usage row)."""


@dataclass
class _Candidate:
    deployment: Deployment
    messages: list[BaseMessage]
    estimate_in: int


class RouterChatModel(BaseChatModel):
    """A chat model that routes each call over an alias's deployments; see the module."""

    model_config = ConfigDict(arbitrary_types_allowed=True)

    alias: str
    deployments: list[Deployment]
    services: RouterServices = Field(default_factory=RouterServices)
    strategy: Strategy = "ordered"

    @property
    def _llm_type(self) -> str:
        return "relaygraph-router"

    @property
    def _identifying_params(self) -> dict[str, Any]:
        return {"alias": self.alias, "deployments": [d.name for d in self.deployments]}

    def bind_tools(  # type: ignore[override]
        self, tools: Sequence[Any], *, tool_choice: Any = None, **kwargs: Any
    ) -> Runnable[Any, AIMessage]:
        """Tools are formatted per deployment at call time (each provider its own way)."""
        return self.bind(tools=list(tools), tool_choice=tool_choice, **kwargs)

    # --- planning ----------------------------------------------------------------------

    def _request(self, messages: list[BaseMessage], kwargs: dict[str, Any]) -> _Request:
        tools = list(kwargs.pop("tools", None) or [])
        call = kwargs.pop("call", None) or CallInfo()
        web_search = bool(kwargs.pop("web_search", False)) or call.web_search
        return _Request(
            web_search=web_search,
            messages=messages,
            tools=tools,
            tool_choice=kwargs.pop("tool_choice", None),
            structured=bool(kwargs.pop("structured", False)),
            call=call,
            params=kwargs,
            openai_tools=[_tool_schema(t) for t in tools],
        )

    async def _candidates(self, request: _Request) -> list[_Candidate]:
        """Deployments that can serve the request, in routing order.

        Raises:
            NoCapableDeployment: none can (the message says why each was skipped).
        """
        reasons: list[str] = []
        found: list[_Candidate] = []
        for deployment in self._ordered():
            caps = deployment.info.capabilities
            if request.tools and not caps.tools:
                reasons.append(f"{deployment.name}: no tool calling")
                continue
            if request.structured and not caps.structured_output:
                reasons.append(f"{deployment.name}: no structured output")
                continue
            if request.web_search and not caps.web_search:
                reasons.append(f"{deployment.name}: no web search")
                continue
            reserve = min(caps.max_output_tokens, 4096)
            fitted = await fit_or_summarise(
                request.messages,
                caps.context_window - reserve,
                request.openai_tools,
                self._summariser(),
                max_drop_fraction=self.services.summarise_above,
            )
            if fitted is None:
                reasons.append(
                    f"{deployment.name}: the newest turn alone exceeds its context window "
                    f"({caps.context_window} tokens)"
                )
                continue
            if deployment.breaker.state == "open":
                reasons.append(f"{deployment.name}: circuit open after repeated failures")
                continue
            found.append(
                _Candidate(deployment, fitted, estimate_tokens(fitted, request.openai_tools))
            )
        if not found:
            raise NoCapableDeployment(
                f"model alias {self.alias!r}: no deployment can serve this call ("
                + "; ".join(reasons)
                + ")"
            )
        return found

    def _ordered(self) -> list[Deployment]:
        if self.strategy == "cost":
            return sorted(self.deployments, key=lambda d: d.info.price.input + d.info.price.output)
        if self.strategy == "latency":
            return sorted(
                self.deployments,
                key=lambda d: d.latency_ewma_ms if d.latency_ewma_ms is not None else 0.0,
            )
        return list(self.deployments)

    async def _check_budgets(self, request: _Request, first: _Candidate) -> None:
        call = request.call
        if call.max_tokens is not None and first.estimate_in > call.max_tokens:
            raise BudgetExceeded(
                TOKEN_BUDGET,
                f"the run's token budget is used up: this call needs about "
                f"{first.estimate_in} tokens and {max(call.max_tokens, 0)} remain; raise "
                "max_run_tokens and resume the thread to continue",
            )
        budgets = self.services.budgets
        if budgets is not None and budgets.limits.any:
            price = first.deployment.info.price
            estimate = price.cost(first.estimate_in, EXPECTED_OUTPUT_TOKENS)
            await budgets.check(tenant=call.tenant, user=call.user, estimate_usd=estimate)

    # --- calling -----------------------------------------------------------------------

    def _summariser(self) -> Summariser | None:
        if self.services.summariser is not None:
            return self.services.summariser
        return self.model_summariser() if self.services.summarise_with_model else None

    def model_summariser(self) -> Summariser:
        """A summariser using this alias's cheapest deployment (by list price); any
        failure falls back to the offline extractive summary."""

        async def summarise(messages: list[BaseMessage], max_tokens: int) -> str:
            cheapest = min(self.deployments, key=lambda d: d.info.price.input + d.info.price.output)
            window = cheapest.info.capabilities.context_window // 2
            transcript = truncate_to_tokens(await extractive_summary(messages, window), window)
            prompt: list[BaseMessage] = [
                HumanMessage(
                    "Summarise this earlier part of a conversation for the assistant that "
                    "continues it, in at most "
                    f"{max_tokens} tokens. Keep names, numbers, decisions, open questions "
                    "and the results of tool calls. Write the summary only.\n\n" + transcript
                )
            ]
            try:
                async with asyncio.timeout(self.services.attempt_timeout_seconds):
                    reply = await _generate_once((cheapest.model, {}), prompt)
                return truncate_to_tokens(reply.text, max_tokens)
            except Exception:
                return await extractive_summary(messages, max_tokens)

        return summarise

    async def _model_for(self, deployment: Deployment, tenant: str) -> BaseChatModel:
        """The deployment's model for ``tenant``: one built with the tenant's own key when
        it stored one (for ``openai-compatible``: for exactly this deployment's base URL;
        a client per deployment and tenant, rebuilt when the key changes), else the
        deployment's default."""
        provider = deployment.credential_provider
        source = self.services.credentials
        if provider is None or source is None:
            return deployment.model
        credential = await source.credential(tenant, provider, deployment.credential_base_url)
        if credential is None:
            stale = deployment.tenant_models.pop(tenant, None)
            if stale is not None:
                await _aclose_model(stale[1])
            return deployment.model
        current = deployment.tenant_models.get(tenant)
        if current is not None and current[0] == credential.fingerprint:
            return current[1]
        assert deployment.build_with_key is not None
        model = deployment.build_with_key(credential.api_key)
        deployment.tenant_models[tenant] = (credential.fingerprint, model)
        if current is not None:
            await _aclose_model(current[1])
        return model

    def _target(
        self, deployment: Deployment, request: _Request, model: BaseChatModel | None = None
    ) -> tuple[BaseChatModel, dict[str, Any]]:
        """The deployment's model and the keyword arguments of this call (its tools
        formatted the provider's way by the provider's own ``bind_tools``; a web-search
        call adds the provider's built-in search tool)."""
        model = model or deployment.model
        tools = [_shaped_for(tool, deployment.spec.kind) for tool in request.tools]
        if request.web_search:
            tools.append(search_tool_for(deployment.spec.kind))
        if not tools:
            return model, dict(request.params)
        extra = {"tool_choice": request.tool_choice} if request.tool_choice is not None else {}
        bound = model.bind_tools(tools, **extra)
        if isinstance(bound, RunnableBinding) and isinstance(bound.bound, BaseChatModel):
            return bound.bound, {**bound.kwargs, **request.params}
        assert isinstance(bound, BaseChatModel)
        return bound, dict(request.params)

    def _cache_key(self, candidate: _Candidate, request: _Request) -> str | None:
        cache = self.services.cache
        call = request.call
        if cache is None or call.sensitive or not call.use_cache or request.web_search:
            return None
        if not candidate.deployment.cacheable:
            return None
        params = {**request.params, "tool_choice": request.tool_choice}
        return cache_key(
            candidate.deployment.name, candidate.messages, request.openai_tools, params
        )

    async def _route(
        self,
        request: _Request,
        run_manager: AsyncCallbackManagerForLLMRun | None,
        streaming: bool,
    ) -> AsyncIterator[AIMessageChunk | AIMessage]:
        """Yields chunks when ``streaming``, else one ``AIMessage``."""
        candidates = await self._candidates(request)
        await self._check_budgets(request, candidates[0])
        failures: list[str] = []
        for position, candidate in enumerate(candidates):
            deployment = candidate.deployment
            fallback = position > 0
            request.paid_by = "deployment"
            key = self._cache_key(candidate, request)
            if key is not None:
                assert self.services.cache is not None
                cached = await self.services.cache.get(key)
                if cached is not None:
                    self._record(request, candidate, cached, 0.0, 1, fallback, streaming, hit=True)
                    cached = _tagged(cached, self.alias, deployment.name, fallback, True)
                    yield _as_chunk(cached) if streaming else cached
                    return
            if not deployment.breaker.allow():
                failures.append(f"{deployment.name}: circuit open")
                continue
            try:
                model = await self._model_for(deployment, request.call.tenant)
            except Exception as exc:
                failures.append(f"{deployment.name}: tenant credential: {describe(exc)}")
                continue
            if isinstance(model, KeylessModel):  # no default key, none of the tenant's own
                deployment.breaker.release()  # no attempt made: not the provider's health
                missing = model.missing()
                self._record_error(request, candidate, missing, 0.0, 0, fallback, streaming)
                failures.append(f"{deployment.name}: {missing}")
                continue
            request.paid_by = "deployment" if model is deployment.model else "tenant"
            target = self._target(deployment, request, model)
            attempt = 0
            started = time.perf_counter()
            while True:
                attempt += 1
                sent = False
                try:
                    if streaming:
                        merged: AIMessageChunk | None = None
                        async for piece, first_token in self._stream_once(
                            target, candidate.messages, whole=request.web_search
                        ):
                            if first_token and not sent:
                                sent = True
                            if piece is None:
                                continue
                            merged = piece if merged is None else merged + piece
                            if sent:
                                yield piece
                        message: AIMessage = _finish_stream(merged)
                    else:
                        async with _attempt_deadline(
                            self.services.attempt_timeout_seconds, "no answer"
                        ):
                            result = await _generate_once(target, candidate.messages)
                        message = _checked(result)
                    if request.web_search:
                        message = normalise_search_answer(message)
                except asyncio.CancelledError:
                    deployment.breaker.release()
                    raise
                except Exception as exc:
                    if isinstance(exc, ContentFiltered):  # the provider answered: healthy
                        deployment.breaker.record_success()
                    elif model is deployment.model or is_transient(exc):
                        deployment.breaker.record_failure()
                    else:  # a tenant's own key was refused: not the provider's health
                        deployment.breaker.release()
                    if status_of(exc) in (401, 403):
                        _warn_refused_key(deployment, request, own_key=model is deployment.model)
                    elapsed = (time.perf_counter() - started) * 1000
                    if sent:
                        error = StreamInterrupted(
                            f"model alias {self.alias!r}: the stream from {deployment.name} "
                            f"broke after its first token ({describe(exc)}); the answer is "
                            "incomplete"
                        )
                        self._record_error(
                            request, candidate, error, elapsed, attempt, fallback, streaming
                        )
                        raise error from exc
                    retry_after = retry_after_seconds(exc)
                    wait = self.services.retry.wait_seconds(attempt, retry_after)
                    if (
                        is_transient(exc)
                        and attempt <= self.services.retry.max_retries
                        and (retry_after is None or retry_after <= self.services.retry.max_seconds)
                        and deployment.breaker.allow()
                    ):
                        await asyncio.sleep(wait)
                        continue
                    self._record_error(
                        request, candidate, exc, elapsed, attempt, fallback, streaming
                    )
                    failures.append(f"{deployment.name}: {describe(exc)}")
                    break
                deployment.breaker.record_success()
                elapsed = (time.perf_counter() - started) * 1000
                deployment.observe_latency(elapsed)
                message = self._with_usage(message, candidate)
                self._record(request, candidate, message, elapsed, attempt, fallback, streaming)
                if key is not None:
                    assert self.services.cache is not None
                    await self.services.cache.put(
                        key,
                        deployment=deployment.name,
                        tenant=request.call.tenant,
                        user=request.call.user,
                        message=message,
                    )
                tagged = _tagged(message, self.alias, deployment.name, fallback, False)
                if streaming:
                    if not sent:  # held back (tool calls, empty answer): send it whole now
                        yield _as_chunk(tagged)
                    else:  # the tokens went out already: add who answered (and estimated usage)
                        estimated = bool(message.response_metadata.get("tokens_estimated"))
                        yield AIMessageChunk(
                            content="",
                            usage_metadata=message.usage_metadata if estimated else None,
                            response_metadata={
                                "relaygraph": tagged.response_metadata["relaygraph"]
                            },
                        )
                else:
                    yield tagged
                return
        raise AllDeploymentsFailed(
            f"model alias {self.alias!r}: every deployment failed: " + "; ".join(failures),
            failures,
        )

    async def _stream_once(
        self,
        target: tuple[BaseChatModel, dict[str, Any]],
        messages: list[BaseMessage],
        *,
        whole: bool = False,
    ) -> AsyncIterator[tuple[AIMessageChunk | None, bool]]:
        """Yields (chunk, first_token_seen). Chunks before the first text token, and every
        tool-call chunk, are held back and yielded at the end, so a failure before any
        text can still fall back and broken tool-call JSON is caught before it is sent."""
        held: list[AIMessageChunk] = []
        text_seen = False
        stream = _stream_raw(target, messages, whole=whole).__aiter__()
        timeout = self.services.attempt_timeout_seconds
        try:
            while True:
                try:
                    async with _attempt_deadline(timeout, "no stream chunk"):
                        chunk = await stream.__anext__()
                except StopAsyncIteration:
                    break
                if not isinstance(chunk, AIMessageChunk):
                    continue
                has_text = bool(chunk.text)
                if chunk.tool_call_chunks or (not has_text and not text_seen):
                    held.append(chunk)
                    yield None, text_seen
                    continue
                if has_text and not text_seen:
                    text_seen = True
                    plain = [c for c in held if not c.tool_call_chunks]
                    held = [c for c in held if c.tool_call_chunks]
                    for earlier in plain:
                        yield earlier, True
                yield chunk, text_seen
        finally:
            aclose = getattr(stream, "aclose", None)
            if aclose is not None:
                await aclose()
        merged: AIMessageChunk | None = None
        for chunk in held:
            merged = chunk if merged is None else merged + chunk
        if merged is not None:
            if merged.invalid_tool_calls or _broken_arguments(merged):
                raise InvalidModelOutput(_invalid_calls_message(merged))
            yield merged, text_seen

    def _with_usage(self, message: AIMessage, candidate: _Candidate) -> AIMessage:
        if message.usage_metadata:
            return message
        out = estimate_tokens([message])
        usage = {
            "input_tokens": candidate.estimate_in,
            "output_tokens": out,
            "total_tokens": candidate.estimate_in + out,
        }
        metadata = {**message.response_metadata, "tokens_estimated": True}
        return message.model_copy(update={"usage_metadata": usage, "response_metadata": metadata})

    def _record(
        self,
        request: _Request,
        candidate: _Candidate,
        message: AIMessage,
        latency_ms: float,
        attempts: int,
        fallback: bool,
        streamed: bool,
        *,
        hit: bool = False,
    ) -> None:
        usage: dict[str, Any] = dict(message.usage_metadata or {})
        details = usage.get("input_token_details") or {}
        tokens_in = int(usage.get("input_tokens", 0))
        tokens_out = int(usage.get("output_tokens", 0))
        cached = int(details.get("cache_read", 0) or 0)
        price = candidate.deployment.info.price
        cost = 0.0 if hit else price.cost(tokens_in, tokens_out, cached)
        call = request.call
        if self.services.budgets is not None:
            self.services.budgets.add(tenant=call.tenant, user=call.user, cost_usd=cost)
        self._write(
            request,
            candidate,
            input_tokens=tokens_in,
            output_tokens=tokens_out,
            cached_tokens=cached,
            tokens_estimated=bool(message.response_metadata.get("tokens_estimated")),
            cost_usd=cost,
            price_known=price.known,
            model_version=_model_version(message),
            latency_ms=latency_ms,
            attempts=attempts,
            cache_hit=hit,
            fallback=fallback,
            streamed=streamed,
        )

    def _record_error(
        self,
        request: _Request,
        candidate: _Candidate,
        exc: BaseException,
        latency_ms: float,
        attempts: int,
        fallback: bool,
        streamed: bool,
    ) -> None:
        self._write(
            request,
            candidate,
            latency_ms=latency_ms,
            attempts=attempts,
            fallback=fallback,
            streamed=streamed,
            error=describe(exc),
        )

    def _write(self, request: _Request, candidate: _Candidate, **fields: Any) -> None:
        recorder = self.services.recorder
        if recorder is None:
            return
        call = request.call
        recorder.record(
            UsageRecord(
                tenant=call.tenant,
                user=call.user,
                run_id=call.run_id,
                assistant_id=call.assistant_id,
                node=call.node,
                prompt_name=call.prompt_name,
                prompt_version=call.prompt_version,
                alias=self.alias,
                deployment=candidate.deployment.name,
                paid_by=request.paid_by,
                **fields,
            )
        )

    # --- LangChain entry points ----------------------------------------------------------

    def _should_stream(
        self,
        *,
        async_api: bool,
        run_manager: CallbackManagerForLLMRun | AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> bool:
        """Stream only when some deployment can: an alias of scripted models answers in
        whole messages, as the scripted model itself does."""
        if not any(_can_stream(d.model) for d in self.deployments):
            return False
        return super()._should_stream(async_api=async_api, run_manager=run_manager, **kwargs)

    async def _agenerate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        if stop:
            kwargs["stop"] = stop
        request = self._request(messages, kwargs)
        message: AIMessage | None = None
        async for item in self._route(request, run_manager, streaming=False):
            assert isinstance(item, AIMessage)
            message = item
        assert message is not None
        return ChatResult(generations=[ChatGeneration(message=message)])

    async def _astream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> AsyncIterator[ChatGenerationChunk]:
        if stop:
            kwargs["stop"] = stop
        request = self._request(messages, kwargs)
        async for item in self._route(request, run_manager, streaming=True):
            chunk = item if isinstance(item, AIMessageChunk) else _as_chunk(item)
            yield ChatGenerationChunk(message=chunk)

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        """Synchronous calls run the async path on a private event loop (relaygraph is
        async throughout; this serves scripts and notebooks)."""
        return _run_sync(self._agenerate(messages, stop, None, **kwargs))

    def _stream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> Iterator[ChatGenerationChunk]:
        result = self._generate(messages, stop, run_manager, **kwargs)
        yield ChatGenerationChunk(message=_as_chunk(result.generations[0].message))

    async def aclose(self) -> None:
        """Close the deployments' HTTP clients (a provider module never imported made
        none: importing it only to close nothing added ~0.9 s to every shutdown)."""
        closers = [
            getattr(module, name)
            for module_name, name in (
                ("providers.openai", "aclose_openai_model"),
                ("providers.google", "aclose_google_model"),
            )
            if (module := sys.modules.get(module_name)) is not None
        ]
        for deployment in self.deployments:
            for close in closers:
                await close(deployment.model)
            for _, model in deployment.tenant_models.values():
                await _aclose_model(model)
            deployment.tenant_models.clear()

    def breaker_states(self) -> dict[str, str]:
        return {d.name: d.breaker.state for d in self.deployments}


# The deployment's model is driven through its ``_agenerate``/``_astream`` rather than
# ``ainvoke``: the router's own run already carries the callbacks (LangGraph's ``messages``
# stream, tracing), and a second run per call would cost as much CPU as the rest of the
# router together and show every token twice. The response metadata the public path
# would merge in (``generation_info``) is merged here the same way.


async def _aclose_model(model: BaseChatModel) -> None:
    from providers.google import aclose_google_model
    from providers.openai import aclose_openai_model

    await aclose_openai_model(model)
    await aclose_google_model(model)


def _can_stream(model: BaseChatModel) -> bool:
    kind = type(model)
    return kind._astream is not BaseChatModel._astream or kind._stream is not BaseChatModel._stream


async def _generate_once(
    target: tuple[BaseChatModel, dict[str, Any]], messages: list[BaseMessage]
) -> BaseMessage:
    model, kwargs = target
    result = await model._agenerate(messages, run_manager=None, **kwargs)
    generation = result.generations[0]
    message = generation.message
    llm_output = {k: v for k, v in (result.llm_output or {}).items() if k in ("model_name", "id")}
    message.response_metadata = {
        **llm_output,
        **(generation.generation_info or {}),
        **message.response_metadata,
    }
    return message


async def _stream_raw(
    target: tuple[BaseChatModel, dict[str, Any]],
    messages: list[BaseMessage],
    *,
    whole: bool = False,
) -> AsyncIterator[BaseMessage]:
    """The deployment's chunks; ``whole``: one chunk from a non-streaming call (web-search
    answers, whose citations arrive with the complete answer)."""
    model, kwargs = target
    if whole or (
        type(model)._astream is BaseChatModel._astream
        and type(model)._stream is BaseChatModel._stream
    ):
        message = await _generate_once(target, messages)  # no streaming: one whole chunk
        if whole:
            message = normalise_search_answer(_checked(message))
        yield _as_chunk(message)
        return
    async for chunk in model._astream(messages, run_manager=None, **kwargs):
        if chunk.generation_info:
            chunk.message.response_metadata = {
                **chunk.generation_info,
                **chunk.message.response_metadata,
            }
        yield chunk.message


def _run_sync(coroutine: Any) -> Any:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coroutine)
    import concurrent.futures

    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, coroutine).result()


def _shaped_for(tool: Any, kind: str) -> Any:
    """A tool definition that carries a shape per provider (``for_provider(kind)``, e.g.
    OpenAI strict and Gemini schemas of one tool) gives this provider's; others pass as is."""
    shape = getattr(tool, "for_provider", None)
    return shape(kind) if callable(shape) else tool


def _tool_schema(tool: Any) -> dict[str, Any]:
    try:
        return convert_to_openai_tool(tool)
    except Exception:
        return {"tool": json.dumps(tool, default=str)}


def _broken_arguments(merged: AIMessageChunk) -> bool:
    """Whether a streamed tool call's arguments are not complete JSON. LangChain parses
    streamed arguments leniently (a cut-off ``{"q": `` reads as ``{}``), which would run a
    tool with arguments the model never finished."""
    for chunk in merged.tool_call_chunks:
        try:
            json.loads(chunk.get("args") or "{}")
        except json.JSONDecodeError:
            return True
    return False


def _invalid_calls_message(message: AIMessage | AIMessageChunk) -> str:
    calls = message.invalid_tool_calls or getattr(message, "tool_call_chunks", [])
    names = ", ".join(str(c.get("name")) for c in calls)
    return f"the model proposed tool calls whose arguments are not valid JSON ({names})"


def _warn_refused_key(deployment: Deployment, request: _Request, *, own_key: bool) -> None:
    """A refused key is no outage: falling back hides it from callers, so say it in the
    log (never the key, nor the provider's text, which may quote part of it)."""
    if own_key:
        setting = KEY_SETTINGS.get(deployment.spec.kind, "the deployment's key setting")
        logger.warning(
            "model deployment %s refused its default key (HTTP 401/403): check %s; its "
            "calls fall back to the next deployment until then",
            deployment.name,
            setting,
        )
    else:
        logger.warning(
            "model deployment %s refused tenant %r's own %s key (HTTP 401/403): the tenant "
            "admin should replace it (PUT /api/v1/admin/credentials/PROVIDER or "
            "`relaygraph credentials set`)",
            deployment.name,
            request.call.tenant,
            deployment.spec.kind,
        )


@asynccontextmanager
async def _attempt_deadline(seconds: float, what: str) -> AsyncIterator[None]:
    """``asyncio.timeout`` whose ``TimeoutError`` says which deadline passed (the bare one
    has no text), for usage rows and error events; a client library's own timeout inside
    it passes through unchanged."""
    deadline = asyncio.timeout(seconds)
    try:
        async with deadline:
            yield
    except TimeoutError as exc:
        if not deadline.expired():
            raise
        raise TimeoutError(
            f"{what} within the model timeout of {seconds:g} s (RELAYGRAPH_MODEL_TIMEOUT_SECONDS)"
        ) from exc


FILTERED_FINISH_REASONS = frozenset(
    {"content_filter", "SAFETY", "PROHIBITED_CONTENT", "BLOCKLIST", "SPII", "RECITATION"}
)
"""Finish reasons meaning a content filter stopped the answer (OpenAI; Gemini)."""


def _check_not_filtered(message: AIMessage | AIMessageChunk) -> None:
    reason = message.response_metadata.get("finish_reason")
    name = str(reason).rsplit(".", 1)[-1] if reason is not None else ""
    if name in FILTERED_FINISH_REASONS:
        raise ContentFiltered(
            f"the provider's content filter stopped the answer (finish reason {name}); "
            "rephrase the request or use a deployment with other safety settings"
        )


def _checked(result: Any) -> AIMessage:
    if not isinstance(result, AIMessage):
        raise InvalidModelOutput(f"the model returned {type(result).__name__}, not a message")
    if result.invalid_tool_calls:
        raise InvalidModelOutput(_invalid_calls_message(result))
    _check_not_filtered(result)
    return result


def _finish_stream(merged: AIMessageChunk | None) -> AIMessage:
    if merged is None:
        raise InvalidModelOutput("the stream ended without any message")
    _check_not_filtered(merged)
    return AIMessage(
        content=merged.content,
        tool_calls=merged.tool_calls,
        usage_metadata=merged.usage_metadata,
        response_metadata=merged.response_metadata,
        id=merged.id,
    )


def _model_version(message: AIMessage) -> str | None:
    meta = message.response_metadata
    value = meta.get("model_name") or meta.get("model_version") or meta.get("model")
    return str(value) if value else None


def _tagged(
    message: AIMessage, alias: str, deployment: str, fallback: bool, cache_hit: bool
) -> AIMessage:
    info = {"alias": alias, "deployment": deployment, "fallback": fallback, "cache_hit": cache_hit}
    metadata = {**message.response_metadata, "relaygraph": info}
    return message.model_copy(update={"response_metadata": metadata})


def _as_chunk(message: BaseMessage) -> AIMessageChunk:
    assert isinstance(message, AIMessage)
    return AIMessageChunk(
        content=message.content,
        tool_call_chunks=[
            {
                "name": call["name"],
                "args": json.dumps(call["args"]),
                "id": call["id"],
                "index": position,
                "type": "tool_call_chunk",
            }
            for position, call in enumerate(message.tool_calls)
        ],
        usage_metadata=message.usage_metadata,
        response_metadata=message.response_metadata,
        id=message.id,
    )
