"""Hostile programs are contained and scored as failures; the harness (this pytest process) survives them.

Each containment test runs in up to three modes, to show what each layer holds on its own:
- `all-layers`: the default.
- `os-layers`: namespaces and rlimits, with no audit hook. It needs namespaces, which this kernel may refuse.
- `guard-only`: rlimits and the audit hook, with no namespaces. This is what runs where namespaces are unavailable.
"""
from __future__ import annotations

import os
import socket
import time
from pathlib import Path

import pytest

from agora.scoring import sandbox
from agora.scoring.sandbox import run_python
from conftest import ROOT, SHARED_DATA

LAYERS = sandbox.isolation()
HAS_NAMESPACES = {"pid-ns", "net-ns", "mount-ns"} <= set(LAYERS)
needs_namespaces = pytest.mark.skipif(not HAS_NAMESPACES, reason=f"this kernel gives the sandbox only {LAYERS}")
MODES = [pytest.param({}, id="all-layers"),
         pytest.param({"guard": False}, id="os-layers", marks=needs_namespaces),
         pytest.param({"isolate": False}, id="guard-only")]
UNSOLVED = "assert solution() == 42"  # tests that hostile programs, which solve nothing, must fail


def _sandbox_processes() -> set[int]:
    """Live processes running the sandbox launcher (forked children keep its command line)."""
    found = set()
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            if b"agora/scoring/sandbox.py" in Path(f"/proc/{pid}/cmdline").read_bytes():
                found.add(int(pid))
        except OSError:
            pass
    return found


def _assert_failed(result: sandbox.SandboxResult) -> None:
    assert not result.passed and result.status != "passed", result
    assert os.getpid() > 0  # trivially true, but only while this process is still alive


def test_the_default_run_reports_its_layers():
    assert {"process", "rlimits", "guard"} <= set(LAYERS)


def test_correct_programs_pass_and_wrong_ones_fail():
    ok = run_python("def add(a, b):\n    return a + b\nprint('hello')", "assert add(2, 3) == 5")
    assert ok.passed and ok.status == "passed" and ok.stdout.strip() == "hello", ok
    assert run_python("pass").passed  # no tests: running to the end is passing
    wrong = run_python("def add(a, b):\n    return a - b", "assert add(2, 3) == 5")
    assert wrong.status == "failed" and "AssertionError" in wrong.stderr
    assert run_python("def add(a, b) return a", "assert add(2, 3) == 5").status == "failed"  # syntax error
    assert run_python("def add(a, b):\n    return a + b", "assert add(2, 3) == 5 +").status == "failed"
    assert run_python("raise ValueError('boom')").status == "failed"


def test_the_program_sees_the_standard_library_and_its_own_temporary_directory():
    program = ("import collections, heapq, hashlib, math, re, os, tempfile\n"
               "open('scratch.txt', 'w').write('x' * 10)\n"
               "with tempfile.NamedTemporaryFile('w', delete=False) as f:\n"
               "    f.write('y')\n"
               "size = os.path.getsize('scratch.txt')")
    result = run_python(program, "assert size == 10 and os.path.exists(f.name)")
    assert result.passed, result


def test_run_many_keeps_the_order():
    jobs = [(f"x = {i}", f"assert x == {i}") for i in range(6)] + [("x = 0", "assert x == 1")]
    assert [r.passed for r in sandbox.run_many(jobs)] == [True] * 6 + [False]


# ---------------------------------------------------------------- resources

@pytest.mark.parametrize("mode", MODES)
def test_infinite_loop_times_out(mode):
    start = time.monotonic()
    result = run_python("while True:\n    pass", UNSOLVED, timeout_s=1.5, **mode)
    assert result.status == "timeout" and time.monotonic() - start < 5
    _assert_failed(result)


@pytest.mark.parametrize("mode", MODES)
def test_fork_bomb_is_bounded_and_leaves_nothing_behind(mode):
    bomb = ("import os\n"
            "while True:\n"
            "    try:\n"
            "        os.fork()\n"
            "    except Exception:\n"
            "        pass\n")
    result = run_python(bomb, UNSOLVED, timeout_s=2, max_procs=16, **mode)
    _assert_failed(result)
    time.sleep(0.3)
    assert not _sandbox_processes(), "processes outlived the sandbox"


