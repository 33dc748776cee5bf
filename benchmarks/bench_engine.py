"""Agora's generation engine against the alternatives, on a loopback server at a fixed latency (issue 3, "Must show").

Why this exists: on a small machine the client's CPU per request, not the API, caps how many requests per
second a generation run gets through. This script measures Agora's engine next to the machine's limit (a bare
aiohttp client), the `openai` SDK on both of its transports, curator, and the original AgoraBench approach
(a thread pool of 4 with a fixed 5 s retry), all against `benchmarks/latency_server.py` in the same run, and
prints the issue's targets as ratios measured in that run.

    python benchmarks/bench_engine.py                        # throughput table at concurrency 64 256 512 + ratios
    python benchmarks/bench_engine.py --memory               # + Agora peak RSS at N=1,000 vs N=20,000
    python benchmarks/bench_engine.py --ratelimit            # + a 3,000 RPM server, N=6,000 (about 2 min a client)
    python benchmarks/bench_engine.py --n 500 --concurrency 64 256 --ratelimit --rl-rpm 600 --rl-n 300   # smoke
    python benchmarks/bench_engine.py --json results.json    # also save every number

Every client runs in its own subprocess, so CPU time and peak RSS are that client's alone: CPU is
`getrusage` (user + system, all threads, plus any children it waited for) over the send window only
(after imports and client construction), peak RSS is the child's VmHWM (imports included). The server
runs in one more subprocess; its CPU share of each run is printed so a saturated server is visible. Run it
on a quiet machine: on 2 cores a neighbour's CPU comes straight out of the client's throughput.

curator (`bespokelabs-curator`) downgrades openai, anthropic, datasets and huggingface-hub, so it lives in its
own plain venv (default ~/.cache/agora/bench-venv-curator, `--curator-python` to point elsewhere; the script
prints the two commands that make it when it is missing). Offline, curator needs tiktoken's cl100k_base and
o200k_base files: litellm (a curator dependency) ships them in litellm/litellm_core_utils/tokenizers/ under the
names tiktoken caches them by (sha1 of the blob URL), so the child points TIKTOKEN_CACHE_DIR there and sets
LITELLM_LOCAL_MODEL_COST_MAP=True, TELEMETRY_ENABLED=false and a fresh CURATOR_CACHE_DIR per run.

Clients (rows):
  aiohttp           semaphore + one ClientSession, TCPConnector(limit=concurrency): the machine's limit
  openai-httpx      openai.AsyncOpenAI, default httpx transport, max_retries=0, semaphore
  openai-aiohttp    openai.AsyncOpenAI(http_client=openai.DefaultAioHttpClient()) (needs httpx-aiohttp)
  curator           curator.LLM, backend openai at base_url, max_concurrent_requests=concurrency
  agorabench-tp4    sync openai.OpenAI in ThreadPoolExecutor(4), fixed 5 s sleep-and-retry on any exception
  agora             agora.engine.runner.run_requests over make_client("openai"), fresh cache file, priced ledger
  agora-anthropic   the same over make_client("anthropic") (/v1/messages), at one concurrency
  agora-sdk         (only with --clients) the agora row with make_client(transport="sdk")
"""
from __future__ import annotations

# Only the standard library at module level: the curator child runs this file under another venv.
import argparse
import asyncio
import json
import os
import resource
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
DEFAULT_CURATOR_VENV = Path.home() / ".cache" / "agora" / "bench-venv-curator"
CLIENTS = ("aiohttp", "openai-httpx", "openai-aiohttp", "curator", "agorabench-tp4", "agora", "agora-anthropic",
           "agora-sdk")
DEFAULT_CLIENTS = CLIENTS[:-1]   # agora-sdk (Agora with transport="sdk") only when asked for
MODEL = "bench"
MAX_TOKENS = 64


def messages(i: int) -> list[dict]:
    return [{"role": "user", "content": f"Bench request {i}: what is six times seven? Answer with a number."}]


# --------------------------------------------------------------------------------------------- child side

