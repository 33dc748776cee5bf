"""Send a batch of requests to a generator-shaped config option (`judge=`, `intrinsic_judge=`).

The judges reuse any generator option, embedded llama.cpp server included, so they share one way to turn the option
into limits, a running server and a client; `generate.py` drives its own rounds but takes its limits from here too.
"""
from __future__ import annotations

import asyncio
from contextlib import ExitStack
from pathlib import Path

from omegaconf import DictConfig

from agora.engine.cache import RequestCache
from agora.engine.ledger import Ledger
from agora.engine.runner import Limits, Request, Result, Sampling, run_requests


def limits_of(opt: DictConfig) -> Limits:
    lim = opt.limits
    return Limits(concurrency=lim.concurrency, rpm=lim.rpm, tpm=lim.tpm, max_retries=lim.max_retries,
                  backoff_base_s=lim.backoff_base_s, backoff_max_s=lim.backoff_max_s)


def run_on_option(opt: DictConfig, requests: list[Request], sampling: Sampling, *, cache: RequestCache,
                  ledger: Ledger, api_key: str | None, desc: str, server_log: Path) -> list[Result]:
    """Run `requests` against `opt`, starting (and stopping) its embedded llama.cpp server when it has one."""
    from agora.generators import make_client
    from agora.generators.local_server import serve_option

    with ExitStack() as stack:
        base_url, health = opt.base_url, None
        if opt.server:
            server = stack.enter_context(serve_option(opt.server, server_log))
            base_url, health = server.url, server.failure

        async def go() -> list[Result]:
            client = make_client(opt.provider, model=opt.model, base_url=base_url, api_key=api_key,
                                 timeout_s=opt.limits.timeout_s, concurrency=opt.limits.concurrency,
                                 transport=opt.transport)
            try:
                return await run_requests(client, requests, sampling, cache=cache, ledger=ledger,
                                          limits=limits_of(opt), desc=desc, health=health)
            finally:
                await client.aclose()

        return asyncio.run(go())
