"""Run untrusted Python (model-written code plus its tests) in a contained child process.

Why it exists: pass@1 on MBPP and HumanEval means executing whatever a model wrote. A wrong program must
cost one failed test, never the harness, the machine, the store or an API key. Linux only.

Containment, outermost first. Each run reports the layers that were active in `SandboxResult.layers`.
1. process: a fresh `python -I -S -B` in its own session. At the wall-clock timeout the whole process
   group is SIGKILLed. The environment is scrubbed (no API keys), stdin is /dev/null, and cwd, HOME and
   TMPDIR are a fresh temporary directory.
2. namespaces (where the kernel allows them). The child gets new pid, net, mount, ipc and uts namespaces,
   plus a user namespace when the harness is not root.
   - pid: the program is pid 1 of its own pid namespace. It cannot see or signal the harness, and every
     process it forks dies with it, even one that left the process group.
   - net: its only network interface is a loopback that is down.
   - mount: it is chrooted into an empty tmpfs that holds read-only binds of the system and Python
     directories, the /dev nodes it needs, and its temporary directory as /tmp (nodev, noexec). The
     repository, the store, ../shared, HOME and /proc do not exist for it.
   - Then it drops privileges: a root harness moves it to a throwaway uid, any other harness drops every
     capability. no_new_privs is set. The kernel refuses new user namespaces inside a chroot, so it cannot
     win capabilities back.
3. rlimits: CPU seconds, address space, processes (this is what bounds a fork bomb; it is not enforced for
   uid 0, hence the throwaway uid), open files, file size, and no core files.
4. guard: an audit hook (PEP 578), installed just before the program runs. It refuses process creation,
   signals, sockets, ctypes/cffi, heap introspection, writing extension modules, and file access outside
   the temporary directory and the read-only runtime. It also removes the unaudited pidfd calls. Where
   namespaces are unavailable, this is the only wall around files, network and other processes. It stops
   ordinary code, not a determined attacker: an in-process hook can be bypassed. Behind namespaces it is a
   second wall.

The verdict is the harness's, not the program's. The program runs, then the tests run in the same namespace
with a fresh copy of the builtins. Only then does the launcher read a random per-run token from a pipe and
print it, through file descriptor 1. `passed` requires exit status 0 and that token on stdout. So
`sys.exit(0)` or `os._exit(0)` before the asserts, an atexit hook, or patching `print`, `sys.exit`, `exec`,
`AssertionError` or other builtins all score as failures. The token never appears in argv, the environment,
a file or Python memory before the tests have returned; it waits in a kernel pipe buffer.
What this does NOT stop: a program written against this harness that reads that inherited pipe itself
(`os.read` raises no audit event), or one that returns an object whose `__eq__` always says True. No
scheme can stop these while the tests run in the program's own interpreter. The sandbox contains code; it
does not make cheating impossible.

This file is also the child-side launcher: `python -I -S -B agora/scoring/sandbox.py` reads one job from stdin.
Only the standard library is imported at module level, and `subprocess` is not imported in the child:
its `_posixsubprocess.fork_exec` would spawn processes without raising an audit event.
"""
from __future__ import annotations

import builtins
import functools
import marshal
import os
import resource
import signal
import sys
import time
import traceback
from typing import Callable, NamedTuple

VERSION = 1
TAIL_CHARS = 4000
THROWAWAY_UID_BASE = 200_000   # a root harness runs each program as a fresh uid in [200000, 300000)
LAUNCH_ERROR = 3               # exit status of a launcher that could not start the program

CLONE_NEWNS, CLONE_NEWUTS, CLONE_NEWIPC = 0x00020000, 0x04000000, 0x08000000
CLONE_NEWUSER, CLONE_NEWPID, CLONE_NEWNET = 0x10000000, 0x20000000, 0x40000000
MS_RDONLY, MS_NOSUID, MS_NODEV, MS_NOEXEC = 1, 2, 4, 8
MS_REMOUNT, MS_BIND, MS_REC, MS_PRIVATE = 32, 4096, 16384, 1 << 18
PR_SET_PDEATHSIG, PR_CAPBSET_DROP, PR_SET_NO_NEW_PRIVS = 1, 24, 38
DEVICES = ("/dev/null", "/dev/zero", "/dev/random", "/dev/urandom")
SYSTEM_DIRS = ("/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32")

