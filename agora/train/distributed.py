"""Multi-process training: one `torchrun` launch per cell, started from the single Hydra process.

Hydra and distributed launchers do not mix well: `deepspeed` passes `--local_rank`, which Hydra rejects, every
rank would compose its own `${now:...}` run directory, and every rank would write the store and W&B. So the
Hydra process (one per cell, also inside a `-m` sweep) stays the only writer. It hands the training job to

    torchrun --nproc_per_node N [--nnodes M --rdzv-endpoint HOST:PORT] -m agora.train.distributed JOB.json

as a JSON file (model path, rows, output folder, `SFTConfig`), in the cell's work folder, which every rank
therefore agrees on. The ranks only train; rank 0 writes the consolidated model, appends each log dict to
`log.jsonl` (the Hydra process forwards them to W&B as they land) and writes `result.json`. The module also runs
under the `deepspeed` launcher or `srun`: it accepts and ignores `--local_rank`, reading the rank from the
environment like torchrun's children do.
"""
from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

from agora import AgoraError
from agora.procs import die_with_parent
from agora.train.sft import OnLog, SFTConfig, SFTResult, train_sft


@dataclasses.dataclass(frozen=True)
class Launch:
    """How to start the ranks of one cell."""

    nproc_per_node: int = 1
    nnodes: int = 1
    rdzv_endpoint: str | None = None   # HOST:PORT of node 0 when nnodes > 1 (SLURM: the first host of the job)
    launcher: str = "torchrun"         # torchrun | deepspeed


def command(launch: Launch, job: Path) -> list[str]:
    """The launcher command line for `job` (a JSON file written by `run_job`)."""
    module = ["-m", "agora.train.distributed", str(job)]
    if launch.launcher == "torchrun":
        rdzv = (["--nnodes", str(launch.nnodes), "--rdzv-backend", "c10d", "--rdzv-endpoint", launch.rdzv_endpoint]
                if launch.nnodes > 1 else ["--standalone"])
        return [sys.executable, "-m", "torch.distributed.run", *rdzv, "--nproc_per_node",
                str(launch.nproc_per_node), *module]
    if launch.launcher == "deepspeed":
        return ["deepspeed", "--num_nodes", str(launch.nnodes), "--num_gpus", str(launch.nproc_per_node),
                "--module", "agora.train.distributed", str(job)]
    raise AgoraError(f"train.launch.launcher={launch.launcher!r}; known: torchrun, deepspeed")


def write_job(model_path: str, rows: list[dict], out_dir: Path, cfg: SFTConfig, work_dir: Path) -> Path:
    """The job file the ranks read (rows beside it); rewriting it for a rerun keeps the checkpoints."""
    work_dir.mkdir(parents=True, exist_ok=True)
    rows_path, log_path, result_path = work_dir / "rows.jsonl", work_dir / "log.jsonl", work_dir / "result.json"
    with open(rows_path, "w") as f:
        for r in rows:
            f.write(json.dumps({"instruction": r["instruction"], "response": r["response"]}) + "\n")
    for p in (log_path, result_path):
        p.unlink(missing_ok=True)
    job = work_dir / "job.json"
    job.write_text(json.dumps({"model_path": str(model_path), "rows": str(rows_path), "out_dir": str(out_dir),
                               "work_dir": str(work_dir), "log": str(log_path), "result": str(result_path),
                               "config": dataclasses.asdict(cfg)}, indent=2))
    return job


def run_job(model_path: str, rows: list[dict], out_dir: Path, cfg: SFTConfig, work_dir: Path, launch: Launch,
            on_log: OnLog | None = None) -> SFTResult:
    """Train in `launch.nproc_per_node` processes; returns rank 0's result. Logs stream to `on_log` as they land."""
    job = write_job(model_path, rows, out_dir, cfg, work_dir)
    log_path, result_path = work_dir / "log.jsonl", work_dir / "result.json"
    cmd = command(launch, job)
    env = {**os.environ, "OMP_NUM_THREADS": str(cfg.threads or max(1, (os.cpu_count() or 1) // launch.nproc_per_node))}
    stop = threading.Event()
    tail = threading.Thread(target=_follow, args=(log_path, on_log, stop), daemon=True) if on_log else None
    if tail:
        tail.start()
    try:
        proc = subprocess.run(cmd, env=env, preexec_fn=die_with_parent)
    finally:
        stop.set()
        if tail:
            tail.join()
    if proc.returncode != 0 or not result_path.exists():
        raise AgoraError(f"distributed training failed (exit {proc.returncode}): {' '.join(cmd)}; the ranks' output "
                         f"is above; checkpoints in {work_dir} are resumed by rerunning the same command")
    r = json.loads(result_path.read_text())
    return SFTResult(**{**r, "out_dir": Path(r["out_dir"])})


def _follow(path: Path, sink: OnLog, stop: threading.Event) -> None:
    """Forward each JSON line rank 0 appends to `path`, until `stop` is set and the file is drained."""
    pos = 0
    while True:
        done = stop.is_set()
        if path.exists():
            with open(path) as f:
                f.seek(pos)
                while (line := f.readline()).endswith("\n"):
                    rec = json.loads(line)
                    sink(rec["metrics"], rec["step"])
                    pos = f.tell()
        if done:
            return
        time.sleep(0.5)


def _rank_zero() -> bool:
    return int(os.environ.get("RANK", "0")) == 0


def main(argv: list[str]) -> None:
    args = [a for a in argv if not a.startswith("--local_rank")]   # the deepspeed launcher adds it
    if len(args) != 1:
        raise SystemExit("usage: torchrun ... -m agora.train.distributed JOB.json")
    job = json.loads(Path(args[0]).read_text())
    log_path = Path(job["log"])

    def append(metrics: dict[str, float], step: int) -> None:
        with open(log_path, "a") as f:
            f.write(json.dumps({"step": step, "metrics": metrics}) + "\n")

    from agora.store import read_jsonl

    cfg = SFTConfig(**job["config"])
    if cfg.threads:   # train.threads is the cell's budget: the ranks on one node share it
        cfg = dataclasses.replace(cfg, threads=max(1, cfg.threads // int(os.environ.get("LOCAL_WORLD_SIZE", "1"))))
    result = train_sft(job["model_path"], read_jsonl(Path(job["rows"])), Path(job["out_dir"]),
                       cfg, on_log=append if _rank_zero() else None,
                       work_dir=Path(job["work_dir"]) / "checkpoints")
    if _rank_zero():
        tmp = Path(job["result"] + ".tmp")
        tmp.write_text(json.dumps({**dataclasses.asdict(result), "out_dir": str(result.out_dir)}))
        os.replace(tmp, job["result"])


if __name__ == "__main__":
    main(sys.argv[1:])
