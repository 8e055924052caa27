"""Run the Autobahn|Testsuite against the targets in compliance/targets.py and grade it.

    python -m compliance.run --ci            # the CI subset (targets with ci=True)
    python -m compliance.run --all           # every target
    python -m compliance.run --target NAME   # one target (repeatable)
    python -m compliance.run --all --cases '1.*,2.*'   # narrow the cases for a quick run

Server targets are started on free loopback ports and tested together by one
``wstest --mode fuzzingclient`` run per distinct case selection; each client target runs
against its own ``wstest --mode fuzzingserver``. Every case's ``behavior`` and
``behaviorClose`` from the suite's index.json are counted per target and case group;
anything but OK (or INFORMATIONAL, which only the suite itself hands out) fails the run.
A case that comes out NON-STRICT is run once more on its own (it can flip between OK and
NON-STRICT on a loaded machine): OK then passes but is listed as flaky in the summary.

Nothing here can hang: servers must listen within their startup timeout, wstest and
clients that make no progress for ``--stall-timeout`` seconds are killed, and the whole
run is bounded by ``--timeout``.
"""

from __future__ import annotations

import argparse
import base64
import datetime
import json
import os
import platform
import re
import runpy
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any, TextIO
from urllib.parse import quote

from compliance.model import ClientTarget, ServerTarget

ROOT = Path(__file__).resolve().parent.parent
HERE = ROOT / "compliance"
DEFAULT_WSTEST = ROOT / ".autobahn" / "venv" / "bin" / "wstest"
REPORTS = HERE / "reports"
RESULTS = HERE / "RESULTS.md"
HOST = "127.0.0.1"
KEEP_RUNS = 3  # report folders kept under compliance/reports/
# Seconds kept back from the run's --timeout for wstest to write its reports after the
# peers under test are stopped (about 10 s for 500 cases on this machine).
REPORT_GRACE = 60.0
MAX_RERUN = 30  # more NON-STRICT cases than this in one target are not run again
# wstest runs at once: wstest and the peer under test are one core's work between them
# (each waits for the other), so on this 2-core machine two runs take about half the
# time of one after the other (see compliance/README.md for the timings).
DEFAULT_JOBS = 2

GROUP_NAMES = {
    "1": "Framing",
    "2": "Pings/Pongs",
    "3": "Reserved Bits",
    "4": "Opcodes",
    "5": "Fragmentation",
    "6": "UTF-8 Handling",
    "7": "Close Handling",
    "9": "Limits/Performance",
    "10": "Misc",
    "12": "Compression (payloads)",
    "13": "Compression (parameters)",
}

# The suite's grades, in the order the tables show them. Only OK and INFORMATIONAL pass.
# FAILED BY CLIENT (close only): the server under test did not close the TCP connection
# first after the closing handshake (RFC 6455 §7.1.1: "the server SHOULD close the
# underlying TCP connection immediately"), so wstest had to drop it.
GRADES = (
    "OK",
    "NON-STRICT",
    "INFORMATIONAL",
    "UNIMPLEMENTED",
    "FAILED",
    "WRONG CODE",
    "UNCLEAN",
    "FAILED BY CLIENT",
    "MISSING",
)
PASSING = frozenset({"OK", "INFORMATIONAL"})
MISSING = "MISSING"  # the suite never reported the case (server died, wstest killed, ...)

_RUNNING = re.compile(r"Running test case ID (\S+) for agent (\S+)")


class RunnerError(Exception):
    """A problem with the runner's setup (no wstest, a bad target list): exit 2."""


class Interrupted(Exception):
    """SIGINT/SIGTERM arrived: stop everything we started and exit."""


# ---------------------------------------------------------------------------------------
# Results


@dataclass
class CaseResult:
    case: str
    behavior: str
    close: str
    code: int | None = None
    duration_ms: int = 0
    report: str = ""

    @property
    def passed(self) -> bool:
        return self.behavior in PASSING and self.close in PASSING


@dataclass
class TargetResult:
    name: str
    kind: str  # "server" or "client"
    expected: list[str]
    cases: dict[str, CaseResult] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)
    flaky: list[tuple[str, str]] = field(default_factory=list)  # (case, first grade)
    wall: float = 0.0
    reports: Path | None = None
    notes: list[str] = field(default_factory=list)

    def result(self, case: str) -> CaseResult:
        return self.cases.get(case) or CaseResult(case, MISSING, MISSING)

    def failing(self) -> list[CaseResult]:
        return [r for r in map(self.result, self.expected) if not r.passed]

    @property
    def passed(self) -> bool:
        return not self.errors and not self.failing()


def group_of(case: str) -> str:
    return case.split(".", 1)[0]


def case_key(case: str) -> tuple[int, ...]:
    return tuple(int(part) for part in case.split("."))


