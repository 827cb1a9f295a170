"""Kamailio (configs/kamailio/kamailio.cfg, as shipped) in front of `ics serve` nodes on Redis.

Used by tests/e2e/test_kamailio_front.py and loadtests/bench_kamailio.py. Kamailio
listens on a loopback address of its own (``PROXY_IP``) at a port the caller
picks; its dispatcher list names the nodes. Each node is an `ics serve` on the
demo configs with its store in Redis, trusting the proxy's address for the
facility source header, renewing a short lease.
"""

from __future__ import annotations

import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path

from harness import REPO, Service, free_port, free_range

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "redis"))
from redis_serve import prepare_node

KAMAILIO = shutil.which("kamailio") or (
    "/usr/sbin/kamailio" if Path("/usr/sbin/kamailio").exists() else None
)
CONFIG = REPO / "configs" / "kamailio" / "kamailio.cfg"
#: The proxy's own loopback address: no facility trunk's.
PROXY_IP = "127.0.0.50"
#: Node lease settings short enough for a test to watch a dead node's lease expire.
LEASE_RENEW = "0.5"
LEASE_TTL = "2"


@dataclass
class Kamailio:
    """One Kamailio process in the foreground, its log in ``directory``."""

    directory: Path
    nodes: list[int]
    port: int = field(default_factory=lambda: free_port(PROXY_IP))
    process: subprocess.Popen[bytes] | None = None

    @property
    def address(self) -> str:
        return f"{PROXY_IP}:{self.port}"

    @property
    def log_path(self) -> Path:
        return self.directory / "kamailio.log"

    def start(self, timeout: float = 10.0) -> Kamailio:
        if KAMAILIO is None:
            raise RuntimeError("kamailio is missing: install it (scripts/test.sh does)")
        self.directory.mkdir(parents=True, exist_ok=True)
        listing = self.directory / "dispatcher.list"
        listing.write_text("".join(f"1 sip:127.0.0.1:{port}\n" for port in self.nodes))
        cmd = [
            KAMAILIO, "-DD", "-E", "-f", str(CONFIG), "-m", "64", "-M", "8",
            "-Y", str(self.directory),
            "-A", f"LISTEN=udp:{self.address}",
            "-A", f'DISPATCHER_LIST="{listing}"',
            "-A", "CHILDREN=2",
        ]  # fmt: skip
        self._log = self.log_path.open("ab")
        self.process = subprocess.Popen(cmd, cwd=self.directory, stdin=subprocess.DEVNULL,
                                        stdout=self._log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"kamailio exited with {self.process.returncode}:\n"
                                   + self.log())
            if "Listening on" in self.log() or self._bound():
                return self
            time.sleep(0.05)
        self.stop()
        raise RuntimeError("kamailio did not start:\n" + self.log())

    def _bound(self) -> bool:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            try:
                s.bind((PROXY_IP, self.port))
            except OSError:
                return True
        return False

    def stop(self) -> None:
        proc = self.process
        if proc is not None and proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        self.process = None
        if hasattr(self, "_log"):
            self._log.close()

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""


def prepare_front_node(
    root: Path, name: str, url: str, prefix: str, accounts: dict[str, tuple[str, Decimal]],
    **service: str,
) -> Service:
    """A node behind the proxy: its own name, a short lease, 1 s heartbeats."""
    rtp = free_range(400)
    svc = prepare_node(root, url, prefix, accounts, accounts__heartbeat_seconds="1",
                       media__rtp_port_min=str(rtp[0]), media__rtp_port_max=str(rtp[1]),
                       **service)
    svc.ports.rtp = rtp
    svc.edit("demo.toml", lambda text: text + (
        f'\n[node]\nid = "{name}"\nlease_renew_seconds = {LEASE_RENEW}\n'
        f"lease_ttl_seconds = {LEASE_TTL}\n"
        f'\n[proxy]\nsources = ["{PROXY_IP}"]\n'
    ))
    return svc


def metric(svc: Service, name: str, **labels: str) -> float:
    """One sample of the node's ``GET /metrics`` (0 when absent)."""
    with urllib.request.urlopen(svc.http_base + "/metrics", timeout=2) as resp:
        text = resp.read().decode()
    want = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
    pattern = re.escape(name) + (r"\{" + re.escape(want) + r"\}" if want else "") + r" (\S+)"
    found = re.search("^" + pattern + "$", text, re.MULTILINE)
    return float(found.group(1)) if found else 0.0