# Audit events the guard refuses outright, and modules it refuses to import (they reach syscalls unaudited).
BLOCKED_EVENTS = {
    "os.fork", "os.forkpty", "os.system", "os.exec", "os.posix_spawn", "os.spawn", "os.kill", "os.killpg",
    "signal.pthread_kill", "subprocess.Popen", "pty.spawn", "resource.prlimit", "sys._current_frames",
    "gc.get_objects", "gc.get_referrers", "gc.get_referents", "socket.__new__", "socket.connect",
    "socket.bind", "socket.sendto", "socket.sendmsg", "socket.getaddrinfo", "socket.gethostbyname",
}
BLOCKED_PREFIXES = ("ctypes.", "socket.", "subprocess.", "os.exec", "os.spawn", "os.posix_spawn")
BLOCKED_MODULES = {"ctypes", "_ctypes", "_posixsubprocess", "_xxsubinterpreters", "_xxinterpchannels",
                   "cffi", "_cffi_backend", "multiprocessing", "_multiprocessing",
                   "posix", "_signal"}  # already loaded: importing them again would restore UNAUDITED
UNAUDITED = [("posix", "pidfd_open"), ("os", "pidfd_open"), ("_signal", "pidfd_send_signal"),
             ("signal", "pidfd_send_signal")]
WRITE_EVENTS = {"os.chmod", "os.chown", "os.chflags", "os.lchflags", "os.mkdir", "os.remove", "os.rmdir",
                "os.rename", "os.link", "os.truncate", "os.utime", "os.setxattr", "os.removexattr"}
READ_EVENTS = {"os.listdir", "os.scandir", "os.getxattr", "os.listxattr"}
PATHS = (str, bytes, os.PathLike)


class SandboxResult(NamedTuple):
    passed: bool
    status: str                # passed | failed | timeout | killed | error (the launcher never ran the program)
    stdout: str                # tails, the token removed
    stderr: str
    seconds: float
    layers: tuple[str, ...] = ()


def run_python(program: str, tests: str = "", *, timeout_s: float = 10, memory_mb: int = 512,
               max_procs: int = 32, max_files: int = 64, max_file_mb: int = 16, isolate: bool = True,
               guard: bool = True, site_packages: bool = False) -> SandboxResult:
    """Run `program`, then `tests`, in a contained child. Passing means every test returned normally.

    `isolate=False` skips the namespaces, and `guard=False` skips the audit hook. Tests use these to show what
    each layer contains on its own. `site_packages=True` lets the program import the environment's packages.
    By default it sees the standard library only, which is all MBPP and HumanEval need.
    """
    # Imported here, not at module level. The child must never import subprocess (see the module docstring),
    # and every module the child imports costs every sandboxed run.
    import secrets
    import shutil
    import subprocess
    import tempfile
    from pathlib import Path

    base = Path(tempfile.mkdtemp(prefix="agora-sandbox-"))
    work, new_root = base / "work", base / "root"
    work.mkdir()
    new_root.mkdir()
    uid = THROWAWAY_UID_BASE + secrets.randbelow(100_000) if os.geteuid() == 0 else os.geteuid()
    if os.geteuid() == 0:
        os.chown(work, uid, uid)
    token = secrets.token_hex(16)
    token_r, token_w = os.pipe()
    report_r, report_w = os.pipe()
    open_fds = [token_r, token_w, report_r, report_w]
    job = {"program": program, "tests": tests, "work": str(work), "root": str(new_root), "uid": uid,
           "token_fd": token_r, "report_fd": report_w, "isolate": isolate, "guard": guard,
           "limits": [timeout_s, memory_mb, max_procs, max_files, max_file_mb]}
    flags = ["-I", "-B"] + ([] if site_packages else ["-S"])
    start = time.monotonic()
    try:
        with open(base / "stdout", "wb") as out, open(base / "stderr", "wb") as err:
            proc = subprocess.Popen([sys.executable, *flags, os.path.abspath(__file__)], stdin=subprocess.PIPE,
                                    stdout=out, stderr=err, pass_fds=(token_r, report_w), cwd=work,
                                    env=_clean_env(str(work)), start_new_session=True)
        for fd in (token_r, report_w):
            os.close(fd)
            open_fds.remove(fd)
        os.write(token_w, token.encode())
        os.close(token_w)
        open_fds.remove(token_w)
        try:
            proc.stdin.write(marshal.dumps(job))
            proc.stdin.close()
        except BrokenPipeError:
            pass
        timed_out = not _wait_unreaped(proc.pid, timeout_s)
        _kill_group(proc.pid)  # the exited leader is not reaped yet, so its group id cannot have been reused
        rc = proc.wait()
        seconds = time.monotonic() - start
        report = _read_report(report_r)
        stdout = (base / "stdout").read_bytes().decode("utf-8", "replace")
        stderr = (base / "stderr").read_bytes().decode("utf-8", "replace")
    finally:
        for fd in open_fds:
            os.close(fd)
        shutil.rmtree(base, ignore_errors=True)
    if timed_out:
        status = "timeout"
    elif report is None:
        status = "error"
    elif rc == 0 and token in stdout:
        status = "passed"
    elif rc < 0 or rc > 128:  # the launcher relays a signal that killed the program as 128 + signal
        status = "killed"
    else:
        status = "failed"
    layers = tuple(report["layers"]) if report else ()
    if report and report.get("note"):
        stderr = f"[sandbox] {report['note']}\n{stderr}"
    return SandboxResult(status == "passed", status, stdout.replace(f"\n{token}\n", "")[-TAIL_CHARS:],
                         stderr[-TAIL_CHARS:], round(seconds, 3), layers)


