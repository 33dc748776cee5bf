"""Generator clients: one small Protocol (`ChatClient`) over the official SDKs, chosen by `generator.provider` from
a registry (`PROVIDERS`, `register_provider`)."""
from __future__ import annotations

import os
from typing import Callable

from agora import AgoraError
from agora.generators.client import ChatClient, Completion, PermanentError, TransientError

__all__ = ["ChatClient", "Completion", "PermanentError", "TransientError", "make_client", "require_key", "PROVIDERS",
           "register_provider"]
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


def _openai(**kw) -> ChatClient:
    from agora.generators.openai_client import OpenAIClient

    return OpenAIClient(**kw)


def _anthropic(**kw) -> ChatClient:
    from agora.generators.anthropic_client import AnthropicClient

    return AnthropicClient(**kw)


# generator.provider -> a factory taking (model, base_url, api_key, timeout_s, concurrency, transport). A provider
# with its own wire protocol is one entry: `register_provider("myapi", MyClient)` before the stage runs (for
# example in a module that the user's domain or conftest imports), then `provider: myapi` in its YAML.
PROVIDERS: dict[str, Callable[..., ChatClient]] = {"openai": _openai, "anthropic": _anthropic}


def register_provider(name: str, factory: Callable[..., ChatClient]) -> None:
    """Make `generator.provider=name` build its client with `factory` (keyword arguments as `make_client`'s)."""
    PROVIDERS[name] = factory


def make_client(provider: str, *, model: str, base_url: str | None, api_key: str | None,
                timeout_s: float, concurrency: int, transport: str = "aiohttp") -> ChatClient:
    """The provider's client. `transport`: "aiohttp" (the lean path, default) or "sdk" (every request through the
    official SDK)."""
    if transport not in TRANSPORTS:
        raise AgoraError(f"unknown generator.transport {transport!r}; known: {list(TRANSPORTS)}")
    if provider not in PROVIDERS:
        raise AgoraError(f"unknown generator.provider {provider!r}; known: {sorted(PROVIDERS)}")
    return PROVIDERS[provider](model=model, base_url=base_url, api_key=api_key, timeout_s=timeout_s,
                               concurrency=concurrency, transport=transport)
