"""A phone on a menu trunk, played by SIPp with the scenario of `loadtests/menu_phone.py`."""

from __future__ import annotations

import sys
from pathlib import Path

from e2e_setup import MENU_TRUNKS
from harness import REPO, Service, Sipp

sys.path.insert(0, str(REPO / "loadtests"))

from menu_phone import MenuCall, write


def menu_phone(service: Service, workdir: Path, name: str, call: MenuCall, *,
               station: str, facility: str = "tx-state-prison", rtp_port: int | None = None,
               timeout_s: float = 60) -> Sipp:
    """SIPp as the phone of ``station`` placing ``call`` (not started).

    With ``rtp_port`` its SDP names that port (an `audio.RtpSink` hears what the
    controller plays to the caller).
    """
    if rtp_port is not None and not call.rtp_key:
        raise ValueError("a call heard by a sink must be written with rtp_key=True")
    keys = {"station": station}
    if rtp_port is not None:
        keys["rtp_port"] = str(rtp_port)
    sipp = Sipp(workdir, name, "facility_call", local_ip=MENU_TRUNKS[facility],
                remote=f"127.0.0.1:{service.ports.sip}", timeout_s=timeout_s, keys=keys,
                service="menu")
    scenario = write(call, sipp.dir / "phone.xml")
    sipp.cmd[sipp.cmd.index("-sf") + 1] = str(scenario)
    return sipp