def run_many(jobs: list[tuple[str, str]], *, workers: int = 2, **limits) -> list[SandboxResult]:
    """`run_python(program, tests, **limits)` for every (program, tests) pair, `workers` at a time, in order."""
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(max_workers=workers) as pool:
        return list(pool.map(lambda job: run_python(job[0], job[1], **limits), jobs))


@functools.cache
def isolation() -> tuple[str, ...]:
    """The layers this machine gives a default run (for logs, and for tests that need the namespaces)."""
    return run_python("pass").layers


# ---------------------------------------------------------------- harness side

def _clean_env(work: str) -> dict[str, str]:
    """The child's whole environment: nothing of the harness's (keys, tokens, proxies) gets through."""
    return {"PATH": "/usr/bin:/bin", "HOME": work, "TMPDIR": work, "LANG": "C.UTF-8"}


def _wait_unreaped(pid: int, timeout_s: float) -> bool:
    """Wait for `pid` to exit without reaping it (a pidfd); False on timeout."""
    import select

    fd = os.pidfd_open(pid)
    try:
        return bool(select.select([fd], [], [], timeout_s)[0])
    finally:
        os.close(fd)


def _kill_group(pgid: int) -> None:
    try:
        os.killpg(pgid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def _read_report(fd: int) -> dict | None:
    """The launcher's report ({"layers", "note"}), written before the program starts; None if absent."""
    os.set_blocking(fd, False)
    data = b""
    try:
        while chunk := os.read(fd, 65536):
            data += chunk
    except BlockingIOError:
        pass
    try:
        return marshal.loads(data) if data else None
    except (EOFError, ValueError, TypeError):
        return None


# ---------------------------------------------------------------- child side (the launcher)

def _launch() -> None:
    """Read the job from stdin, contain this process, then run the program and the tests."""
    job = marshal.loads(sys.stdin.buffer.read())
    null = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null, 0)
    os.close(null)
    runtime = _runtime_paths()
    layers, note = ["process"], ""
    if job["isolate"]:
        more, note = _isolate(job, runtime)
        layers += more
    work = "/tmp" if "mount-ns" in layers else job["work"]
    os.chdir(work)
    os.environ.update(HOME=work, TMPDIR=work)
    _set_limits(*job["limits"])
    layers.append("rlimits")
    if job["guard"]:
        layers.append("guard")
    os.write(job["report_fd"], marshal.dumps({"layers": layers, "note": note}))
    os.close(job["report_fd"])
    roots = (*runtime, work, *DEVICES) if job["guard"] else None
    _run(job["program"], job["tests"], job["token_fd"], roots, work)


def _runtime_paths() -> list[str]:
    """System and Python directories the program may read: never the repository or HOME (unless Python lives there)."""
    prefixes = {sys.prefix, sys.base_prefix, sys.exec_prefix, sys.base_exec_prefix}
    paths = set(SYSTEM_DIRS) | prefixes | {os.path.realpath(p) for p in prefixes}
    paths |= {os.path.realpath(p) for p in sys.path if p and any(p.startswith(x + os.sep) for x in prefixes)}
    kept: list[str] = []
    for p in sorted(x for x in paths if os.path.lexists(x)):
        if not any(p == k or p.startswith(k + os.sep) for k in kept):
            kept.append(p)
    return kept