@needs_namespaces
def test_without_the_guard_rlimit_nproc_caps_the_forks_and_the_pid_namespace_reaps_them():
    program = ("import os, time\n"
               "forked = 0\n"
               "while forked < 500:\n"
               "    try:\n"
               "        pid = os.fork()\n"
               "    except OSError:\n"
               "        break\n"
               "    if pid == 0:\n"
               "        os.setsid()  # leave the process group: only the pid namespace can still reap it\n"
               "        time.sleep(60)\n"
               "        os._exit(0)\n"
               "    forked += 1\n")
    result = run_python(program, "assert 0 < forked < 16", max_procs=16, guard=False, timeout_s=5)
    assert result.passed, result  # the forks stopped at RLIMIT_NPROC, and the tests checked how many ran
    time.sleep(0.3)
    assert not _sandbox_processes(), "the sleeping children outlived pid 1"


@pytest.mark.parametrize("mode", MODES)
def test_memory_bomb_fails_fast(mode):
    start = time.monotonic()
    result = run_python("hog = []\nwhile True:\n    hog.append(bytearray(10**7))", UNSOLVED, memory_mb=256, **mode)
    _assert_failed(result)
    assert time.monotonic() - start < 5 and result.status in ("failed", "killed")
    assert run_python("x = bytearray(4 * 2**30)", memory_mb=256, **mode).status == "failed"


@pytest.mark.parametrize("mode", MODES)
def test_output_flood_is_cut_by_the_file_size_limit(mode):
    result = run_python("while True:\n    print('x' * 100_000)", UNSOLVED, max_file_mb=1, timeout_s=5, **mode)
    _assert_failed(result)
    assert result.status in ("killed", "failed") and len(result.stdout) <= sandbox.TAIL_CHARS


# ---------------------------------------------------------------- network, files, processes, secrets

@pytest.mark.parametrize("mode", MODES)
def test_no_connection_reaches_a_listening_loopback_port(mode):
    server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    server.bind(("127.0.0.1", 0))
    server.listen(1)
    server.settimeout(0.5)
    port = server.getsockname()[1]
    try:
        program = (f"import socket\n"
                   f"s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)\n"
                   f"s.settimeout(2)\n"
                   f"s.connect(('127.0.0.1', {port}))\n"
                   f"s.sendall(b'exfiltrated')\n")
        result = run_python(program, UNSOLVED, **mode)
        _assert_failed(result)
        with pytest.raises(socket.timeout):
            server.accept()
    finally:
        server.close()


@pytest.mark.parametrize("mode", MODES)
def test_writes_outside_the_temporary_directory_do_not_land(mode, tmp_path):
    targets = [tmp_path / "pwned.txt", ROOT / "pwned.txt", Path.home() / "pwned.txt", Path("/pwned.txt")]
    program = "import os\n" + "".join(
        f"try:\n"
        f"    os.makedirs({str(t.parent)!r}, exist_ok=True)\n"
        f"    open({str(t)!r}, 'w').write('pwned')\n"
        f"except OSError as e:\n"
        f"    print('refused', e)\n" for t in targets) + "assert False, 'every write was refused'\n"
    result = run_python(program, UNSOLVED, **mode)
    _assert_failed(result)
    assert not [t for t in targets if t.exists()]


@pytest.mark.parametrize("mode", MODES)
def test_killing_the_parent_or_its_group_leaves_the_harness_alive(mode):
    me = os.getpid()
    for attack in (f"os.kill({me}, signal.SIGKILL)", "os.kill(os.getppid(), signal.SIGKILL)",
                   f"os.killpg(os.getpgid({me}), signal.SIGKILL)", "os.killpg(0, signal.SIGKILL)"):
        result = run_python(f"import os, signal\n{attack}\n", UNSOLVED, **mode)
        _assert_failed(result)


@needs_namespaces
@pytest.mark.parametrize("guard", [True, False])
def test_kill_everything_reaches_only_the_sandbox(guard):
    result = run_python("import os, signal\nos.kill(-1, signal.SIGKILL)\n", UNSOLVED, guard=guard)
    _assert_failed(result)


