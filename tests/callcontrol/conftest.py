"""Fixtures: a private copy of the demo configuration (own store, own ports)."""

from __future__ import annotations

import re
import shutil
import socket
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def free_port(kind: int = socket.SOCK_DGRAM) -> int:
    """A port free for both UDP and TCP on 127.0.0.1."""
    for _ in range(100):
        with socket.socket(socket.AF_INET, kind) as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        try:
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as t, \
                    socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as u:
                t.bind(("127.0.0.1", port))
                u.bind(("127.0.0.1", port))
        except OSError:
            continue
        return port
    raise RuntimeError("no free port")


def demo_copy(tmp_path: Path, *, sip_port: int, carrier_port: int, http_port: int,
              rtp: tuple[int, int], extra: str = "") -> Path:
    """The demo config copied under ``tmp_path`` with its ports replaced; returns its path."""
    root = tmp_path / "configs"
    for sub in ("facilities", "regulation", "seed", "tariffs"):
        shutil.copytree(REPO / "configs" / sub, root / sub)
    # Tests run at any hour: open the facilities' calling hours to the whole day.
    for facility in (root / "facilities").glob("*.toml"):
        body = facility.read_text()
        body = re.sub(r'start = "\d\d:\d\d"', 'start = "00:00"', body)
        body = re.sub(r'end = "\d\d:\d\d"', 'end = "23:59"', body)
        facility.write_text(body)
    text = (REPO / "configs" / "demo.toml").read_text()
    text = text.replace("127.0.0.1:5060", f"127.0.0.1:{sip_port}")
    text = text.replace("127.0.0.1:5090", f"127.0.0.1:{carrier_port}")
    text = text.replace("127.0.0.1:8080", f"127.0.0.1:{http_port}")
    text = re.sub(r"rtp_port_min = \d+", f"rtp_port_min = {rtp[0]}", text)
    text = re.sub(r"rtp_port_max = \d+", f"rtp_port_max = {rtp[1]}", text)
    (root / "demo.toml").write_text(text + extra)
    return root / "demo.toml"


@pytest.fixture
def demo_config(tmp_path: Path) -> Path:
    return demo_copy(tmp_path, sip_port=free_port(), carrier_port=free_port(),
                     http_port=free_port(socket.SOCK_STREAM), rtp=(41000, 41999))