class Window:
    """Wall, CPU (self + waited-for children, all threads) and RSS over the send window of one client."""

    def __enter__(self):
        self.cpu0 = _cpu()
        self.t0 = time.perf_counter()
        self.rss0_mb = _rss_now_mb()
        return self

    def __exit__(self, *exc):
        self.wall_s = time.perf_counter() - self.t0
        self.cpu_s = _cpu() - self.cpu0
        return False


def _cpu() -> float:
    s, c = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return s.ru_utime + s.ru_stime + c.ru_utime + c.ru_stime


def _status_mb(field: str) -> float:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return float("nan")


def _rss_now_mb() -> float:
    return _status_mb("VmRSS")


def _peak_rss_mb() -> float:
    # VmHWM, the high-water mark of this process's own memory. Not getrusage's ru_maxrss: Linux carries that
    # across exec from the forked copy of the parent, so every child would report at least the parent's size.
    return _status_mb("VmHWM")


async def child_aiohttp(a) -> dict:
    import aiohttp

    sem = asyncio.Semaphore(a.concurrency)
    url = a.url + "/v1/chat/completions"
    headers = {"Authorization": "Bearer not-needed"}
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=a.concurrency)) as session:
        async def one(i: int) -> bool:
            async with sem:
                try:
                    async with session.post(url, json={"model": MODEL, "messages": messages(i),
                                                       "max_tokens": MAX_TOKENS}, headers=headers) as r:
                        body = await r.json()
                        return r.status == 200 and bool(body["choices"][0]["message"]["content"])
                except Exception:  # noqa: BLE001 - counted, never retried: this row is the raw ceiling
                    return False

        with Window() as w:
            ok = await asyncio.gather(*(one(i) for i in range(a.n)))
    return {"ok": sum(ok), "window": w}


async def child_openai(a, transport: str) -> dict:
    import openai

    kw = {"http_client": openai.DefaultAioHttpClient()} if transport == "aiohttp" else {}
    sdk = openai.AsyncOpenAI(base_url=a.url + "/v1", api_key="not-needed", max_retries=0, timeout=60, **kw)
    sem = asyncio.Semaphore(a.concurrency)

    async def one(i: int) -> bool:
        async with sem:
            try:
                r = await sdk.chat.completions.create(model=MODEL, messages=messages(i), max_tokens=MAX_TOKENS)
                return bool(r.choices[0].message.content)
            except Exception:  # noqa: BLE001
                return False

    async with sdk:
        with Window() as w:
            ok = await asyncio.gather(*(one(i) for i in range(a.n)))
    return {"ok": sum(ok), "window": w}


def child_threadpool(a) -> dict:
    """The original AgoraBench approach: 4 threads, the sync SDK, a fixed 5 s sleep on any exception."""
    from concurrent.futures import ThreadPoolExecutor

    import openai

    sdk = openai.OpenAI(base_url=a.url + "/v1", api_key="not-needed", max_retries=0, timeout=60)
    retries = [0]

    def one(i: int) -> bool:
        for _ in range(a.tp_max_attempts):
            try:
                r = sdk.chat.completions.create(model=MODEL, messages=messages(i), max_tokens=MAX_TOKENS)
                return bool(r.choices[0].message.content)
            except Exception:  # noqa: BLE001 - exactly what the original does
                retries[0] += 1
                time.sleep(5)
        return False

    with ThreadPoolExecutor(4) as ex, Window() as w:
        ok = list(ex.map(one, range(a.n)))
    return {"ok": sum(ok), "retries": retries[0], "window": w}


def child_curator(a) -> dict:
    from bespokelabs import curator

    class Bench(curator.LLM):
        def prompt(self, row):
            return messages(row["i"])

        def parse(self, row, response):
            return {"i": row["i"], "text": response}

    params = {"base_url": a.url + "/v1", "api_key": "not-needed",
              "max_concurrent_requests": a.concurrency,
              "max_requests_per_minute": a.rpm or int(a.concurrency / a.latency * 60 * 4),
              "max_tokens_per_minute": 10 ** 12,     # its TPM guard assumes 4,096 output tokens for an unknown model
              "require_all_responses": False}
    llm = Bench(model_name=MODEL, backend="openai", generation_params={"max_tokens": MAX_TOKENS},
                backend_params=params)
    rows = [{"i": i} for i in range(a.n)]
    with Window() as w:
        out = llm(rows)
    ds = out.dataset if hasattr(out, "dataset") else out
    ok = sum(1 for r in ds if r.get("text"))
    return {"ok": ok, "window": w}


