"""Run-completion webhooks: POST the finished run to the URL given at creation.

Deliveries are signed the Standard Webhooks way (``webhook-id``, ``webhook-timestamp``,
``webhook-signature: v1,<base64 HMAC-SHA256>``; the ``standardwebhooks`` package, or any
of its ports, verifies them) with a secret per tenant. Tenant secrets are derived from one
deployment secret, so nothing per tenant needs storing and rotating the deployment secret
rotates them all; ``relaygraph webhooks secret --tenant T`` prints a tenant's.

Delivery is at-least-once with retries (tenacity), with the same ``webhook-id`` on every
attempt so receivers can drop duplicates; a receiver that keeps failing is logged and
given up on, never blocking the run or the worker.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
import os
import secrets
from collections.abc import Iterable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlparse, urlsplit

import httpx
from standardwebhooks import Webhook
from tenacity import AsyncRetrying, retry_if_exception_type, stop_after_attempt, wait_exponential

from tools.builtin.http_fetch import Resolver, pin_public_address, system_resolver
from tools.types import ToolError

log = logging.getLogger(__name__)
ATTEMPTS = 3
TIMEOUT_SECONDS = 10.0
SECRET_FILE = "webhook-secret"


class WebhookError(ValueError):
    pass


def check_webhook_url(url: str) -> str:
    """Raises: WebhookError unless ``url`` is an absolute http(s) URL."""
    parsed = urlparse(url)
    if parsed.scheme not in ("http", "https") or not parsed.netloc:
        raise WebhookError(f"webhook {url!r} must be an absolute http:// or https:// URL")
    return url


def deployment_secret(configured: str | None, data_dir: Path) -> bytes:
    """The deployment's webhook secret: configured, else generated once into the data dir."""
    if configured:
        return configured.encode()
    path = data_dir / SECRET_FILE
    try:
        return path.read_bytes().strip()
    except FileNotFoundError:
        pass
    value = secrets.token_urlsafe(32).encode()
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:  # another process created it first: use theirs
        return path.read_bytes().strip()
    try:
        os.write(fd, value)
    finally:
        os.close(fd)
    return value


def tenant_secret(deployment: bytes, tenant: str) -> str:
    """The tenant's signing secret, in Standard Webhooks' ``whsec_<base64>`` form."""
    digest = hmac.new(deployment, f"relaygraph-webhook:{tenant}".encode(), hashlib.sha256)
    return "whsec_" + base64.b64encode(digest.digest()).decode()


def signed_headers(secret: str, message_id: str, body: str) -> dict[str, str]:
    now = datetime.now(UTC)
    return {
        "content-type": "application/json",
        "webhook-id": message_id,
        "webhook-timestamp": str(int(now.timestamp())),
        "webhook-signature": Webhook(secret).sign(message_id, now, body),
    }


async def deliver(
    url: str,
    payload: dict[str, Any],
    *,
    secret: str,
    message_id: str,
    allow_networks: Iterable[str] = (),
    resolver: Resolver = system_resolver,
) -> bool:
    """POST ``payload`` as signed JSON; True once the receiver answered 2xx.

    The same SSRF rules as ``http_fetch``: the host is resolved and refused if any address
    is private, loopback, link-local or IPv6-mapped (unless in ``allow_networks``), the
    connection goes to the checked address, and redirects are not followed.
    """
    body = json.dumps(payload, separators=(",", ":"), default=str)
    try:
        async with httpx.AsyncClient(
            timeout=TIMEOUT_SECONDS, follow_redirects=False, trust_env=False
        ) as client:
            async for attempt in AsyncRetrying(
                stop=stop_after_attempt(ATTEMPTS),
                wait=wait_exponential(multiplier=0.5, max=5),
                retry=retry_if_exception_type(httpx.HTTPError),
                reraise=True,
            ):
                with attempt:
                    # Checked on every attempt: DNS may answer differently the second time.
                    target, host = await pin_public_address(
                        url, resolver=resolver, allow_networks=allow_networks
                    )
                    port = urlsplit(url).port
                    headers = {
                        **signed_headers(secret, message_id, body),  # fresh timestamp
                        "Host": host if port is None else f"{host}:{port}",
                    }
                    response = await client.post(
                        target,
                        content=body,
                        headers=headers,
                        extensions={"sni_hostname": host},
                    )
                    response.raise_for_status()
        return True
    except ToolError as exc:
        log.warning("webhook refused", extra={"error": exc.code, "reason": exc.message})
        return False
    except httpx.HTTPError as exc:
        log.warning(
            "webhook delivery failed", extra={"attempts": ATTEMPTS, "error": type(exc).__name__}
        )
        return False
