"""Real redis-server processes for tests: one standalone server and a 3-master cluster.

Servers listen on free loopback ports with their data in a temporary
directory, start on first use (so a run that needs no Redis starts none) and
are stopped when the test process exits. Each store a test opens gets its own
key prefix, so tests share a server without seeing each other's keys.
"""

from __future__ import annotations

import atexit
import contextlib
import random
import shutil
import socket
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from accounts import AccountStore, RedisAccountStore

REDIS_SERVER = shutil.which("redis-server")
REDIS_CLI = shutil.which("redis-cli")


def _bindable(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def free_port() -> int:
    """A free loopback port whose cluster bus port (port + 10000) is free as well."""
    rng = random.Random()
    for _ in range(200):
        port = rng.randrange(30000, 45000)
        if _bindable(port) and _bindable(port + 10000):
            return port
    raise RuntimeError("no free port pair for redis-server")


def require_redis() -> None:
    if REDIS_SERVER is None or REDIS_CLI is None:
        pytest.fail("redis-server is not installed (scripts/test.sh installs it)")


@dataclass
class RedisServer:
    """One redis-server on 127.0.0.1; stop() and start() again keep its port and data."""

    directory: Path
    port: int = field(default_factory=free_port)
    cluster: bool = False
    appendfsync: str = "everysec"
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    @property
    def node(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self) -> None:
        require_redis()
        assert REDIS_SERVER is not None
        self.directory.mkdir(parents=True, exist_ok=True)
        args = [
            REDIS_SERVER,
            "--port", str(self.port),
            "--bind", "127.0.0.1",
            "--dir", str(self.directory),
            "--save", "",
            "--appendonly", "yes",
            "--appendfsync", self.appendfsync,
            "--daemonize", "no",
            "--logfile", str(self.directory / "redis.log"),
        ]  # fmt: skip
        if self.cluster:
            args += [
                "--cluster-enabled", "yes",
                "--cluster-config-file", str(self.directory / "nodes.conf"),
                "--cluster-node-timeout", "2000",
            ]  # fmt: skip
        self.process = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.wait_ready()

    def cli(self, *args: str, timeout: float = 10.0) -> str:
        assert REDIS_CLI is not None
        out = subprocess.run(
            [REDIS_CLI, "-h", "127.0.0.1", "-p", str(self.port), *args],
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        return out.stdout.strip()

    def wait_ready(self, timeout: float = 10.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process is not None and self.process.poll() is not None:
                log = (self.directory / "redis.log").read_text(errors="replace")[-2000:]
                raise RuntimeError(f"redis-server on port {self.port} exited:\n{log}")
            with contextlib.suppress(subprocess.TimeoutExpired):
                if self.cli("PING", timeout=1.0) == "PONG":
                    return
            time.sleep(0.05)
        raise RuntimeError(f"redis-server on port {self.port} did not answer PING")

    def stop(self) -> None:
        """Stop abruptly (SIGKILL): what a crash or a pulled cable looks like to clients."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=10)
        self.process = None


@contextlib.contextmanager
def own_server(directory: Path, *, appendfsync: str = "everysec") -> Iterator[RedisServer]:
    """A started server of the caller's own (one it may kill), stopped at the end."""
    server = RedisServer(directory, appendfsync=appendfsync)
    server.start()
    try:
        yield server
    finally:
        server.stop()


@dataclass
class RedisClusterSet:
    """Three masters, no replicas, slots spread by ``redis-cli --cluster create``."""

    directory: Path
    servers: list[RedisServer] = field(default_factory=list)

    @property
    def nodes(self) -> list[str]:
        return [s.node for s in self.servers]

    def start(self) -> None:
        require_redis()
        assert REDIS_CLI is not None
        self.servers = [
            RedisServer(self.directory / f"node{n}", cluster=True) for n in range(3)
        ]
        for server in self.servers:
            server.start()
        subprocess.run(
            [REDIS_CLI, "--cluster", "create", *self.nodes, "--cluster-replicas", "0",
             "--cluster-yes"],
            capture_output=True,
            check=True,
            timeout=30,
        )  # fmt: skip
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if all("cluster_state:ok" in s.cli("CLUSTER", "INFO") for s in self.servers):
                return
            time.sleep(0.1)
        raise RuntimeError("the Redis cluster did not reach cluster_state:ok")

    def stop(self) -> None:
        for server in self.servers:
            server.stop()


class _Servers:
    """Lazily started, shared by every test of the process, stopped at exit."""

    def __init__(self) -> None:
        self._tmp: tempfile.TemporaryDirectory[str] | None = None
        self._single: RedisServer | None = None
        self._cluster: RedisClusterSet | None = None
        atexit.register(self.stop)

    @property
    def directory(self) -> Path:
        if self._tmp is None:
            self._tmp = tempfile.TemporaryDirectory(prefix="ics-redis-tests-")
        return Path(self._tmp.name)

    def single(self) -> RedisServer:
        if self._single is None:
            server = RedisServer(self.directory / "single")
            server.start()
            self._single = server
        return self._single

    def cluster(self) -> RedisClusterSet:
        if self._cluster is None:
            cluster = RedisClusterSet(self.directory / "cluster")
            try:
                cluster.start()
            except BaseException:
                cluster.stop()
                raise
            self._cluster = cluster
        return self._cluster

    def stop(self) -> None:
        if self._single is not None:
            self._single.stop()
            self._single = None
        if self._cluster is not None:
            self._cluster.stop()
            self._cluster = None
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None


SERVERS = _Servers()


def unique_prefix() -> str:
    return "t" + uuid.uuid4().hex[:12]


async def redis_store(tmp_path: Path) -> AccountStore:
    store = RedisAccountStore(SERVERS.single().url, prefix=unique_prefix())
    await store.open()
    return store


async def redis_cluster_store(tmp_path: Path) -> AccountStore:
    store = RedisAccountStore(
        None, cluster_nodes=SERVERS.cluster().nodes, prefix=unique_prefix()
    )
    await store.open()
    return store
