"""A real `ics serve` process on free loopback ports, SIPp peers around it, and store queries.

Used by the end-to-end tests and by ``loadtests/bench_calls.py``. Nothing here
fakes the controller: the service is the ``ics`` console script started from a
copy of ``configs/`` whose service file is rewritten to free ports and a
temporary data directory; SIPp plays the facility trunk and the carrier.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

if TYPE_CHECKING:
    from accounts import Account, AccountStore, CallDetailRecord, Reservation

T = TypeVar("T")

REPO = Path(__file__).resolve().parents[2]
SCENARIOS = REPO / "loadtests" / "sipp"
SIPP = shutil.which("sipp")

#: Facility trunk source addresses of the demo config.
TRUNKS = {
    "tx-state-prison": "127.0.0.11",
    "al-county-jail": "127.0.0.12",
    "ak-regional-jail": "127.0.0.13",
}
#: An address no facility trunk covers.
UNTRUSTED = "127.0.0.99"


# -- ports ---------------------------------------------------------------------


def _bindable(host: str, port: int, kind: int) -> bool:
    with socket.socket(socket.AF_INET, kind) as s:
        if kind == socket.SOCK_STREAM:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError:
            return False
    return True


#: Ports a config names for a peer that is not always listening (carrier gateways):
#: ``free_port`` never hands them out for anything else.
_RESERVED: set[int] = set()


def free_port(host: str = "127.0.0.1", *, tcp_too: bool = False, span: int = 1) -> int:
    """A port free for UDP on ``host`` (and TCP with ``tcp_too``), with ``span - 1`` more after it.

    SIPp binds its media port and the one two above it (video), so media
    ports ask for ``span=3``.
    """
    for _ in range(200):
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.bind((host, 0))
            port: int = s.getsockname()[1]
        if port + span >= 65535:
            continue
        ports = range(port, port + span)
        if any(p in _RESERVED for p in ports):
            continue  # a carrier port: free only until its SIPp starts
        if all(_bindable(host, p, socket.SOCK_DGRAM) for p in ports) and (
            not tcp_too or _bindable(host, port, socket.SOCK_STREAM)
        ):
            return port
    raise RuntimeError("no free port found")


def bound_udp_ports() -> set[int]:
    """Local UDP ports bound on this machine now (any address), from /proc."""
    ports: set[int] = set()
    for table in ("/proc/net/udp", "/proc/net/udp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            if len(fields) > 1:
                ports.add(int(fields[1].rsplit(":", 1)[1], 16))
    return ports


def free_range(size: int, host: str = "127.0.0.1", *, within: tuple[int, int] = (21000, 32700),
               min_free: float = 1.0) -> tuple[int, int]:
    """A run of ``size`` UDP ports for an RTP port range, at least ``min_free`` of them free now.

    By default taken below the kernel's ephemeral range (32768 up), so ports
    the system hands out to SIPp and other clients never land inside it, and
    above the demo config's 20000-20999. The controller skips a pair it cannot
    bind, so a large range may tolerate a few taken ports (``min_free < 1``).
    """
    import random

    now = time.monotonic()

    def in_use(entry: tuple[int, int, float], taken: set[int]) -> bool:
        """A range handed out is in use while young (its service may not have started
        yet) or while any of its ports is bound; a stopped service's range is free again."""
        a, b, at = entry
        return now - at < RANGE_REUSE_AFTER or any(p in taken for p in range(a, b + 1))

    lo, hi = within
    if hi - lo < size:
        lo, hi = max(1024, hi - size - 2), hi
    for _ in range(500):
        first = random.randrange(lo, max(lo + 1, hi - size), 2)
        last = first + size - 1
        taken = bound_udp_ports()
        overlapping = [e for e in _HANDED_OUT if first <= e[1] and e[0] <= last]
        if any(in_use(e, taken) for e in overlapping):
            continue
        busy = sum(1 for p in range(first, first + size) if p in taken)
        if busy <= size * (1.0 - min_free) and (
            min_free < 1.0
            or all(_bindable(host, p, socket.SOCK_DGRAM) for p in range(first, first + size))
        ):
            for e in overlapping:
                _HANDED_OUT.remove(e)
            _HANDED_OUT.append((first, last, now))
            return first, last
    raise RuntimeError(f"no RTP port range of {size} found in {within}")


