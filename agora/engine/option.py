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
    from agora.generators.local_server import llama_cpp_server, packaged_file

    with ExitStack() as stack:
        base_url = opt.base_url
        if opt.server:
            base_url = stack.enter_context(llama_cpp_server(
                packaged_file(opt.server.package, opt.server.filename), n_ctx=opt.server.n_ctx,
                n_threads=opt.server.n_threads, startup_timeout_s=opt.server.startup_timeout_s, log_path=server_log))

        async def go() -> list[Result]:
            client = make_client(opt.provider, model=opt.model, base_url=base_url, api_key=api_key,
                                 timeout_s=opt.limits.timeout_s, concurrency=opt.limits.concurrency,
                                 transport=opt.transport)
            try:
                return await run_requests(client, requests, sampling, cache=cache, ledger=ledger,
                                          limits=limits_of(opt), desc=desc)
            finally:
                await client.aclose()

        return asyncio.run(go())