def read_index(outdir: Path) -> dict[str, dict[str, CaseResult]]:
    """Parse wstest's ``index.json`` in ``outdir`` into {agent: {case: result}}."""
    path = outdir / "index.json"
    if not path.exists():
        return {}
    raw = json.loads(path.read_text(encoding="utf-8"))
    parsed: dict[str, dict[str, CaseResult]] = {}
    for agent, cases in raw.items():
        parsed[agent] = {
            case: CaseResult(
                case,
                str(entry.get("behavior", "FAILED")),
                str(entry.get("behaviorClose", "FAILED")),
                entry.get("remoteCloseCode"),
                int(entry.get("duration") or 0),
                str(outdir / entry["reportfile"]) if entry.get("reportfile") else "",
            )
            for case, entry in cases.items()
        }
    return parsed


# ---------------------------------------------------------------------------------------
# Processes


_LIVE: set[subprocess.Popen[bytes]] = set()


def _spawn(
    args: Sequence[str],
    *,
    cwd: Path,
    env: Mapping[str, str],
    stdout: int | TextIO,
) -> subprocess.Popen[bytes]:
    # A session of its own so that stop() reaches the whole process tree (a server that
    # forks workers, a shell wrapper).
    proc = subprocess.Popen(
        list(args),
        cwd=cwd,
        env=dict(env),
        stdin=subprocess.DEVNULL,
        stdout=stdout,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    _LIVE.add(proc)
    return proc


def stop(proc: subprocess.Popen[bytes], grace: float = 3.0) -> int | None:
    """SIGTERM the process group, SIGKILL it after ``grace`` seconds; return the exit code."""
    _LIVE.discard(proc)
    if proc.poll() is None:
        with suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(grace)
        except subprocess.TimeoutExpired:
            with suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    else:
        # The leader is gone; its children may not be.
        with suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)
    return proc.returncode


def stop_all() -> None:
    for proc in list(_LIVE):
        stop(proc, grace=1.0)


_HANDED_OUT: set[int] = set()
_PORTS_LOCK = threading.Lock()


def free_port() -> int:
    """A loopback port that nothing listens on, never the same one twice in a run: with
    --jobs, another thread's target may not be listening on its port yet."""
    with _PORTS_LOCK:
        while True:
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
                sock.bind((HOST, 0))
                port = int(sock.getsockname()[1])
            if port not in _HANDED_OUT:
                _HANDED_OUT.add(port)
                return port


def _tcp_table() -> list[tuple[int, str]] | None:
    """(local port, state) of every TCP socket per /proc/net/tcp*, or None without /proc."""
    table: list[tuple[int, str]] = []
    found = False
    for name in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(name).read_text().splitlines()[1:]
        except OSError:
            continue
        found = True
        for line in lines:
            fields = line.split()
            if len(fields) > 3:
                table.append((int(fields[1].rsplit(":", 1)[1], 16), fields[3]))
    return table if found else None


_LISTEN = "0A"
# ESTABLISHED, SYN_RECV, CLOSE_WAIT: a connection the server side still holds open
# (TIME_WAIT and FIN_WAIT are what a server that closed properly leaves behind).
_HELD = frozenset({"01", "03", "08"})


def _listening_ports() -> set[int] | None:
    table = _tcp_table()
    return None if table is None else {port for port, state in table if state == _LISTEN}


def busy_ports(ports: Iterable[int]) -> set[int]:
    """Which of ``ports`` (servers' listening ports) hold an open connection right now."""
    wanted = set(ports)
    table = _tcp_table() or []
    return {port for port, state in table if port in wanted and state in _HELD}


def _is_listening(port: int) -> bool:
    # Reading the kernel's socket table does not open a connection, so the server
    # under test never sees a probe that closes before its handshake.
    ports = _listening_ports()
    if ports is not None:
        return port in ports
    try:
        with socket.create_connection((HOST, port), timeout=1.0):
            return True
    except OSError:
        return False


def wait_listening(proc: subprocess.Popen[bytes], port: int, timeout: float) -> str | None:
    """Wait until ``port`` listens; return None, or why it did not (exit, timeout)."""
    deadline = time.monotonic() + timeout
    while True:
        code = proc.poll()
        if code is not None:
            return f"exited with code {code} before listening on port {port}"
        if _is_listening(port):
            return None
        if time.monotonic() >= deadline:
            return f"not listening on port {port} after {timeout:g} s"
        time.sleep(0.05)


def tail(path: Path, lines: int = 15) -> str:
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return ""
    return "\n".join("    | " + line for line in text.splitlines()[-lines:])