#: Ranges already given to services of this process, with when: two services never share
#: one (a controller binds its ports only as calls need them, so a check alone cannot
#: tell) while the first may still use it.
_HANDED_OUT: list[tuple[int, int, float]] = []
#: Seconds after which a handed-out range none of whose ports is bound may be handed out
#: again (its service has stopped): a whole suite needs more ranges than there is room for.
RANGE_REUSE_AFTER = 120.0


# -- TOML editing of the copied config ---------------------------------------------


def set_toml(text: str, table: str | None, key: str, literal: str) -> str:
    """Set ``key = literal`` in ``[table]`` (or the top level), adding the key if absent.

    The config files are plain (no inline tables spanning lines), so a line
    edit is exact; a missing table is an error rather than a silent no-op.
    """
    lines = text.splitlines()
    if table is None:
        start = 0
    else:
        header = f"[{table}]"
        try:
            start = next(i for i, line in enumerate(lines) if line.strip() == header) + 1
        except StopIteration:
            raise KeyError(f"no table [{table}] in the config") from None
    end = next(
        (i for i in range(start, len(lines)) if lines[i].lstrip().startswith("[")), len(lines)
    )
    pattern = re.compile(rf"^\s*{re.escape(key)}\s*=")
    for i in range(start, end):
        if pattern.match(lines[i]):
            lines[i] = f"{key} = {literal}"
            break
    else:
        # Insert after the last key line of the table so comments stay attached.
        at = end
        while at > start and not lines[at - 1].strip():
            at -= 1
        lines.insert(at, f"{key} = {literal}")
    return "\n".join(lines) + "\n"


def replace_array_tables(text: str, name: str, blocks: list[str]) -> str:
    """Drop every ``[[name]]`` block and append ``blocks`` (each a TOML body) instead."""
    out: list[str] = []
    skipping = False
    for line in text.splitlines():
        stripped = line.strip()
        if stripped.startswith("["):
            skipping = stripped == f"[[{name}]]"
        if not skipping:
            out.append(line)
    for body in blocks:
        out += ["", f"[[{name}]]", body.strip()]
    return "\n".join(out) + "\n"


# -- the service -------------------------------------------------------------------


@dataclass
class ServicePorts:
    sip: int
    http: int
    carrier: int
    rtp: tuple[int, int]

    @classmethod
    def pick(cls, rtp_size: int = 400, rtp_within: tuple[int, int] = (21000, 32700),
             rtp_min_free: float = 1.0) -> ServicePorts:
        sip = free_port(tcp_too=True)
        http = free_port(tcp_too=True)
        while http == sip:
            http = free_port(tcp_too=True)
        carrier = free_port(span=1)
        # Bound only while a carrier SIPp runs: no other SIPp may take it meanwhile.
        _RESERVED.add(carrier)
        return cls(sip=sip, http=http, carrier=carrier,
                   rtp=free_range(rtp_size, within=rtp_within, min_free=rtp_min_free))


