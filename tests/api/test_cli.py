"""`ics api` as a user runs it: a subprocess on a loopback port, stopped with Ctrl-C."""

from __future__ import annotations

import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx

from tests.api.conftest import ADMIN, REPO, auth, free_port


def test_ics_api_serves_and_stops_cleanly(tmp_path: Path) -> None:
    configs = tmp_path / "configs"
    shutil.copytree(REPO / "configs", configs, ignore=shutil.ignore_patterns("var"))
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "ics.cli", "api", "--config", str(configs / "demo.toml"),
         "--listen", f"127.0.0.1:{port}"],
        cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(base + "/healthz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert proc.poll() is None, proc.communicate()
            assert time.monotonic() < deadline, "ics api did not come up"
            time.sleep(0.1)
        r = httpx.get(base + "/v1/quote", params={"facility": "tx-state-prison",
                                                  "number": "5125550100", "minutes": "15"})
        assert r.status_code == 200
        assert r.json()["quotes"][0]["rate_per_minute"] == "0.0600"
        # The demo data was seeded into the store beside the copied config.
        r = httpx.get(base + "/v1/accounts/ac-15125550100", headers=auth(ADMIN))
        assert r.json()["balance"] == "25.00"
        assert (configs / "var" / "ics.sqlite3").exists()
        assert httpx.get(base + "/readyz").json()["checks"] == {"store": True}
    finally:
        proc.send_signal(signal.SIGINT)
        _out, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    assert "Traceback" not in err


def test_ics_api_reports_a_bad_config(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text('[http]\nlisten = 8080\n')
    proc = subprocess.run([sys.executable, "-m", "ics.cli", "api", "--config", str(bad)],
                          capture_output=True, text=True, timeout=60, cwd=tmp_path)
    assert proc.returncode == 2
    assert "ics api:" in proc.stderr and "listen" in proc.stderr
    assert "Traceback" not in proc.stderr