class Wstest:
    """A running wstest whose output is logged and watched for progress."""

    def __init__(self, args: Sequence[str], cwd: Path, log: Path, echo: bool) -> None:
        env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
        env["PYTHONUNBUFFERED"] = "1"  # Python 2 block-buffers a pipe: progress would lag
        self.proc = _spawn(args, cwd=cwd, env=env, stdout=subprocess.PIPE)
        self.log_path = log
        self.echo = echo
        self.lock = threading.Lock()
        self.last_activity = time.monotonic()
        self.current: tuple[str, str] | None = None  # (case, agent) running now
        self.started = 0
        self.reports_after_last_case = False
        self.groups_seen: set[tuple[str, str]] = set()
        self.first_seen: dict[str, float] = {}  # agent -> when its first case started
        self.thread = threading.Thread(target=self._pump, daemon=True)
        self.thread.start()

    def _pump(self) -> None:
        assert self.proc.stdout is not None
        with self.log_path.open("w", encoding="utf-8") as log:
            for raw in self.proc.stdout:
                line = raw.decode("utf-8", "replace")
                log.write(line)
                log.flush()
                match = _RUNNING.search(line)
                with self.lock:
                    self.last_activity = time.monotonic()
                    if match:
                        case, agent = match.group(1), match.group(2)
                        self.current = (case, agent)
                        self.started += 1
                        self.first_seen.setdefault(agent, self.last_activity)
                        self.reports_after_last_case = False
                        key = (agent, group_of(case))
                        if self.echo and key not in self.groups_seen:
                            self.groups_seen.add(key)
                            name = GROUP_NAMES.get(key[1], "")
                            print(f"    {agent}: group {key[1]} {name}", flush=True)
                    elif "Report generation complete" in line:
                        self.reports_after_last_case = True

    def idle(self) -> float:
        with self.lock:
            return time.monotonic() - self.last_activity

    def touch(self) -> None:
        with self.lock:
            self.last_activity = time.monotonic()

    def finish(self) -> int | None:
        code = stop(self.proc)
        self.thread.join(5)
        return code


# ---------------------------------------------------------------------------------------
# The suite's case list and the selection of cases


class Context:
    """What one runner invocation shares: wstest, the case list, deadlines, options."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.wstest = Path(args.wstest)
        self.python2 = self.wstest.parent / "python"
        self.deadline: float = time.monotonic() + float(args.timeout)
        self.stall = float(args.stall_timeout)
        self.retry = not args.strict
        self.cli_cases: list[str] = _split(args.cases)
        self.cli_exclude: list[str] = _split(args.exclude_cases)
        self.run_dir = Path(args.reports) / datetime.datetime.now().strftime(
            f"%Y%m%d-%H%M%S-{os.getpid()}"
        )
        self.all_cases: list[str] = []
        self.version = ""
        self.counter = 0
        self.lock = threading.Lock()
        self.jobs = max(1, int(args.jobs))

    def prepare(self) -> None:
        if not self.wstest.exists():
            raise RunnerError(
                f"wstest not found at {self.wstest}: run `bash compliance/setup.sh` "
                "(or `make compliance`), or pass --wstest"
            )
        if not self.python2.exists():
            raise RunnerError(f"no python beside {self.wstest} to list the suite's cases")
        listing = subprocess.run(
            [
                str(self.python2),
                "-c",
                "import json\n"
                "from autobahntestsuite.case import Cases, CaseBasename\n"
                "print(json.dumps(['.'.join(c.__name__[len(CaseBasename):].split('_'))"
                " for c in Cases]))",
            ],
            capture_output=True,
            timeout=60,
            check=False,
        )
        if listing.returncode != 0:
            raise RunnerError("cannot list the suite's cases:\n" + listing.stderr.decode())
        self.all_cases = sorted(json.loads(listing.stdout), key=case_key)
        version = subprocess.run(
            [str(self.wstest), "--autobahnversion"], capture_output=True, timeout=60, check=False
        )
        self.version = " / ".join(version.stdout.decode().split("\n")).strip(" /")
        self.run_dir.mkdir(parents=True, exist_ok=True)
        _prune(self.run_dir.parent, keep=KEEP_RUNS)

    def remaining(self) -> float:
        return self.deadline - time.monotonic()

    def next_dir(self, label: str) -> Path:
        with self.lock:  # runs started from worker threads (--jobs)
            self.counter += 1
            path = self.run_dir / f"{self.counter:02d}-{label}"
        path.mkdir(parents=True)
        return path

    def resolve(self, patterns: Iterable[str]) -> list[str]:
        """The suite's own pattern rules: '*' matches anything, matched from the start."""
        selected: set[str] = set()
        for pattern in patterns:
            if "*" in pattern:
                regex = re.compile(re.escape(pattern).replace(r"\*", ".*"))
                selected.update(c for c in self.all_cases if regex.match(c))
            elif pattern in self.all_cases:
                selected.add(pattern)
            else:
                raise RunnerError(f"no such case {pattern!r} in the suite")
        return sorted(selected, key=case_key)

    def select(self, target: ServerTarget | ClientTarget) -> list[str]:
        chosen = set(self.resolve(target.cases)) - set(self.resolve(target.exclude_cases))
        if self.cli_cases:
            chosen &= set(self.resolve(self.cli_cases))
        chosen -= set(self.resolve(self.cli_exclude))
        return sorted(chosen, key=case_key)


def _split(text: str | None) -> list[str]:
    return [part.strip() for part in (text or "").split(",") if part.strip()]


def _prune(folder: Path, keep: int) -> None:
    """Delete all but the ``keep`` newest finished runs' report folders."""
    finished = sorted(
        (p for p in folder.iterdir() if p.is_dir() and not _running(p)), key=lambda p: p.name
    )
    for old in finished[:-keep]:
        shutil.rmtree(old, ignore_errors=True)


