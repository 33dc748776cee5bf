"""Generator clients: one small Protocol (`ChatClient`) over the official SDKs, chosen by `generator.provider`."""
from __future__ import annotations

import os

from agora import AgoraError
from agora.generators.client import ChatClient, Completion, PermanentError, TransientError

__all__ = ["ChatClient", "Completion", "PermanentError", "TransientError", "make_client", "require_key", "PROVIDERS"]
PROVIDERS = ("openai", "anthropic")
TRANSPORTS = ("aiohttp", "sdk")


def require_key(api_key_env: str | None, generator: str) -> str | None:
    """The key from the environment, or a one-line error before anything is spent."""
    if not api_key_env:
        return None
    key = os.environ.get(api_key_env)
    if not key:
        raise AgoraError(f"generator={generator} needs an API key in ${api_key_env}; export {api_key_env}=... "
                         "(the key is read from the environment only, never from a config file)")
    return key


def make_client(provider: str, *, model: str, base_url: str | None, api_key: str | None,
                timeout_s: float, concurrency: int, transport: str = "aiohttp") -> ChatClient:
    """`transport`: "aiohttp" (the lean path, default) or "sdk" (every request through the official SDK)."""
    if transport not in TRANSPORTS:
        raise AgoraError(f"unknown generator.transport {transport!r}; known: {list(TRANSPORTS)}")
    if provider == "openai":
        from agora.generators.openai_client import OpenAIClient

        return OpenAIClient(model=model, base_url=base_url, api_key=api_key, timeout_s=timeout_s,
                            concurrency=concurrency, transport=transport)
    if provider == "anthropic":
        from agora.generators.anthropic_client import AnthropicClient

        return AnthropicClient(model=model, base_url=base_url, api_key=api_key, timeout_s=timeout_s,
                               concurrency=concurrency, transport=transport)
    raise AgoraError(f"unknown generator.provider {provider!r}; known: {list(PROVIDERS)}")