def _isolate(job: dict, runtime: list[str]) -> tuple[list[str], str]:
    """Enter new namespaces and fork: the child continues as pid 1; this process only relays its exit status."""
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)
    libc.mount.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_ulong, ctypes.c_char_p]
    root, uid = os.geteuid() == 0, job["uid"]
    flags = CLONE_NEWNS | CLONE_NEWPID | CLONE_NEWNET | CLONE_NEWIPC | CLONE_NEWUTS | (0 if root else CLONE_NEWUSER)
    layers: list[str] = []
    try:
        _check(libc.unshare(flags), "unshare")
        if not root:  # map our own uid/gid onto themselves (all an unprivileged user may map)
            for name, text in (("setgroups", "deny"), ("uid_map", f"{uid} {uid} 1"),
                               ("gid_map", f"{os.getegid()} {os.getegid()} 1")):
                with open(f"/proc/self/{name}", "w") as f:
                    f.write(text)
    except OSError as e:
        _forget_ctypes()
        return [], f"no namespaces ({e}); the guard is the only wall around files, network and processes"
    pid = os.fork()
    if pid:
        _relay(pid, job)
    layers += ["pid-ns", "net-ns", "ipc-ns", "uts-ns"] + ([] if root else ["user-ns"])
    libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    note = ""
    try:
        _enter_root(libc, job["root"], job["work"], runtime)
        layers.append("mount-ns")
    except OSError as e:
        note = f"no private filesystem ({e}); the guard is the only wall around files"
    if root:
        os.setgroups([])
        os.setgid(uid)
        os.setuid(uid)
        layers.append("uid-drop")
    else:
        _drop_capabilities(libc)
        layers.append("caps-drop")
    libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0)
    libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)  # a credential change may have cleared it
    _forget_ctypes()
    return layers, note


def _relay(pid: int, job: dict) -> None:
    """Outside the new pid namespace: wait for pid 1 and exit as it did (a signal becomes 128 + signal)."""
    os.close(job["token_fd"])
    os.close(job["report_fd"])
    _, status = os.waitpid(pid, 0)
    os._exit(os.WEXITSTATUS(status) if os.WIFEXITED(status) else 128 + os.WTERMSIG(status))


def _enter_root(libc, new_root: str, work: str, runtime: list[str]) -> None:
    """chroot into a tmpfs holding read-only binds of `runtime`, the devices, and `work` as /tmp."""
    _mount(libc, None, "/", None, MS_REC | MS_PRIVATE)  # nothing below propagates back to the host
    _mount(libc, "tmpfs", new_root, "tmpfs", MS_NOSUID | MS_NODEV, "size=1m,mode=0755")
    for path in runtime:
        _bind(libc, path, new_root + path, MS_RDONLY | MS_NODEV)
    for dev in DEVICES:
        _bind(libc, dev, new_root + dev, 0)
    _bind(libc, work, new_root + "/tmp", MS_NODEV | MS_NOEXEC)
    _mount(libc, None, new_root, None, MS_REMOUNT | MS_BIND | MS_RDONLY | MS_NOSUID | MS_NODEV)
    os.chroot(new_root)  # sound once capabilities are gone: no directory outside it stays open
    os.chdir("/tmp")


def _bind(libc, src: str, dst: str, extra: int) -> None:
    if os.path.islink(src):  # e.g. /lib -> usr/lib: the same link inside
        os.makedirs(os.path.dirname(dst), exist_ok=True)
        os.symlink(os.readlink(src), dst)
        return
    if os.path.isdir(src):
        os.makedirs(dst, exist_ok=True)
    else:
        os.makedirs(os.path.dirname(dst), exist_ok=True)
        open(dst, "a").close()
    _mount(libc, src, dst, None, MS_BIND | MS_REC)
    locked = os.statvfs(src).f_flag & (MS_NOSUID | MS_NODEV | MS_NOEXEC | MS_RDONLY)  # same bits as ST_*
    _mount(libc, None, dst, None, MS_REMOUNT | MS_BIND | MS_NOSUID | extra | locked)


def _mount(libc, src: str | None, dst: str, fstype: str | None, flags: int, data: str | None = None) -> None:
    src_b, dst_b, fstype_b, data_b = (x.encode() if x is not None else None for x in (src, dst, fstype, data))
    _check(libc.mount(src_b, dst_b, fstype_b, flags, data_b), f"mount {src or ''} {dst}")


def _drop_capabilities(libc) -> None:
    """Empty the bounding set and every capability set (we are root only inside our user namespace)."""
    import ctypes

    for cap in range(64):
        libc.prctl(PR_CAPBSET_DROP, cap, 0, 0, 0)  # EINVAL past the last capability: ignored
    header = (ctypes.c_uint32 * 2)(0x20080522, 0)  # _LINUX_CAPABILITY_VERSION_3, this thread
    data = (ctypes.c_uint32 * 6)()                 # effective, permitted, inheritable x 2 words: all zero
    _check(libc.capset(header, data), "capset")


def _check(rc: int, what: str) -> None:
    if rc != 0:
        import ctypes

        err = ctypes.get_errno()
        raise OSError(err, f"{what}: {os.strerror(err)}")