def _running(run_dir: Path) -> bool:
    # Run folders end in the runner's pid: another engineer's run on the same checkout
    # may still be writing into its folder.
    pid = run_dir.name.rsplit("-", 1)[-1]
    if not pid.isdigit():
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _fill(command: Sequence[str], values: Mapping[str, str]) -> list[str]:
    try:
        return [arg.format_map(values) for arg in command]
    except (KeyError, ValueError) as exc:
        raise RunnerError(f"bad placeholder in {list(command)}: {exc}") from exc


def _target_env(extra: Mapping[str, str]) -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONUNBUFFERED"] = "1"
    env.update(extra)
    return env


def _write_spec(outdir: Path, spec: dict[str, Any]) -> Path:
    path = outdir / "spec.json"
    path.write_text(json.dumps(spec, indent=2) + "\n", encoding="utf-8")
    return path


# ---------------------------------------------------------------------------------------
# Server targets: wstest --mode fuzzingclient


def _watch_servers(
    ctx: Context,
    wstest: Wstest,
    started: Sequence[tuple[ServerTarget, subprocess.Popen[bytes], int, Path]],
    results: dict[str, TargetResult],
) -> tuple[str, set[str]]:
    """Wait for a fuzzingclient run; return why wstest had to be killed ("" if it was not)
    and the agents whose servers were killed.

    A server that stops making progress is killed: wstest then fails the hanging case,
    finds that server's port closed for its remaining cases, moves on to the next server
    and still writes the reports for everybody. When the run's time is up, all servers
    are stopped the same way, so that the cases already run are still graded.
    """
    procs = {t.name: proc for t, proc, _, _ in started}
    agent_of_port = {port: t.name for t, _, port, _ in started}
    killed: set[str] = set()
    wrap_up_until: float | None = None  # servers all stopped: wstest is writing reports

    def kill(agent: str, why: str) -> None:
        killed.add(agent)
        stop(procs[agent], grace=1.0)
        results[agent].errors.append(why)
        print(f"  {agent}: {why}", flush=True)

    while wstest.proc.poll() is None:
        time.sleep(0.2)
        if wrap_up_until is not None:
            if time.monotonic() > wrap_up_until or ctx.remaining() <= 0:
                return "wstest did not finish after its servers were stopped: killed", killed
            continue
        if ctx.remaining() <= REPORT_GRACE:
            for agent in procs:
                if agent not in killed:
                    kill(agent, "the run's --timeout ran out: servers stopped")
            wrap_up_until = time.monotonic() + REPORT_GRACE
            continue
        if wstest.idle() < ctx.stall:
            continue
        # No output from wstest for a whole stall period: find the server under test
        # (the one holding a connection open; else the agent wstest named last).
        busy = [agent_of_port[p] for p in busy_ports(agent_of_port)]
        with wstest.lock:
            current = wstest.current
        culprit = busy[0] if len(busy) == 1 else None
        if culprit is None and current and (not busy or current[1] in busy):
            culprit = current[1]
        where = f" (last case started: {current[0]} for {current[1]})" if current else ""
        if culprit and culprit not in killed:
            kill(culprit, f"no progress for {ctx.stall:g} s{where}: server killed")
            wstest.touch()
        else:
            for agent in procs:
                if agent not in killed:
                    kill(agent, f"wstest made no progress for {ctx.stall:g} s: servers stopped")
            wrap_up_until = time.monotonic() + REPORT_GRACE
    return "", killed


def run_servers(
    ctx: Context, targets: Sequence[ServerTarget], cases: list[str], label: str
) -> dict[str, TargetResult]:
    """Start ``targets``, run one fuzzingclient over all of them, return their results."""
    results = {t.name: TargetResult(t.name, "server", list(cases)) for t in targets}
    outdir = ctx.next_dir(label)
    started: list[tuple[ServerTarget, subprocess.Popen[bytes], int, Path]] = []
    begin = time.monotonic()
    try:
        for target in targets:
            port = free_port()
            log = outdir / f"{target.name}.log"
            values = {"python": sys.executable, "host": HOST, "port": str(port), "root": str(ROOT)}
            command = _fill(target.command, values)
            with log.open("w", encoding="utf-8") as out:
                out.write("$ " + " ".join(command) + "\n")
                out.flush()
                proc = _spawn(command, cwd=ROOT, env=_target_env(target.env), stdout=out)
            timeout = min(target.startup_timeout, max(ctx.remaining(), 0.0))
            why = wait_listening(proc, port, timeout)
            if why:
                stop(proc)
                results[target.name].errors.append(f"server {why}\n{tail(log)}")
                print(f"  {target.name}: server {why} (log: {log})", flush=True)
                continue
            started.append((target, proc, port, log))
        if not started:
            return results
        spec = {
            "outdir": str(outdir),
            "servers": [
                {"agent": t.name, "url": f"ws://{HOST}:{port}"} for t, _, port, _ in started
            ],
            "cases": cases,
            "exclude-cases": [],
            "exclude-agent-cases": {},
            "options": {"failByDrop": False},
        }
        spec_path = _write_spec(outdir, spec)
        names = ", ".join(t.name for t, *_ in started)
        print(f"  fuzzingclient: {len(cases)} cases x [{names}] -> {outdir}", flush=True)
        wstest = Wstest(
            [str(ctx.wstest), "--mode", "fuzzingclient", "--spec", str(spec_path)],
            cwd=outdir,
            log=outdir / "wstest.log",
            echo=True,
        )
        problem, killed = _watch_servers(ctx, wstest, started, results)
        code = wstest.finish()
        ended = time.monotonic()
        if problem:
            print(f"  {problem}", flush=True)
        elif code != 0:
            problem = f"wstest exited with code {code}\n{tail(wstest.log_path)}"
        # Each server's time: from its first case to the next server's first case (or
        # the end of wstest, reports included).
        starts = sorted((when, agent) for agent, when in wstest.first_seen.items())
        for (when, agent), (until, _) in zip(starts, [*starts[1:], (ended, "")], strict=True):
            if agent in results:
                results[agent].wall = until - when
        index = read_index(outdir)
        for target, proc, _, log in started:
            result = results[target.name]
            result.cases = index.get(target.name, {})
            result.reports = outdir
            if problem:
                result.errors.append(problem)
            if target.name not in killed and proc.poll() is not None:
                result.errors.append(
                    f"server exited with code {proc.returncode} during the run\n{tail(log)}"
                )
    finally:
        for _, proc, _, _ in started:
            stop(proc)
        print(f"  servers done in {time.monotonic() - begin:.1f} s", flush=True)
    return results


