"""The engine's hot path: one JSON POST over a shared aiohttp session, its failures sorted for the engine.

Why not only the SDKs' own transport: client CPU per request decides throughput at high concurrency on
a small machine. Measured on loopback at 200 ms latency, 2 cores (benchmarks/README.md): the `openai`
SDK spends about 1.2 ms of CPU per request even on its aiohttp transport, against 0.27 ms for a bare
aiohttp POST, which is 55% against 88% of the ideal rate at 256 concurrent requests. So the clients
take everything protocol-specific from the official SDK client they build (base URL, auth, version
and client headers), and send the body on this path. `generator.transport=sdk` sends every request
through the SDK instead, and the batch APIs always go through the SDK.

The SDKs raise a bare JSON error on a truncated body and do not retry it; here it is a TransientError.
"""
from __future__ import annotations

import asyncio
import json
import time

import aiohttp

from agora.generators.client import PermanentError, TransientError, retry_after_seconds

# 4xx that will fail the same way again; every other 4xx is permanent too, except these retryable ones.
_RETRYABLE_4XX = {408, 409, 425, 429}


def sdk_headers(sdk) -> dict[str, str]:
    """The headers the official SDK client would send: auth, API version, user agent, organisation."""
    merged = {**sdk.default_headers, **sdk.auth_headers}
    return {k: v for k, v in merged.items() if isinstance(v, str)}   # drops the SDK's Omit() markers


class Wire:
    """POST JSON to one base URL. The session is opened lazily, inside the event loop that uses it."""

    def __init__(self, base_url: str, headers: dict[str, str], *, timeout_s: float, concurrency: int):
        self.base_url = base_url.rstrip("/")
        self.headers = headers
        self.timeout = aiohttp.ClientTimeout(total=timeout_s)
        self.concurrency = concurrency
        self._session: aiohttp.ClientSession | None = None

    def _open(self) -> aiohttp.ClientSession:
        # A pool as large as the concurrency bound, so no request queues inside the client.
        connector = aiohttp.TCPConnector(limit=self.concurrency, limit_per_host=self.concurrency,
                                         ttl_dns_cache=300)
        self._session = aiohttp.ClientSession(connector=connector, timeout=self.timeout, headers=self.headers)
        return self._session

    async def post(self, path: str, body: dict) -> tuple[dict, float]:
        """The decoded JSON body and the latency; raises TransientError or PermanentError."""
        session = self._session or self._open()
        t0 = time.perf_counter()
        try:
            async with session.post(self.base_url + path, data=json.dumps(body)) as r:
                status, headers = r.status, r.headers
                raw = await r.read()
        except asyncio.TimeoutError as e:
            raise TransientError("APITimeoutError: no response in time") from e
        except aiohttp.ClientError as e:   # resets, refused connections, a body cut short
            raise TransientError(f"{type(e).__name__}: {e}") from e
        latency = time.perf_counter() - t0
        if status >= 400:
            detail = raw[:300].decode("utf-8", "replace")
            if status >= 500 or status in _RETRYABLE_4XX:
                raise TransientError(f"HTTP {status}: {detail}", retry_after_seconds(headers),
                                     rate_limited=status == 429)
            raise PermanentError(f"HTTP {status}: {detail}")
        try:
            return json.loads(raw), latency
        except ValueError as e:   # a torn body: the SDKs raise a bare JSON error here and do not retry
            raise TransientError(f"JSONDecodeError: truncated body ({len(raw)} bytes)") from e

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None
