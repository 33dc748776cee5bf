"""A generator option (`generator=`, `generator@judge=`, `generator@intrinsic.judge=`) as one typed object, built
once from its config.

Generation, the benchmark judge and the intrinsic judge all send requests to a generator-shaped option, embedded
llama.cpp server included. `Option.from_cfg` is the one place such an option's config is read; the object gives the
price, the limits, the endpoint identity used in cache keys, the API key (checked before anything is spent), a
running server when the option has one, and a client for the provider (agora/generators `make_client`).
"""
from __future__ import annotations

import asyncio
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from agora.engine.cache import RequestCache
from agora.engine.ledger import Ledger, Price
from agora.engine.runner import Limits, Request, Result, Sampling, run_requests


@dataclass(frozen=True)
class Option:
    name: str
    provider: str
    model: str
    price: Price
    limits: Limits
    timeout_s: float
    base_url: str | None = None
    api_key_env: str | None = None   # the variable's name; the key itself is read from the environment only
    server: Mapping[str, Any] | None = None   # an embedded server Agora starts (agora/generators/local_server.py)
    transport: str = "aiohttp"
    constrain: bool = False
    batch: bool = False
    batch_poll_s: float = 30.0
    sampling: Mapping[str, Any] = field(default_factory=dict)

    @classmethod
    def from_cfg(cls, opt: Mapping[str, Any]) -> "Option":
        """The option from its composed config node (a DictConfig or a plain dict)."""
        from omegaconf import DictConfig, OmegaConf

        o = OmegaConf.to_container(opt, resolve=True) if isinstance(opt, DictConfig) else dict(opt)
        lim = o["limits"]
        return cls(name=o["name"], provider=o["provider"], model=o["model"],
                   price=Price.from_table(o["price_usd_per_mtok"], o["name"]),
                   limits=Limits(concurrency=lim["concurrency"], rpm=lim["rpm"], tpm=lim["tpm"],
                                 max_retries=lim["max_retries"], backoff_base_s=lim["backoff_base_s"],
                                 backoff_max_s=lim["backoff_max_s"]),
                   timeout_s=lim["timeout_s"], base_url=o.get("base_url"), api_key_env=o.get("api_key_env"),
                   server=o.get("server"), transport=o.get("transport", "aiohttp"),
                   constrain=bool(o.get("constrain")), batch=bool(o.get("batch")),
                   batch_poll_s=o.get("batch_poll_s", 30.0), sampling=o.get("sampling") or {})

    @property
    def endpoint(self) -> str:
        """What identifies the server in cache keys: a local server's port changes every run, its model does not."""
        if self.server:
            s = self.server
            order = s.get("grammar_order", "first")   # how the server samples under a grammar: other samples
            return (f"{self.provider}|{s['kind']}:{s['package']}/{s['filename']}"
                    + (f"|grammar_order={order}" if order != "first" else ""))
        return f"{self.provider}|{self.base_url or 'default'}"

    def api_key(self, role: str | None = None) -> str | None:
        """The key from the environment, or a one-line error before anything is spent (`role`: how the user chose
        this option, e.g. "generator@judge=")."""
        from agora.generators import require_key

        return require_key(self.api_key_env, f"{self.name} ({role})" if role else self.name)

    @contextmanager
    def serving(self, server_log: Path) -> Iterator[tuple[str | None, Callable[[], str | None] | None]]:
        """(base_url, health check) while the option is reachable: its embedded server started for the block and
        stopped after it, or its configured base_url."""
        if not self.server:
            yield self.base_url, None
            return
        from agora.generators.local_server import serve_option

        with serve_option(self.server, server_log) as server:
            yield server.url, server.failure

    def client(self, base_url: str | None, api_key: str | None):
        """A ChatClient for the provider (the provider registry in agora/generators)."""
        from agora.generators import make_client

        return make_client(self.provider, model=self.model, base_url=base_url, api_key=api_key,
                           timeout_s=self.timeout_s, concurrency=self.limits.concurrency, transport=self.transport)

    def run(self, requests: list[Request], sampling: Sampling, *, cache: RequestCache, ledger: Ledger,
            api_key: str | None, desc: str, server_log: Path) -> list[Result]:
        """Run `requests`, starting (and stopping) the option's embedded server when it has one."""
        with self.serving(server_log) as (base_url, health):
            async def go() -> list[Result]:
                client = self.client(base_url, api_key)
                try:
                    return await run_requests(client, requests, sampling, cache=cache, ledger=ledger,
                                              limits=self.limits, desc=desc, health=health)
                finally:
                    await client.aclose()

            return asyncio.run(go())