# ---------------------------------------------------------------------------------------
# Client targets: wstest --mode fuzzingserver


def update_reports(port: int, agent: str, timeout: float) -> str | None:
    """Ask a fuzzingserver to write its reports (as a finished client would); None if done."""
    key = base64.b64encode(os.urandom(16)).decode()
    request = (
        f"GET /updateReports?agent={quote(agent)} HTTP/1.1\r\n"
        f"Host: {HOST}:{port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
    )
    try:
        with socket.create_connection((HOST, port), timeout=timeout) as sock:
            sock.sendall(request.encode("ascii"))
            received = b""
            # The suite writes the reports, then sends a close frame and drops the
            # connection when no close comes back: reading to EOF waits for all of it.
            with suppress(ConnectionResetError):  # wstest aborts rather than closes
                while chunk := sock.recv(65536):
                    received += chunk
    except OSError as exc:
        return f"updateReports failed: {exc}"
    if not received.startswith(b"HTTP/1.1 101"):
        return f"updateReports refused: {received[:80]!r}"
    return None


def run_client(ctx: Context, target: ClientTarget, cases: list[str]) -> TargetResult:
    """Run one client target against its own fuzzingserver and return its results."""
    result = TargetResult(target.name, "client", list(cases))
    outdir = ctx.next_dir(target.name)
    result.reports = outdir
    begin = time.monotonic()
    port = free_port()
    spec = {
        "url": f"ws://{HOST}:{port}",
        "outdir": str(outdir),
        "cases": cases,
        "exclude-cases": [],
        "exclude-agent-cases": {},
        "options": {"failByDrop": False},
    }
    spec_path = _write_spec(outdir, spec)
    wstest = Wstest(
        [str(ctx.wstest), "--mode", "fuzzingserver", "--spec", str(spec_path), "--webport", "0"],
        cwd=outdir,
        log=outdir / "wstest.log",
        echo=True,
    )
    client: subprocess.Popen[bytes] | None = None
    try:
        why = wait_listening(wstest.proc, port, min(60.0, max(ctx.remaining(), 0.0)))
        if why:
            result.errors.append(f"fuzzingserver {why}\n{tail(wstest.log_path)}")
            return result
        url = f"ws://{HOST}:{port}"
        values = {"python": sys.executable, "url": url, "agent": target.name, "root": str(ROOT)}
        command = _fill(target.command, values)
        log = outdir / f"{target.name}.log"
        print(f"  fuzzingserver: {len(cases)} cases for client {target.name} -> {outdir}")
        with log.open("w", encoding="utf-8") as out:
            out.write("$ " + " ".join(command) + "\n")
            out.flush()
            client = _spawn(command, cwd=ROOT, env=_target_env(target.env), stdout=out)
        wstest.touch()
        while client.poll() is None:
            time.sleep(0.2)
            why = ""
            if ctx.remaining() <= REPORT_GRACE:
                why = "the run's --timeout ran out: client killed"
            elif wstest.idle() >= ctx.stall:
                with wstest.lock:
                    current = wstest.current
                where = f" (last case started: {current[0]})" if current else ""
                why = f"no progress for {ctx.stall:g} s{where}: client killed"
            elif wstest.proc.poll() is not None:
                why = f"fuzzingserver exited with code {wstest.proc.returncode}"
            if why:
                result.errors.append(why)
                break
        code = stop(client)
        if code != 0 and not result.errors:
            result.errors.append(f"client exited with code {code}\n{tail(log)}")
        if result.errors:
            print(f"  {target.name}: {result.errors[-1].splitlines()[0]}", flush=True)
        # A client that died or was killed never asked for the reports: ask for them
        # so that the cases it did run are graded (and the rest show as MISSING).
        with wstest.lock:
            ran_cases, have_reports = wstest.started, wstest.reports_after_last_case
        if ran_cases and not have_reports and wstest.proc.poll() is None:
            error = update_reports(port, target.name, timeout=REPORT_GRACE)
            if error:
                result.errors.append(error)
        result.cases = read_index(outdir).get(target.name, {})
        if not result.cases and ran_cases:
            result.errors.append(
                f"no results under agent {target.name!r}: the client must use the "
                "{agent} value in runCase and updateReports"
            )
    finally:
        if client is not None:
            stop(client)
        wstest.finish()
        result.wall = time.monotonic() - begin
    return result


