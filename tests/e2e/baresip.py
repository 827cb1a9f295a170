"""A real third-party SIP phone for the end-to-end tests: baresip (Debian package), scripted.

Each phone gets its own config folder: it listens on one loopback address (the
menu trunk's source), sends G.711 from a WAV file, keeps what it hears as a WAV
file (module ``sndfile``), and is driven over ``ctrl_tcp``: JSON commands in
netstrings (``dial``, ``sndcode`` to send one key as an RFC 4733 event,
``hangup``, ``quit``), with call events (``CALL_ESTABLISHED``, ``CALL_CLOSED``)
coming back on the same connection.
"""

from __future__ import annotations

import contextlib
import json
import shutil
import socket
import subprocess
import time
import wave
from pathlib import Path
from typing import Any

import numpy as np
from harness import free_port, free_range

BARESIP = shutil.which("baresip")
MODULES = Path("/usr/lib/baresip/modules")


class BaresipPhone:
    """One baresip process bound to ``local_ip``; close it with ``stop()``."""

    def __init__(self, workdir: Path, local_ip: str, *, user: str = "phone") -> None:
        if BARESIP is None:
            raise RuntimeError("baresip is not installed")
        self.dir = workdir
        self.dir.mkdir(parents=True, exist_ok=True)
        self.local_ip = local_ip
        self.user = user
        self.sip_port = free_port(local_ip)
        self.ctrl_port = free_port("127.0.0.1", tcp_too=True)
        first, last = free_range(40, local_ip)
        source = self.dir / "speech.wav"
        _write_tone(source, seconds=60, hz=300.0)
        (self.dir / "config").write_text("\n".join([
            "poll_method epoll",
            f"sip_listen {local_ip}:{self.sip_port}",
            "sip_transports udp",
            f"audio_source aufile,{source}",
            "audio_player aubridge,phone",
            "ausrc_srate 8000",
            "auplay_srate 8000",
            "ausrc_channels 1",
            "auplay_channels 1",
            f"rtp_ports {first}-{last}",
            f"module_path {MODULES}",
            "module g711.so",
            "module aufile.so",
            "module aubridge.so",
            "module sndfile.so",
            f"snd_path {self.dir}",
            "module ctrl_tcp.so",
            f"ctrl_tcp_listen 127.0.0.1:{self.ctrl_port}",
            "module_app account.so",
            "module_app menu.so",
            "",
        ]))
        (self.dir / "accounts").write_text(
            f"<sip:{user}@{local_ip}>;regint=0;audio_codecs=PCMU,PCMA\n")
        self.process: subprocess.Popen[bytes] | None = None
        self.sock: socket.socket | None = None
        self._buf = b""
        self.events: list[dict[str, Any]] = []
        self._token = 0

    def start(self, timeout: float = 10.0) -> BaresipPhone:
        self._log = (self.dir / "baresip.log").open("wb")
        self.process = subprocess.Popen([BARESIP, "-f", str(self.dir)], cwd=self.dir,
                                        stdin=subprocess.DEVNULL, stdout=self._log,
                                        stderr=subprocess.STDOUT)
        deadline = time.monotonic() + timeout
        while True:
            try:
                self.sock = socket.create_connection(("127.0.0.1", self.ctrl_port), 1)
                break
            except OSError:
                if time.monotonic() > deadline or self.process.poll() is not None:
                    raise RuntimeError(f"baresip did not start:\n{self.log()}") from None
                time.sleep(0.1)
        self.sock.settimeout(0.2)
        return self

    def log(self) -> str:
        path = self.dir / "baresip.log"
        return path.read_text(errors="replace")[-4000:] if path.exists() else ""

    def _send(self, command: str, params: str = "") -> dict[str, Any]:
        assert self.sock is not None
        self._token += 1
        token = str(self._token)
        body = json.dumps({"command": command, "params": params, "token": token}).encode()
        self.sock.sendall(str(len(body)).encode() + b":" + body + b",")
        reply = self._wait(lambda m: m.get("response") and m.get("token") == token, 5.0)
        if not reply.get("ok"):
            raise RuntimeError(f"baresip refused {command} {params}: {reply}")
        return reply

    def _read(self) -> list[dict[str, Any]]:
        assert self.sock is not None
        try:
            data = self.sock.recv(65536)
        except TimeoutError:
            data = b""
        self._buf += data
        out = []
        while b":" in self._buf:
            size, rest = self._buf.split(b":", 1)
            n = int(size)
            if len(rest) < n + 1:
                break
            out.append(json.loads(rest[:n]))
            self._buf = rest[n + 1:]
        return out

    def _wait(self, match: Any, timeout: float) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for message in self._read():
                if message.get("event"):
                    self.events.append(message)
                if match(message):
                    return message
        raise TimeoutError(f"baresip: no matching message in {timeout} s; "
                           f"events {[e.get('type') for e in self.events]}\n{self.log()}")

    def wait_event(self, kind: str, timeout: float = 30.0) -> dict[str, Any]:
        """The next call event of ``kind`` (or one already seen)."""
        for event in self.events:
            if event.get("type") == kind:
                return event
        return self._wait(lambda m: m.get("event") and m.get("type") == kind, timeout)

    def dial(self, uri: str) -> None:
        self._send("dial", uri)

    def press(self, keys: str, gap: float = 0.3) -> None:
        """Send each key as an RFC 4733 event (baresip's ``sndcode``)."""
        for key in keys:
            self._send("sndcode", key)
            time.sleep(gap)

    def hang_up(self) -> None:
        self._send("hangup")

    def heard(self) -> np.ndarray:
        """What the phone received, decoded (sndfile's ``*-dec.wav``), as float samples."""
        dumps = sorted(self.dir.glob("dump-*-dec.wav"))
        if not dumps:
            return np.zeros(0)
        with wave.open(str(dumps[-1]), "rb") as w:
            data = w.readframes(w.getnframes())
        return np.frombuffer(data, dtype="<i2").astype(np.float64)

    def stop(self) -> None:
        if self.process is None:
            return
        if self.process.poll() is None and self.sock is not None:
            with contextlib.suppress(OSError, RuntimeError, TimeoutError):
                self._send("quit")
        try:
            self.process.wait(5)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(5)
        if self.sock is not None:
            self.sock.close()
        self._log.close()


def _write_tone(path: Path, *, seconds: float, hz: float) -> None:
    t = np.arange(int(8000 * seconds)) / 8000.0
    samples = (3000 * np.sin(2 * np.pi * hz * t)).astype("<i2")
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(8000)
        w.writeframes(samples.tobytes())
