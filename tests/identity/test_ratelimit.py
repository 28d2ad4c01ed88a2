"""identity/ratelimit.py: limits per credential and per tenant hold under concurrency."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import pytest

from identity.ratelimit import RateDecision, RateLimitConfigError, RateLimiter
from identity.types import Principal

ANA = Principal.with_roles("acme", "ana", ["user"])
BO = Principal.with_roles("acme", "bo", ["user"])
CY = Principal.with_roles("globex", "cy", ["user"])


async def _burst(
    limiter: RateLimiter, calls: Sequence[tuple[Principal, str | None]]
) -> list[RateDecision]:
    return list(await asyncio.gather(*(limiter.check(p, key_id) for p, key_id in calls)))


async def test_exactly_the_key_limit_is_allowed_under_concurrency() -> None:
    limiter = RateLimiter(per_key="10/minute", per_tenant=None)

    decisions = await _burst(limiter, [(ANA, "k1")] * 50)

    assert sum(d.allowed for d in decisions) == 10
    refused = next(d for d in decisions if not d.allowed)
    assert refused.scope == "key"
    assert refused.limit == "10 per 1 minute"
    assert 0 < refused.retry_after_seconds <= 60
    assert "10 per 1 minute per key" in refused.message


async def test_the_tenant_limit_spans_its_keys_and_users() -> None:
    limiter = RateLimiter(per_key="100/minute", per_tenant="15/minute")
    calls = [(ANA, "k1"), (ANA, "k2"), (BO, None)] * 10

    decisions = await _burst(limiter, calls)
    other_tenant = await limiter.check(CY, "k3")

    assert sum(d.allowed for d in decisions) == 15
    assert {d.scope for d in decisions if not d.allowed} == {"tenant"}
    assert other_tenant.allowed


async def test_a_key_over_its_own_limit_does_not_use_up_the_tenant() -> None:
    limiter = RateLimiter(per_key="5/minute", per_tenant="10/minute")

    first = await _burst(limiter, [(ANA, "k1")] * 20)
    second = await _burst(limiter, [(BO, "k2"), (BO, "k3")] * 4)

    assert sum(d.allowed for d in first) == 5
    assert {d.scope for d in first if not d.allowed} == {"key"}
    assert sum(d.allowed for d in second) == 5
    assert {d.scope for d in second if not d.allowed} == {"tenant"}


async def test_callers_without_a_key_are_limited_per_user() -> None:
    limiter = RateLimiter(per_key="3/minute", per_tenant=None)

    decisions = await _burst(limiter, [(ANA, None)] * 5 + [(BO, None)] * 5)

    assert [d.allowed for d in decisions] == [True] * 3 + [False] * 2 + [True] * 3 + [False] * 2


async def test_several_limits_in_one_setting_all_apply() -> None:
    limiter = RateLimiter(per_key="100/minute;4/hour", per_tenant=None)

    decisions = await _burst(limiter, [(ANA, "k1")] * 10)

    assert sum(d.allowed for d in decisions) == 4
    assert decisions[-1].limit == "4 per 1 hour"


@pytest.mark.parametrize("value", [None, "", "  "])
async def test_an_empty_limit_is_no_limit(value: str | None) -> None:
    limiter = RateLimiter(per_key=value, per_tenant=value)

    decisions = await _burst(limiter, [(ANA, "k1")] * 200)

    assert all(d.allowed for d in decisions)


async def test_retry_after_is_truthful() -> None:
    limiter = RateLimiter(per_key="2/second", per_tenant=None)
    await _burst(limiter, [(ANA, "k1")] * 2)

    refused = await limiter.check(ANA, "k1")
    assert not refused.allowed and refused.retry_after_seconds == 1
    await asyncio.sleep(refused.retry_after_seconds)

    assert (await limiter.check(ANA, "k1")).allowed


@pytest.mark.parametrize(
    ("kwargs", "needle"),
    [
        ({"per_key": "lots"}, "RELAYGRAPH_RATE_LIMIT_PER_KEY 'lots' is not a rate limit"),
        ({"per_tenant": "10 per fortnight"}, "RELAYGRAPH_RATE_LIMIT_PER_TENANT"),
        ({"storage_uri": "nosuch://x"}, "RELAYGRAPH_RATE_LIMIT_STORAGE_URI .* cannot be used"),
    ],
)
def test_malformed_settings_are_refused_with_the_format(kwargs, needle: str) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(RateLimitConfigError, match=needle):
        RateLimiter(**kwargs)