def _forget_ctypes() -> None:
    """Drop ctypes from sys.modules so that the program's `import ctypes` reaches the guard."""
    for name in [m for m in sys.modules if m == "ctypes" or m.startswith(("ctypes.", "_ctypes"))]:
        del sys.modules[name]


def _set_limits(timeout_s: float, memory_mb: int, max_procs: int, max_files: int, max_file_mb: int) -> None:
    """Hard limits equal to soft ones, so the program cannot raise them back."""
    for res, value in ((resource.RLIMIT_CPU, int(timeout_s) + 1), (resource.RLIMIT_AS, memory_mb << 20),
                       (resource.RLIMIT_NPROC, max_procs), (resource.RLIMIT_NOFILE, max_files),
                       (resource.RLIMIT_FSIZE, max_file_mb << 20), (resource.RLIMIT_CORE, 0)):
        resource.setrlimit(res, (value, value))


def _guard(read_roots: tuple[str, ...], write_root: str) -> Callable[[str, tuple], None]:
    """An audit hook: refuse processes, signals, sockets, ctypes, and files outside the roots."""
    write_roots = (write_root, "/dev/null")

    def check(event: str, path, writes: bool) -> None:
        real = os.path.realpath(os.fsdecode(path))
        roots = write_roots if writes else read_roots
        if not any(real == r or real.startswith(r.rstrip("/") + "/") for r in roots) or (
                writes and real.endswith(".so")):  # an extension module would run unaudited native code
            raise PermissionError(f"sandbox: {event} {os.fsdecode(path)!r} is not allowed")

    def hook(event: str, args: tuple) -> None:
        if event in BLOCKED_EVENTS or event.startswith(BLOCKED_PREFIXES):
            raise PermissionError(f"sandbox: {event} is not allowed")
        if event == "import" and args[0].split(".")[0] in BLOCKED_MODULES:
            raise PermissionError(f"sandbox: import {args[0]} is not allowed")
        if event == "open" and isinstance(args[0], PATHS):
            path, mode, flags = args
            writes = (isinstance(mode, str) and any(c in mode for c in "wax+")) or (
                isinstance(flags, int) and flags > 0
                and bool(flags & (os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_APPEND)))
            check(event, path, writes or os.path.isdir(path))  # a directory fd would let dir_fd calls skip checks
        elif event == "os.symlink":
            check(event, args[1], True)  # the link; its target is checked whenever it is opened
        elif event in WRITE_EVENTS:
            for path in [a for a in args[:2] if isinstance(a, PATHS)]:
                check(event, path, True)
        elif event in READ_EVENTS and args and isinstance(args[0], PATHS):
            check(event, args[0], False)

    return hook


def _run(program: str, tests: str, token_fd: int, roots: tuple[str, ...] | None, work: str) -> None:
    """Run the program, then the tests, then print the token, all with functions captured beforehand."""
    # Everything used after the program ran is bound now: the program may rebind os, builtins.exec, dict...
    write, read, exit_, exec_, format_exc = os.write, os.read, os._exit, exec, traceback.format_exc
    flushes = [sys.stdout.flush, sys.stderr.flush]
    clean_builtins = dict(builtins.__dict__)

    def fail(message: str) -> None:
        for flush in flushes:
            try:
                flush()
            except BaseException:
                pass
        write(2, message.encode("utf-8", "replace"))
        exit_(1)

    try:  # compiled before any untrusted code runs; optimize=0 keeps the asserts
        program_code = compile(program, "<program>", "exec", dont_inherit=True, optimize=0)
        tests_code = compile(tests, "<tests>", "exec", dont_inherit=True, optimize=0)
    except BaseException:
        fail(format_exc())
    for module, name in UNAUDITED:  # ways to signal another process that raise no audit event
        if module in sys.modules:
            vars(sys.modules[module]).pop(name, None)
    if roots is not None:
        sys.addaudithook(_guard(roots, work))
    namespace = {"__name__": "__sandbox__", "__builtins__": builtins.__dict__}
    try:
        exec_(program_code, namespace)
        namespace["__builtins__"] = clean_builtins.copy()
        exec_(tests_code, namespace)
    except BaseException:  # SystemExit and KeyboardInterrupt too: leaving early is failing
        try:
            message = format_exc()
        except BaseException:
            message = "the program failed (and broke traceback formatting)\n"
        fail(message)
    token = read(token_fd, 64)
    for flush in flushes:
        try:
            flush()
        except BaseException:
            pass
    write(1, b"\n" + token + b"\n")
    exit_(0)


if __name__ == "__main__":
    try:
        _launch()
    except BaseException:
        traceback.print_exc()
        os._exit(LAUNCH_ERROR)