# ---------------------------------------------------------------------------------------
# The matrix


# Rough seconds per case, to start the longest runs first when several run at once: a
# compression case sends up to 1000 messages and takes 3.5 s on average here.
def _cost(cases: Sequence[str]) -> float:
    return sum(3.5 if group_of(c) in ("12", "13") else 0.1 for c in cases)


def run_matrix(
    ctx: Context, servers: Sequence[ServerTarget], clients: Sequence[ClientTarget]
) -> list[TargetResult]:
    """Run every target, retry NON-STRICT cases once, and return results in target order."""
    results: dict[str, TargetResult] = {}
    units: list[tuple[float, Callable[[], dict[str, TargetResult]]]] = []
    # One fuzzingclient run per distinct case selection: wstest starts once for all
    # the servers that share it (for example every server without compression).
    batches: dict[tuple[str, ...], list[ServerTarget]] = {}
    for target in servers:
        batches.setdefault(tuple(ctx.select(target)), []).append(target)
    for number, (cases, batch) in enumerate(batches.items(), 1):
        if not cases:
            for target in batch:
                results[target.name] = TargetResult(target.name, "server", [])
            continue
        label = f"servers-{number}"
        units.append(
            (_cost(cases) * len(batch), partial(run_servers, ctx, batch, list(cases), label))
        )
    for client in clients:
        selected = ctx.select(client)
        if not selected:
            results[client.name] = TargetResult(client.name, "client", [])
            continue
        units.append((_cost(selected), partial(_client_unit, ctx, client, selected)))
    if ctx.jobs <= 1:
        for _, unit in units:
            results.update(unit())
    else:
        # Longest first, so that the compression runs overlap with everything else.
        units.sort(key=lambda u: -u[0])
        pool = ThreadPoolExecutor(ctx.jobs, thread_name_prefix="compliance")
        try:
            for part in pool.map(lambda u: u[1](), units):
                results.update(part)
        finally:
            # On an interrupt, main() kills the processes; the workers then finish.
            pool.shutdown(wait=False, cancel_futures=True)
    if ctx.retry:
        _retry_non_strict(ctx, servers, clients, results)
    return [results[t.name] for t in _both(servers, clients)]


def _client_unit(ctx: Context, client: ClientTarget, cases: list[str]) -> dict[str, TargetResult]:
    return {client.name: run_client(ctx, client, cases)}


def _both(
    servers: Sequence[ServerTarget], clients: Sequence[ClientTarget]
) -> list[ServerTarget | ClientTarget]:
    return [*servers, *clients]


def _retry_non_strict(
    ctx: Context,
    servers: Sequence[ServerTarget],
    clients: Sequence[ClientTarget],
    results: dict[str, TargetResult],
) -> None:
    for target in _both(servers, clients):
        result = results[target.name]
        again = [r.case for r in result.failing() if r.behavior == "NON-STRICT"]
        # Flakiness is a handful of cases; dozens are a systematic NON-STRICT.
        if not again or len(again) > MAX_RERUN or ctx.remaining() <= 2 * REPORT_GRACE:
            continue
        if result.errors:
            continue
        print(f"{target.name}: running NON-STRICT cases again: {', '.join(again)}", flush=True)
        if isinstance(target, ServerTarget):
            rerun = run_servers(ctx, [target], again, f"{target.name}-rerun")[target.name]
        else:
            rerun = run_client(ctx, target, again)
        still = []
        for case in again:
            second = rerun.result(case)
            if second.passed:
                result.flaky.append((case, result.cases[case].behavior))
                result.cases[case] = second
            else:
                still.append(case)
        result.wall += rerun.wall
        where = f" (reports: `{_rel(rerun.reports)}`)" if rerun.reports else ""
        result.notes.append(
            f"NON-STRICT cases run a second time{where}: "
            + (f"still failing: {', '.join(still)}" if still else "all OK")
        )
        result.errors += rerun.errors


# ---------------------------------------------------------------------------------------
# Summary


def _cell(behavior: int, close: int) -> str:
    return "" if not behavior and not close else f"{behavior} / {close}"


