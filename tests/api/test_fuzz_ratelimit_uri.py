"""A rate-limit storage URI that cannot be used is named in the error without its secrets
(``identity.ratelimit``): the message reaches logs and terminals, the password must not."""

from __future__ import annotations

import pytest

from identity.ratelimit import RateLimitConfigError, RateLimiter, redact_uri


@pytest.mark.parametrize(
    ("uri", "shown", "secret"),
    [
        ("redis://:s3cret-pass@cache:6379/0", "redis://:***@cache:6379/0", "s3cret-pass"),
        ("redis://app:s3cret-pass@cache:6379", "redis://app:***@cache:6379", "s3cret-pass"),
        ("redis://tok3n-value@cache", "redis://***@cache", "tok3n-value"),
        (
            "redis+sentinel://app:s3cret-pass@h1:26379,h2:26379/main",
            "redis+sentinel://app:***@h1:26379,h2:26379/main",
            "s3cret-pass",
        ),
        ("nosuch://cache/?password=hunter2x&db=1", "nosuch://cache/?password=***&db=1", "hunter2x"),
        # The storage's own error quotes the URI as given ("unknown storage scheme : ...").
        ("nosuch://app:s3cret-pass@cache", "nosuch://app:***@cache", "s3cret-pass"),
    ],
)
def test_storage_uri_error_never_shows_the_password(uri: str, shown: str, secret: str) -> None:
    assert redact_uri(uri)[0] == shown
    with pytest.raises(RateLimitConfigError) as raised:
        RateLimiter(storage_uri=uri)
    message = str(raised.value)
    assert secret not in message
    assert shown in message  # still says which setting and host are wrong
    assert "RELAYGRAPH_RATE_LIMIT_STORAGE_URI" in message


def test_uri_without_credentials_is_shown_unchanged() -> None:
    assert redact_uri("memory://") == ("memory://", [])
    assert redact_uri("redis://cache:6379/0") == ("redis://cache:6379/0", [])