def agora_adapter(a, provider: str):
    """Everything Agora-specific in one place. Returns (an async function that runs the requests and returns
    the number that succeeded, a dict of extra facts filled in afterwards). Adjust here when the engine's
    API changes."""
    from agora.engine.cache import RequestCache, request_key
    from agora.engine.ledger import Ledger, Price
    from agora.engine.runner import Limits, Request, Sampling, run_requests
    from agora.generators import make_client

    base_url = a.url + ("/v1" if provider == "openai" else "")
    kw = {"transport": a.agora_transport} if a.agora_transport else {}
    client = make_client(provider, model=MODEL, base_url=base_url, api_key=None, timeout_s=60,
                         concurrency=a.concurrency, **kw)
    sampling = Sampling(temperature=1.0, top_p=1.0, max_tokens=MAX_TOKENS, stop=None, response_format=None)
    skey = {"temperature": 1.0, "top_p": 1.0, "max_tokens": MAX_TOKENS}
    reqs = [Request(request_key(endpoint=base_url, model=MODEL, messages=messages(i), sampling=skey, replicate=i),
                    messages(i), {"index": i}) for i in range(a.n)]
    cache = RequestCache(Path(a.workdir) / "requests.jsonl")   # fresh per run: every request is sent
    ledger = Ledger(Price(2.5, 10.0, "bench"), max_usd=None)   # nonzero, so pricing runs on every response
    limits = Limits(concurrency=a.concurrency, rpm=a.rpm)
    extra: dict = {}

    async def go() -> int:
        ok = 0

        def take(i, r) -> None:   # results taken as they land, as generate.py does: nothing piles up
            nonlocal ok
            ok += r.record is not None

        try:
            await run_requests(client, reqs, sampling, cache=cache, ledger=ledger, limits=limits, on_result=take,
                               desc="agora")
        finally:
            await client.aclose()
            cache.close()
        t = ledger.totals
        extra.update(cost_usd=round(t.cost_usd, 6), failed=t.failed, retries=t.retries, errors=t.errors)
        return ok

    return go, extra


async def child_agora(a, provider: str) -> dict:
    go, extra = agora_adapter(a, provider)
    with Window() as w:
        ok = await go()
    return {"ok": ok, "window": w, **extra}


def child_main(a) -> None:
    a.client = a.child
    if a.client == "aiohttp":
        res = asyncio.run(child_aiohttp(a))
    elif a.client in ("openai-httpx", "openai-aiohttp"):
        res = asyncio.run(child_openai(a, a.client.split("-")[1]))
    elif a.client == "agorabench-tp4":
        res = child_threadpool(a)
    elif a.client == "curator":
        res = child_curator(a)
    elif a.client in ("agora", "agora-anthropic", "agora-sdk"):
        if a.client == "agora-sdk":
            a.agora_transport = "sdk"
        res = asyncio.run(child_agora(a, "anthropic" if a.client == "agora-anthropic" else "openai"))
    else:
        raise SystemExit(f"unknown client {a.client}")
    w = res.pop("window")
    res.update(wall_s=w.wall_s, cpu_s=w.cpu_s, rss_before_mb=w.rss0_mb, peak_rss_mb=_peak_rss_mb())
    print("BENCH-RESULT " + json.dumps(res), flush=True)


# -------------------------------------------------------------------------------------------- parent side