@dataclass
class Service:
    """One `ics serve` process on a private copy of the configs."""

    root: Path
    ports: ServicePorts
    process: subprocess.Popen[bytes] | None = None
    log_path: Path = field(init=False)

    def __post_init__(self) -> None:
        self.log_path = self.root / "ics-serve.log"

    @property
    def config_path(self) -> Path:
        return self.root / "configs" / "demo.toml"

    @property
    def store_path(self) -> Path:
        return self.root / "configs" / "var" / "ics.sqlite3"

    @property
    def http_base(self) -> str:
        return f"http://127.0.0.1:{self.ports.http}"

    # -- config ----------------------------------------------------------------

    @classmethod
    def prepare(cls, root: Path, *, ports: ServicePorts | None = None,
                service: dict[tuple[str | None, str], str] | None = None) -> Service:
        """Copy ``configs/`` under ``root`` and point the service file at free loopback ports.

        ``service`` adds or overrides service-file keys: ``{(table, key): literal}``.
        Facility, tariff and seed files can be edited in ``root/configs`` before
        ``start``.
        """
        ports = ports or ServicePorts.pick()
        root.mkdir(parents=True, exist_ok=True)
        shutil.copytree(REPO / "configs", root / "configs",
                        ignore=shutil.ignore_patterns("var"))
        svc = cls(root=root, ports=ports)
        text = svc.config_path.read_text()
        edits: dict[tuple[str | None, str], str] = {
            ("sip", "listen"): (
                f'["udp:127.0.0.1:{ports.sip}", "tcp:127.0.0.1:{ports.sip}"]'
            ),
            ("sip", "carrier_gateway"): f'"127.0.0.1:{ports.carrier}"',
            ("http", "listen"): f'"127.0.0.1:{ports.http}"',
            ("media", "rtp_port_min"): str(ports.rtp[0]),
            ("media", "rtp_port_max"): str(ports.rtp[1]),
        }
        edits.update(service or {})
        for (table, key), literal in edits.items():
            text = set_toml(text, table, key, literal)
        svc.config_path.write_text(text)
        return svc

    def edit(self, relative: str, fn: Callable[[str], str]) -> None:
        """Rewrite ``configs/<relative>`` with ``fn(text) -> text``."""
        path = self.root / "configs" / relative
        path.write_text(fn(path.read_text()))

    # -- process ---------------------------------------------------------------

    def start(self, timeout: float = 30.0) -> None:
        ics = shutil.which("ics")
        cmd = [ics, "serve"] if ics else [sys.executable, "-m", "ics.cli", "serve"]
        cmd += ["--config", str(self.config_path)]
        env = dict(os.environ, PYTHONUNBUFFERED="1")
        self._log = self.log_path.open("ab")  # kept across restarts
        self.process = subprocess.Popen(cmd, cwd=self.root, stdout=self._log,
                                        stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                        env=env)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"ics serve exited with {self.process.returncode}:\n"
                                   + self.log())
            if self.ready():
                return
            time.sleep(0.1)
        self.stop()
        raise RuntimeError("ics serve did not become ready:\n" + self.log())

    def ready(self) -> bool:
        try:
            with urllib.request.urlopen(self.http_base + "/readyz", timeout=1) as resp:
                return bool(resp.status == 200)
        except OSError:
            return False

    def stop(self, timeout: float = 30.0) -> int:
        """SIGTERM, wait; the exit status (killed processes give a negative one)."""
        proc = self.process
        if proc is None:
            return 0
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        self._log.close()
        self.process = None
        return proc.returncode

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""

    def outcome_lines(self) -> list[str]:
        """The one structured (JSON) line per call outcome the service logs."""
        return [line for line in self.log().splitlines() if line.startswith("{")]

    # -- store queries ---------------------------------------------------------

    def _query(self, fn: Callable[[AccountStore], Awaitable[T]]) -> T:
        """Run one query on the service's store through the accounts package's own API."""
        from accounts import SqliteAccountStore

        async def run() -> T:
            store = SqliteAccountStore(self.store_path)
            await store.open()
            try:
                return await fn(store)
            finally:
                await store.close()

        return asyncio.run(run())

    def account(self, account_id: str) -> Account:
        return self._query(lambda s: s.get_account(account_id))

    def balance(self, account_id: str) -> int:
        """The spendable balance of an account, in money units."""
        return self.account(account_id).balance_units

    def held(self, account_id: str) -> int:
        return self.account(account_id).held_units

    def cdr(self, call_id: str, timeout: float = 10.0) -> CallDetailRecord:
        """The CDR of a call, waiting for it to be written (settlement follows the SIP answer)."""
        from accounts import NotFound

        deadline = time.monotonic() + timeout
        while True:
            try:
                return self._query(lambda s: s.get_cdr(call_id))
            except NotFound:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)

    def cdrs(self, **filters: Any) -> list[CallDetailRecord]:
        from accounts import CdrFilter

        return self._query(lambda s: s.list_cdrs(CdrFilter(**filters)))

    def open_reservations(self) -> list[Reservation]:
        return self._query(lambda s: s.open_reservations())


@contextlib.contextmanager
def running(service: Service) -> Iterator[Service]:
    service.start()
    try:
        yield service
    finally:
        service.stop()


# -- SIPp ----------------------------------------------------------------------------


@dataclass
class SippResult:
    returncode: int
    logs: str
    errors: str
    stat_csv: str
    stderr: str
    messages: str

    def log_lines(self, prefix: str) -> list[str]:
        return [line for line in self.logs.splitlines() if line.startswith(prefix)]

    def finals(self) -> list[dict[str, str]]:
        """``final ...`` lines of facility_refused/facility_cancel as dicts."""
        out = []
        for line in self.log_lines("final "):
            fields = dict(re.findall(r"(\w+)=(\S*)", line.split(" text=")[0]))
            fields["text"] = line.split(" text=", 1)[1] if " text=" in line else ""
            out.append(fields)
        return out

    def call_ids(self) -> list[str]:
        return re.findall(r"callid=(\S+)", self.logs)

    def describe(self) -> str:
        return (f"rc={self.returncode}\n--- stderr\n{self.stderr[-3000:]}\n--- errors\n"
                f"{self.errors[-3000:]}\n--- logs\n{self.logs[-2000:]}")