def target_table(result: TargetResult) -> list[str]:
    """Markdown rows: per case group, behavior / behaviorClose counts of each grade."""
    header = ["group", "cases", *GRADES, "case time (s)"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    by_group: dict[str, list[CaseResult]] = {}
    for case in result.expected:
        by_group.setdefault(group_of(case), []).append(result.result(case))
    rows = [*sorted(by_group.items(), key=lambda kv: int(kv[0])), ("all", list(_flat(by_group)))]
    for group, rows_cases in rows:
        behaviors = Counter(r.behavior for r in rows_cases)
        closes = Counter(r.close for r in rows_cases)
        seconds = sum(r.duration_ms for r in rows_cases) / 1000
        name = f"{group} {GROUP_NAMES.get(group, '')}".strip()
        label = f"**{name}**" if group == "all" else name
        cells = [_cell(behaviors[g], closes[g]) for g in GRADES]
        other = sum(behaviors.values()) - sum(behaviors[g] for g in GRADES)
        if other:  # a grade this runner does not know: shown, and failing
            cells[GRADES.index("FAILED")] += f" (+{other} other)"
        lines.append(
            f"| {label} | {len(rows_cases)} | " + " | ".join(cells) + f" | {seconds:.1f} |"
        )
    return lines


def _flat(groups: Mapping[str, list[CaseResult]]) -> Iterator[CaseResult]:
    for items in groups.values():
        yield from items


def summary(results: Sequence[TargetResult], title: str, ctx: Context, elapsed: float) -> str:
    """The whole run as Markdown: overview, per-target tables, failures and flaky cases."""
    out = [f"# Autobahn|Testsuite: {title}", ""]
    out.append(
        f"{datetime.datetime.now().astimezone():%Y-%m-%d %H:%M %Z}; {ctx.version}; "
        f"Python {platform.python_version()}, {os.cpu_count()} cores; "
        f"WSIO_PURE={os.environ.get('WSIO_PURE', '') or 'unset'}; "
        f"{elapsed:.0f} s in all."
    )
    out += [
        "",
        "Each cell is *behavior / behaviorClose*: how many cases the suite graded so. "
        "Only OK and INFORMATIONAL pass; MISSING means the suite never reported the case. "
        "*wall*: a server's seconds from its first case to the next server's (or to the end "
        "of wstest), a client's whole run; *case time*: the suite's own per-case durations.",
        "",
        "| target | kind | cases | verdict | failing | errors | flaky (NON-STRICT, then OK) "
        "| wall (s) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        verdict = "PASS" if r.passed else "FAIL"
        flaky = ", ".join(case for case, _ in r.flaky) or "-"
        count = len(r.failing())
        out.append(
            f"| {r.name} | {r.kind} | {len(r.expected)} | {verdict} | {count} | {len(r.errors)} "
            f"| {flaky} | {r.wall:.1f} |"
        )
    for r in results:
        out += ["", f"## {r.name} ({r.kind}): {'PASS' if r.passed else 'FAIL'}", ""]
        if not r.expected:
            out.append("No cases selected.")
            continue
        out += target_table(r)
        for error in r.errors:
            out += ["", "Error: " + error.splitlines()[0]]
            out += error.splitlines()[1:]
        graded = [f for f in r.failing() if f.behavior != MISSING]
        missing = [f.case for f in r.failing() if f.behavior == MISSING]
        if graded or missing:
            out += ["", "Failing cases:", ""]
            for f in graded[:40]:
                out.append(
                    f"- {f.case}: {f.behavior} / {f.close}"
                    + (f", close code {f.code}" if f.code is not None else "")
                    + (f" ({Path(f.report).name})" if f.report else "")
                )
            if len(graded) > 40:
                out.append(f"- ... and {len(graded) - 40} more")
            if missing:
                shown = ", ".join(missing[:5]) + (", ..." if len(missing) > 5 else "")
                out.append(f"- {len(missing)} MISSING: {shown}")
        for note in r.notes:
            out += ["", note]
        if r.flaky:
            flips = ", ".join(f"{case} ({first} first)" for case, first in r.flaky)
            out += ["", f"Flaky (passed when run again): {flips}"]
        if r.reports:
            out += ["", f"Reports: `{_rel(r.reports)}/index.html`"]
    return "\n".join(out) + "\n"


def _rel(path: Path) -> str:
    try:
        return str(path.relative_to(ROOT))
    except ValueError:
        return str(path)


# ---------------------------------------------------------------------------------------
# Command line


def load_targets(path: str | None) -> tuple[list[ServerTarget], list[ClientTarget]]:
    """The SERVERS and CLIENTS lists from compliance/targets.py or from ``path``."""
    if path:
        namespace = runpy.run_path(path)
    else:
        from compliance import targets

        namespace = vars(targets)
    servers = list(namespace.get("SERVERS", []))
    clients = list(namespace.get("CLIENTS", []))
    names = [t.name for t in _both(servers, clients)]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise RunnerError(f"duplicate target names: {', '.join(duplicates)}")
    for t in servers:
        if not isinstance(t, ServerTarget):
            raise RunnerError(f"SERVERS holds {t!r}, not a ServerTarget")
    for t in clients:
        if not isinstance(t, ClientTarget):
            raise RunnerError(f"CLIENTS holds {t!r}, not a ClientTarget")
    return servers, clients


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m compliance.run",
        description="Run the Autobahn|Testsuite against wsio's servers and clients.",
    )
    which = parser.add_mutually_exclusive_group()
    which.add_argument("--ci", action="store_true", help="targets marked ci=True (default)")
    which.add_argument("--all", action="store_true", help="every target")
    which.add_argument(
        "--target", action="append", metavar="NAME", help="this target (repeat, or a,b)"
    )
    parser.add_argument("--list", action="store_true", help="list the targets and exit")
    parser.add_argument("--cases", metavar="PATTERNS", help="only these cases, e.g. '1.*,2.*'")
    parser.add_argument("--exclude-cases", metavar="PATTERNS", help="leave these cases out")
    parser.add_argument("--strict", action="store_true", help="no second run for NON-STRICT cases")
    parser.add_argument(
        "--timeout",
        type=float,
        help="bound on the whole run in seconds (default 1500 for --ci, 7200 otherwise)",
    )
    parser.add_argument(
        "--stall-timeout",
        type=float,
        default=120.0,
        help="kill a server, client or wstest that makes no progress this long (120)",
    )
    parser.add_argument(
        "--jobs",
        type=int,
        default=int(os.environ.get("WSIO_COMPLIANCE_JOBS", str(DEFAULT_JOBS))),
        help=f"wstest runs at once (default {DEFAULT_JOBS}, or $WSIO_COMPLIANCE_JOBS); each "
        "has its own ports and report folder; 1 runs them one after the other",
    )
    parser.add_argument("--wstest", default=str(DEFAULT_WSTEST), help="the wstest to run")
    parser.add_argument("--targets-file", help="a Python file with SERVERS and CLIENTS to use")
    parser.add_argument("--reports", default=str(REPORTS), help="where reports go")
    parser.add_argument(
        "--results",
        help="write the summary here (default: compliance/RESULTS.md for a full --ci or "
        "--all run; narrowed runs write none)",
    )
    parser.add_argument("--no-results", action="store_true", help="write no summary file")
    args = parser.parse_args(argv)
    if args.timeout is None:
        args.timeout = 7200.0 if (args.all or args.target) else 1500.0
    return args


def choose(
    args: argparse.Namespace, servers: list[ServerTarget], clients: list[ClientTarget]
) -> tuple[list[ServerTarget], list[ClientTarget], str]:
    if args.target:
        wanted = _split(",".join(args.target))
        known = {t.name for t in _both(servers, clients)}
        unknown = [name for name in wanted if name not in known]
        if unknown:
            raise RunnerError(
                f"unknown target(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}"
            )
        picked = [t for t in servers if t.name in wanted], [t for t in clients if t.name in wanted]
        return picked[0], picked[1], "targets " + ", ".join(wanted)
    if args.all:
        return servers, clients, "every target (`--all`)"
    return [t for t in servers if t.ci], [t for t in clients if t.ci], "the CI matrix (`--ci`)"


@contextmanager
def _signals_interrupt() -> Iterator[None]:
    def handler(signum: int, _frame: object) -> None:
        raise Interrupted(signal.Signals(signum).name)

    previous = {s: signal.signal(s, handler) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the selected targets; return 0 when every case passed, 1 otherwise, 2 on misuse."""
    args = parse_args(argv)
    try:
        servers, clients = load_targets(args.targets_file)
        if args.list:
            for t in _both(servers, clients):
                kind = "server" if isinstance(t, ServerTarget) else "client"
                print(
                    f"{t.name:30} {kind:6} ci={t.ci!s:5} cases={','.join(t.cases)}"
                    f" exclude={','.join(t.exclude_cases) or '-'}"
                )
            return 0
        if not servers and not clients:
            source = args.targets_file or "compliance/targets.py"
            print(f"compliance: no targets yet ({source} lists none): nothing to run")
            return 0
        servers, clients, title = choose(args, servers, clients)
        if not servers and not clients:
            print(f"compliance: {title} selects no target: nothing to run")
            return 0
        ctx = Context(args)
        ctx.prepare()
        for target in _both(servers, clients):
            ctx.select(target)  # unknown case ids fail here, before anything starts
    except RunnerError as exc:
        print(f"compliance: {exc}", file=sys.stderr)
        return 2
    print(f"compliance: {title}: {len(servers)} server(s), {len(clients)} client(s); {ctx.version}")
    print(f"compliance: reports in {_rel(ctx.run_dir)}", flush=True)
    begin = time.monotonic()
    try:
        with _signals_interrupt():
            results = run_matrix(ctx, servers, clients)
    except Interrupted as exc:
        print(f"compliance: interrupted ({exc}); stopping", file=sys.stderr)
        return 130
    except RunnerError as exc:
        print(f"compliance: {exc}", file=sys.stderr)
        return 2
    finally:
        stop_all()
    narrowed = bool(args.target or args.cases or args.exclude_cases)
    if args.cases or args.exclude_cases:
        title += f", cases {args.cases or '*'}" + (
            f" minus {args.exclude_cases}" if args.exclude_cases else ""
        )
    text = summary(results, title, ctx, time.monotonic() - begin)
    print()
    print(text)
    destination = args.results or (None if narrowed else str(RESULTS))
    if destination and not args.no_results:
        path = Path(destination)
        temporary = path.with_name(path.name + f".{os.getpid()}.tmp")
        temporary.write_text(text, encoding="utf-8")
        os.replace(temporary, path)
        print(f"compliance: summary written to {_rel(path.resolve())}")
    ok = all(r.passed for r in results)
    print("compliance: PASS" if ok else "compliance: FAIL")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