def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """latency_server.py in a subprocess on a free port; /stats and its CPU seconds read between runs."""

    def __init__(self, latency: float, workdir: str, rpm: float | None = None):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        cmd = [sys.executable, str(HERE / "latency_server.py"), "--port", str(self.port), "--latency", str(latency)]
        if rpm:
            cmd += ["--rpm", str(rpm)]
        self.log = Path(workdir) / f"server-{self.port}.log"   # a file, not a pipe nobody drains
        with open(self.log, "w") as log:
            self.proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 30
        while True:
            try:
                self.stats()
                return
            except OSError:
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    self.close()
                    raise SystemExit(f"latency_server did not start: {self.log.read_text()[-2000:]}")
                time.sleep(0.1)

    def stats(self) -> dict:
        with urllib.request.urlopen(self.url + "/stats", timeout=5) as r:
            return json.loads(r.read())

    def cpu_s(self) -> float:
        fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")   # utime + stime

    def close(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def curator_python(a) -> str | None:
    py = Path(a.curator_python) if a.curator_python else DEFAULT_CURATOR_VENV / "bin" / "python"
    return str(py) if py.exists() else None


def curator_env(py: str, workdir: Path) -> dict:
    site = subprocess.run([py, "-c", "import litellm, os; print(os.path.dirname(litellm.__file__))"],
                          capture_output=True, text=True, check=True).stdout.strip()
    tok = Path(site) / "litellm_core_utils" / "tokenizers"
    return {"TIKTOKEN_CACHE_DIR": str(tok), "CUSTOM_TIKTOKEN_CACHE_DIR": str(tok),
            "LITELLM_LOCAL_MODEL_COST_MAP": "True", "TELEMETRY_ENABLED": "false", "HF_HUB_OFFLINE": "1",
            "HF_DATASETS_OFFLINE": "1", "CURATOR_CACHE_DIR": str(workdir / "curator-cache"),
            "CURATOR_DISABLE_RICH_DISPLAY": "1", "CURATOR_VIEWER": "0"}


def run_client(a, server: Server, client: str, n: int, concurrency: int, rpm: float | None = None) -> dict:
    """One client in its own subprocess against `server`; returns the row with server-side counts."""
    workdir = Path(tempfile.mkdtemp(prefix=f"bench-{client}-", dir=a.workdir))
    py, env = sys.executable, {**os.environ, "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    if client == "curator":
        py = curator_python(a)
        if py is None:
            return {"client": client, "concurrency": concurrency, "n": n, "skipped": "curator venv missing"}
        env.update(curator_env(py, workdir))
        env.pop("PYTHONPATH")     # the venv must not see this checkout's packages
    cmd = [py, str(Path(__file__).resolve()), "--child", client, "--url", server.url, "--n", str(n),
           "--concurrency", str(concurrency), "--latency", str(a.latency), "--workdir", str(workdir),
           "--tp-max-attempts", str(a.tp_max_attempts)]
    if a.agora_transport:
        cmd += ["--agora-transport", a.agora_transport]
    if rpm:
        cmd += ["--rpm", str(rpm)]
    before, scpu0 = server.stats(), server.cpu_s()
    t0 = time.perf_counter()
    try:
        p = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=a.child_timeout, cwd=workdir,
                           check=False)
        rc, out, err = p.returncode, p.stdout, p.stderr
    except subprocess.TimeoutExpired as e:
        rc, out, err = "timeout", e.stdout or "", e.stderr or ""
        out, err = (x.decode() if isinstance(x, bytes) else x for x in (out, err))
    total_wall = time.perf_counter() - t0
    after, scpu1 = server.stats(), server.cpu_s()
    row = {"client": client, "concurrency": concurrency, "n": n, "rpm": rpm,
           "server_ok": after["ok"] - before["ok"], "server_429": after["limited"] - before["limited"],
           "server_cpu_s": round(scpu1 - scpu0, 3), "process_wall_s": round(total_wall, 2)}
    line = next((x for x in reversed(out.splitlines()) if x.startswith("BENCH-RESULT ")), None)
    if line is None:
        row["error"] = f"rc={rc}: {(err or out)[-1500:]}"
    else:
        row.update(json.loads(line[len("BENCH-RESULT "):]))
        ideal = concurrency / a.latency
        row["req_s"] = row["ok"] / row["wall_s"]
        row["pct_ideal"] = 100 * row["req_s"] / ideal
        row["cpu_ms_per_req"] = 1000 * row["cpu_s"] / max(row["ok"], 1)
        row["lost"] = n - row["ok"]
    if not a.keep:
        shutil.rmtree(workdir, ignore_errors=True)
    return row


def fmt_row(r: dict) -> str:
    head = f"{r['client']:<16} {r['concurrency']:>5} {r['n']:>6}"
    if "skipped" in r:
        return f"{head}  skipped: {r['skipped']}"
    if "error" in r:
        return f"{head}  FAILED: {r['error'].strip().splitlines()[-1][:150] if r['error'].strip() else r['error']}"
    srv = 100 * r["server_cpu_s"] / r["wall_s"] if r["wall_s"] else 0
    return (f"{head} {r['ok']:>6} {r['wall_s']:>8.2f} {r['req_s']:>8.1f} {r['pct_ideal']:>6.1f}% "
            f"{r['cpu_ms_per_req']:>7.2f} {r['peak_rss_mb']:>7.0f} {r['server_429']:>6} {srv:>5.0f}%")


HEADER = (f"{'client':<16} {'conc':>5} {'N':>6} {'ok':>6} {'wall_s':>8} {'req/s':>8} {'ideal':>7} "
          f"{'cpu ms/req':>7} {'rss MB':>7} {'429s':>6} {'srv cpu':>6}")


def find(rows: list[dict], client: str, concurrency: int | None = None) -> dict | None:
    for r in rows:
        if r["client"] == client and (concurrency is None or r["concurrency"] == concurrency) and "req_s" in r:
            return r
    return None


def ratio_lines(rows: list[dict], a) -> list[dict]:
    out = []

    def add(name: str, num: dict | None, den: dict | float | None, target: float, unit: str = "x") -> None:
        if num is None or den is None:
            out.append({"name": name, "value": None, "target": target, "met": None})
            return
        value = num["req_s"] / (den if isinstance(den, float) else den["req_s"])
        out.append({"name": name, "value": value, "target": target, "met": value >= target, "unit": unit})

    def ideal(c: int) -> float:
        return float(c / a.latency)

    if 64 in a.concurrency:
        add("Agora / ideal at 64", find(rows, "agora", 64), ideal(64), 0.95, "%")
    for c in (256, 512):
        if c in a.concurrency:
            add(f"Agora / bare aiohttp at {c}", find(rows, "agora", c), find(rows, "aiohttp", c), 0.90, "%")
    if 256 in a.concurrency:
        add("Agora / curator at 256", find(rows, "agora", 256), find(rows, "curator", 256), 2.0)
        add("Agora (256) / AgoraBench thread pool of 4", find(rows, "agora", 256), find(rows, "agorabench-tp4"), 10.0)
    return out


def print_ratios(ratios: list[dict]) -> None:
    print("\nRatios (same run):")
    for r in ratios:
        if r["value"] is None:
            print(f"  {r['name']:<44} n/a (a row is missing)")
            continue
        v = f"{100 * r['value']:.1f}%" if r["unit"] == "%" else f"{r['value']:.2f}x"
        t = f"{100 * r['target']:.0f}%" if r["unit"] == "%" else f"{r['target']:.0f}x"
        print(f"  {r['name']:<44} {v:>9}   target >= {t:<5} {'MET' if r['met'] else 'NOT MET'}")


def throughput(a, results: dict) -> None:
    server = Server(a.latency, a.workdir)
    rows: list[dict] = []
    try:
        print(HEADER)
        for c in a.concurrency:
            n = a.n or a.rounds * c
            for client in a.clients:
                if client in ("agorabench-tp4", "agora-anthropic"):
                    continue
                rows.append(run_client(a, server, client, n, c))
                print(fmt_row(rows[-1]), flush=True)
        if "agora-anthropic" in a.clients:
            c = a.anthropic_concurrency
            rows.append(run_client(a, server, "agora-anthropic", a.n or a.rounds * c, c))
            print(fmt_row(rows[-1]), flush=True)
        if "agorabench-tp4" in a.clients:
            rows.append(run_client(a, server, "agorabench-tp4", a.tp_n, 4))
            print(fmt_row(rows[-1]), flush=True)
    finally:
        server.close()
    results["throughput"] = rows
    results["ratios"] = ratio_lines(rows, a)
    print_ratios(results["ratios"])


def memory(a, results: dict) -> None:
    server = Server(a.latency, a.workdir)
    rows = []
    try:
        print(f"\nMemory: Agora engine, concurrency {a.mem_concurrency}\n" + HEADER)
        for n in a.mem_n:
            rows.append(run_client(a, server, "agora", n, a.mem_concurrency))
            print(fmt_row(rows[-1]), flush=True)
    finally:
        server.close()
    results["memory"] = {"rows": rows}
    if all("peak_rss_mb" in r for r in rows) and len(rows) >= 2:
        lo, hi = rows[0], rows[-1]
        ratio = hi["peak_rss_mb"] / lo["peak_rss_mb"]

        def grow(r: dict) -> float:
            return r["peak_rss_mb"] - r["rss_before_mb"]

        results["memory"].update(ratio=ratio, growth_mb={str(r["n"]): grow(r) for r in rows})
        print(f"  peak RSS N={hi['n']} / N={lo['n']}: {ratio:.2f}x "
              f"(growth over the send window: {grow(lo):.1f} MB vs {grow(hi):.1f} MB; "
              f"{1024 * (grow(hi) - grow(lo)) / (hi['n'] - lo['n']):.2f} KB per extra request)")


def ratelimit(a, results: dict) -> None:
    limit_s = a.rl_n / a.rl_rpm * 60
    burst = max(1.0, a.rl_rpm / 60)   # latency_server's bucket starts full with one second's worth
    best_s = max(0.0, a.rl_n - burst) / (a.rl_rpm / 60) + a.latency
    print(f"\nRate limit: server at {a.rl_rpm:g} RPM, N={a.rl_n}, concurrency {a.rl_concurrency}; "
          f"N / limit = {limit_s:.1f} s (the fastest possible is {best_s:.1f} s: the server's bucket starts "
          f"with {burst:g} requests)")
    print(f"{'client':<16} {'wall_s':>8} {'vs N/limit':>10} {'429s':>7} {'429 % N':>8} {'lost':>5} {'cpu ms/req':>10}")
    rows = []
    for client in a.rl_clients:
        server = Server(a.latency, a.workdir, rpm=a.rl_rpm)   # a fresh bucket and fresh counts per client
        try:
            r = run_client(a, server, client, a.rl_n, a.rl_concurrency, rpm=a.rl_rpm)
        finally:
            server.close()
        rows.append(r)
        if "wall_s" not in r:
            print(f"{client:<16} {r.get('skipped') or r.get('error', '')[-300:]}")
            continue
        r["wall_vs_limit"] = r["wall_s"] / limit_s
        r["pct_429"] = 100 * r["server_429"] / a.rl_n
        print(f"{client:<16} {r['wall_s']:>8.1f} {100 * r['wall_vs_limit']:>9.1f}% {r['server_429']:>7} "
              f"{r['pct_429']:>7.1f}% {r['lost']:>5} {r['cpu_ms_per_req']:>10.2f}", flush=True)
    results["ratelimit"] = {"rpm": a.rl_rpm, "n": a.rl_n, "concurrency": a.rl_concurrency,
                            "n_over_limit_s": limit_s, "fastest_possible_s": best_s, "rows": rows}
    ag = next((r for r in rows if r["client"] == "agora" and "wall_s" in r), None)
    if ag:
        checks = [("wall within 5% of N/limit", abs(ag["wall_vs_limit"] - 1) <= 0.05),
                  ("429s < 5% of N", ag["pct_429"] < 5), ("no request lost", ag["lost"] == 0)]
        print("  Agora: " + "; ".join(f"{k}: {'MET' if v else 'NOT MET'}" for k, v in checks))
        results["ratelimit"]["agora_targets"] = dict(checks)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--latency", type=float, default=0.2, help="server latency per request, seconds")
    p.add_argument("--concurrency", type=int, nargs="+", default=[64, 256, 512])
    p.add_argument("--n", type=int, default=0, help="requests per run (default: --rounds x concurrency)")
    p.add_argument("--rounds", type=int, default=30, help="with --n 0, N = rounds x concurrency (30: ~6 s at ideal)")
    p.add_argument("--clients", nargs="+", default=list(DEFAULT_CLIENTS), choices=CLIENTS,
                   help="rows to run (agora-sdk: Agora with transport=sdk, not run by default)")
    p.add_argument("--agora-transport", default=None, help="make_client(transport=...) for the agora rows "
                   "(default: make_client's own default)")
    p.add_argument("--anthropic-concurrency", type=int, default=256)
    p.add_argument("--tp-n", type=int, default=200, help="requests for the thread pool of 4 (~20 req/s ideal)")
    p.add_argument("--tp-max-attempts", type=int, default=20, help="thread pool: attempts before a request is lost")
    p.add_argument("--no-throughput", action="store_true", help="skip the throughput table")
    p.add_argument("--memory", action="store_true", help="Agora peak RSS at N=1,000 vs N=20,000")
    p.add_argument("--mem-n", type=int, nargs="+", default=[1000, 20000])
    p.add_argument("--mem-concurrency", type=int, default=256)
    p.add_argument("--ratelimit", action="store_true", help="Agora and curator against a rate-limited server")
    p.add_argument("--rl-rpm", type=float, default=3000)
    p.add_argument("--rl-n", type=int, default=6000)
    p.add_argument("--rl-concurrency", type=int, default=256)
    p.add_argument("--rl-clients", nargs="+", default=["agora", "curator"], choices=CLIENTS)
    p.add_argument("--curator-python", default=None, help=f"default {DEFAULT_CURATOR_VENV}/bin/python")
    p.add_argument("--child-timeout", type=float, default=900, help="seconds before a client run is abandoned")
    p.add_argument("--workdir", default=None, help="where per-run caches go (default: a temp dir)")
    p.add_argument("--keep", action="store_true", help="keep per-run work dirs")
    p.add_argument("--json", default=None, help="save every number here")
    # child mode (internal)
    p.add_argument("--child", default=None, help=argparse.SUPPRESS)
    p.add_argument("--url", default=None, help=argparse.SUPPRESS)
    p.add_argument("--rpm", type=float, default=None, help=argparse.SUPPRESS)
    a = p.parse_args()
    if a.child:
        a.concurrency = a.concurrency[0]
        a.rpm = int(a.rpm) if a.rpm else None
        child_main(a)
        return

    own_tmp = a.workdir is None
    a.workdir = a.workdir or tempfile.mkdtemp(prefix="bench-engine-")
    Path(a.workdir).mkdir(parents=True, exist_ok=True)
    if "curator" in a.clients + (a.rl_clients if a.ratelimit else []) and curator_python(a) is None:
        print(f"curator venv not found; make it with:\n  python -m venv {DEFAULT_CURATOR_VENV}\n"
              f"  {DEFAULT_CURATOR_VENV}/bin/pip install bespokelabs-curator\n(curator rows are skipped)\n")
    load = os.getloadavg()
    print(f"load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f} on {os.cpu_count()} CPUs; latency {a.latency}s; "
          f"ideal req/s = concurrency / latency")
    results: dict = {"args": {k: v for k, v in vars(a).items() if k not in ("child", "url", "rpm")},
                     "loadavg_start": load, "started": time.strftime("%Y-%m-%d %H:%M:%S")}
    try:
        if not a.no_throughput:
            throughput(a, results)
        if a.memory:
            memory(a, results)
        if a.ratelimit:
            ratelimit(a, results)
    finally:
        results["loadavg_end"] = os.getloadavg()
        if a.json:
            Path(a.json).write_text(json.dumps(results, indent=2, default=str))
            print(f"\nsaved {a.json}")
        if own_tmp and not a.keep:
            shutil.rmtree(a.workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