class Sipp:
    """One SIPp process with its traces in ``workdir``; always bounded by ``-timeout``."""

    def __init__(self, workdir: Path, name: str, scenario: str, *, local_ip: str,
                 remote: str | None = None, calls: int = 1, timeout_s: float = 60,
                 keys: dict[str, str] | None = None, sets: dict[str, str | int] | None = None,
                 service: str | None = None, extra: list[str] | None = None,
                 trace_msg: bool = True) -> None:
        if SIPP is None:
            raise RuntimeError("sipp is not installed")
        self.dir = workdir / name
        self.dir.mkdir(parents=True, exist_ok=True)
        self.name = name
        self.timeout_s = timeout_s
        self.sip_port = free_port(local_ip)
        self.media_port = free_port(local_ip, span=3)
        cmd = [SIPP]
        if remote is not None:
            cmd.append(remote)
        cmd += [
            "-sf", str(SCENARIOS / f"{scenario}.xml"),
            "-i", local_ip, "-p", str(self.sip_port),
            "-mi", local_ip, "-mp", str(self.media_port),
            "-m", str(calls), "-timeout", f"{int(timeout_s)}s", "-timeout_error",
            "-nostdin", "-nd",
            "-trace_err", "-error_file", str(self.dir / "errors.log"),
            "-trace_logs", "-log_file", str(self.dir / "logs.log"),
            "-trace_stat", "-stf", str(self.dir / "stat.csv"), "-fd", "1",
        ]
        if trace_msg:
            cmd += ["-trace_msg", "-message_file", str(self.dir / "messages.log")]
        if service is not None:
            cmd += ["-s", service]
        for k, v in (keys or {}).items():
            cmd += ["-key", k, v]
        for name, value in (sets or {}).items():
            cmd += ["-set", name, str(value)]
        cmd += extra or []
        self.cmd = cmd
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> Sipp:
        self.stderr_path = self.dir / "stderr.log"
        self._stderr = self.stderr_path.open("wb")
        self.process = subprocess.Popen(self.cmd, cwd=self.dir, stdin=subprocess.DEVNULL,
                                        stdout=subprocess.DEVNULL, stderr=self._stderr)
        return self

    def wait_listening(self, timeout: float = 5.0) -> Sipp:
        """Until the SIP port is bound (a server scenario is ready for its INVITE)."""
        host = self.cmd[self.cmd.index("-i") + 1]
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process is not None and self.process.poll() is not None:
                break
            if not _bindable(host, self.sip_port, socket.SOCK_DGRAM):
                return self
            time.sleep(0.02)
        raise RuntimeError(f"SIPp {self.name} is not listening:\n{self.result().describe()}")

    def wait(self, extra: float = 15.0) -> SippResult:
        assert self.process is not None
        try:
            self.process.wait(timeout=self.timeout_s + extra)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        return self.result()

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait()

    def result(self) -> SippResult:
        def read(name: str) -> str:
            try:
                return (self.dir / name).read_text(errors="replace")
            except OSError:
                return ""

        with contextlib.suppress(Exception):
            self._stderr.flush()
        rc = self.process.returncode if self.process is not None else -1
        return SippResult(rc if rc is not None else -1, read("logs.log"), read("errors.log"),
                          read("stat.csv"), read("stderr.log"), read("messages.log"))

    def run(self) -> SippResult:
        self.start()
        return self.wait()


def stat_totals(stat_csv: str) -> dict[str, int]:
    """Last row of a SIPp ``-trace_stat`` file: cumulative counters by column name."""
    rows = [r for r in stat_csv.splitlines() if r.strip()]
    if len(rows) < 2:
        return {}
    header = rows[0].split(";")
    last = rows[-1].split(";")
    out: dict[str, int] = {}
    for name, value in zip(header, last, strict=False):
        with contextlib.suppress(ValueError):
            out[name] = int(value)
    return out