@pytest.mark.parametrize("mode", MODES)
def test_api_keys_in_the_harness_environment_are_invisible(mode, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-not-a-real-key-1234")
    program = ("import os\n"
               "print(dict(os.environ))\n"
               f"for pid in ('self', os.getppid(), {os.getpid()}):\n"
               "    try:\n"
               "        print(open(f'/proc/{pid}/environ', 'rb').read())\n"
               "    except OSError as e:\n"
               "        print('refused', e)\n")
    result = run_python(program, UNSOLVED, **mode)
    _assert_failed(result)
    assert "OPENAI_API_KEY" not in result.stdout + result.stderr
    assert "sk-test-not-a-real-key" not in result.stdout + result.stderr


@pytest.mark.parametrize("mode", MODES)
def test_harness_files_cannot_be_read(mode):
    files = [ROOT / "README.md", ROOT / "agora" / "scoring" / "sandbox.py", SHARED_DATA / "README.md"]
    program = "".join(f"try:\n    print(open({str(f)!r}).read())\nexcept OSError as e:\n    print('refused', e)\n"
                      for f in files)
    result = run_python(program, UNSOLVED, **mode)
    _assert_failed(result)
    assert "Agora reproduces" not in result.stdout and "def run_python" not in result.stdout
    assert "Benchmark data" not in result.stdout


# ---------------------------------------------------------------- cheating the verdict

WRONG = "def add(a, b):\n    return a - b\n"
TESTS = "assert add(2, 3) == 5\nassert abs(add(1, 1) - 2) < 1e-9\n"
CHEATS = {
    "sys.exit(0) before the asserts": "import sys\nsys.exit(0)\n",
    "os._exit(0) before the asserts": "import os\nos._exit(0)\n",
    "exit(0) from atexit": "import atexit, os\natexit.register(lambda: os._exit(0))\n",
    "AssertionError replaced": "import builtins\nbuiltins.AssertionError = type('Quiet', (Exception,), {})\n",
    "print replaced": "import builtins\nbuiltins.print = lambda *a, **k: None\n",
    "sys.exit and os._exit made no-ops": "import os, sys\nsys.exit = os._exit = lambda *a: None\n",
    "exec replaced, so the tests would never run": "import builtins\nbuiltins.exec = lambda *a, **k: None\n",
    "abs replaced": "import builtins\nbuiltins.abs = lambda x: 0\n",
    "stdout swallowed": "import io, sys\nsys.stdout = io.StringIO()\n",
    "fake verdict printed": "print('passed')\nprint('OK ' * 10)\n",
    "SystemExit from a thread": "import os, threading, time\n"
                                "threading.Thread(target=lambda: (time.sleep(0.05), os._exit(0))).start()\n",
    "excepthook that exits 0": "import os, sys\nsys.excepthook = lambda *a: os._exit(0)\n",
}


@pytest.mark.parametrize("cheat", list(CHEATS), ids=list(CHEATS))
def test_cheating_the_verdict_fails(cheat):
    program = CHEATS[cheat] + WRONG
    if cheat == "SystemExit from a thread":
        program += "time.sleep(1)\n"  # the thread exits 0 while the program is still running
    _assert_failed(run_python(program, TESTS))
    if cheat not in ("sys.exit(0) before the asserts", "os._exit(0) before the asserts", "SystemExit from a thread"):
        right = CHEATS[cheat] + WRONG.replace("a - b", "a + b")
        assert run_python(right, TESTS).passed, f"{cheat}: a correct program must still pass"


def test_the_token_is_not_in_argv_environment_or_files():
    program = ("import os, sys\n"
               "seen = ' '.join(sys.argv) + str(dict(os.environ)) + ''.join(os.listdir('.'))\n"
               "print(seen)\n")
    result = run_python(program)
    assert result.passed and len(result.stdout.strip()) > 0
    assert not any(len(w) == 32 and all(c in "0123456789abcdef" for c in w) for w in result.stdout.split())


ESCAPE_HATCHES = {
    "ctypes": "import ctypes\nctypes.CDLL(None).kill(1, 9)\n",
    "subprocess": "import subprocess\nsubprocess.run(['true'])\n",
    "os.system": "import os\nos.system('true')\n",
    "_posixsubprocess": "import _posixsubprocess\n",
    "multiprocessing": "import multiprocessing\n",
    "pidfd": "import os, signal\nsignal.pidfd_send_signal(os.pidfd_open(1), signal.SIGKILL)\n",
    "posix reloaded": "import sys\ndel sys.modules['posix']\nimport posix\nposix.pidfd_open(1)\n",
    "extension module written": "open('evil.so', 'wb').write(b'ELF')\n",
    "gc introspection": "import gc\ngc.get_objects()\n",
    "directory fd": "import os\nos.open('/', os.O_RDONLY)\n",
    "proc": "open('/proc/self/environ').read()\n",
}


@pytest.mark.parametrize("mode", [MODES[0], MODES[2]])
@pytest.mark.parametrize("hatch", list(ESCAPE_HATCHES), ids=list(ESCAPE_HATCHES))
def test_the_guard_refuses_the_usual_escape_hatches(hatch, mode):
    result = run_python(ESCAPE_HATCHES[hatch] + "print('escaped')\n", **mode)
    _assert_failed(result)
    assert "escaped" not in result.stdout
    assert "sandbox:" in result.stderr or "AttributeError" in result.stderr, result
