"""A real third-party carrier-side proxy: Kamailio (Debian package) in front of a SIPp
called party, as the one carrier gateway of a real `ics serve`.

Kamailio record-routes the dialog, so the ACK, the called party's INFO and the
BYE all cross it: the controller must follow the route set it learned. The
proxy's configuration is written by this test (it is not a deployable file).
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "e2e"))

from checks import assert_cdr, connected_call_id
from e2e_setup import Peers, prepare_e2e_service
from harness import _RESERVED, SCENARIOS, Sipp, free_port, running

pytestmark = pytest.mark.e2e

KAMAILIO = shutil.which("kamailio") or "/usr/sbin/kamailio"
MODULES = Path("/usr/lib/x86_64-linux-gnu/kamailio/modules")

#: A stateful proxy that record-routes every dialog to one called party.
CONFIG = """#!KAMAILIO
debug=2
log_stderror=yes
fork=yes
children=1
disable_tcp=yes
auto_aliases=no
listen=udp:127.0.0.1:{port}
mpath="{modules}"
loadmodule "tm.so"
loadmodule "sl.so"
loadmodule "rr.so"
loadmodule "pv.so"
loadmodule "maxfwd.so"
loadmodule "siputils.so"
loadmodule "textops.so"
loadmodule "xlog.so"

request_route {{
    if (!mf_process_maxfwd_header("10")) {{
        sl_send_reply("483", "Too Many Hops");
        exit;
    }}
    if (has_totag()) {{
        if (loose_route()) {{
            t_relay();
            exit;
        }}
        if (is_method("ACK")) {{
            if (t_check_trans()) {{
                t_relay();
            }}
            exit;
        }}
        # The SIPp called party sends its INFO here without a Route: by its URI.
        t_relay();
        exit;
    }}
    if (is_method("CANCEL")) {{
        if (t_check_trans()) {{
            t_relay();
        }}
        exit;
    }}
    t_check_trans();
    record_route();
    $du = "sip:127.0.0.1:{callee}";
    xlog("L_INFO", "forwarding $rm $ru to $du\\n");
    t_relay();
}}
"""


def test_a_call_through_kamailio_as_the_carrier_gateway(tmp_path: Path) -> None:
    if not Path(KAMAILIO).exists():
        pytest.fail("kamailio is not installed (scripts/test.sh installs it)")
    proxy_port = free_port()
    _RESERVED.add(proxy_port)
    svc = prepare_e2e_service(tmp_path / "svc")
    svc.edit("demo.toml", lambda text: text + (
        f'\n[[carrier.gateways]]\nname = "kamailio"\naddress = "127.0.0.1:{proxy_port}"\n'))
    callee = Sipp(tmp_path, "callee", "carrier_info", local_ip="127.0.0.1", timeout_s=30,
                  keys={"digit": "1"}, sets={"ring_ms": 200, "dtmf_ms": 500},
                  extra=["-rtp_echo"])
    # The called party of carrier_info.xml, echoing the proxy's Record-Route as a UAS must.
    scenario = (SCENARIOS / "carrier_info.xml").read_text().replace(
        "      [last_CSeq:]\n      Contact:", "      [last_CSeq:]\n      [last_Record-Route:]\n"
        "      Contact:")
    assert scenario.count("[last_Record-Route:]") == 2  # the 180 and the 200
    (tmp_path / "callee.xml").write_text(scenario)
    callee.cmd[callee.cmd.index("-sf") + 1] = str(tmp_path / "callee.xml")
    cfg = tmp_path / "kamailio.cfg"
    cfg.write_text(CONFIG.format(port=proxy_port, callee=callee.sip_port, modules=MODULES))
    log = (tmp_path / "kamailio.log").open("wb")
    proxy = subprocess.Popen([KAMAILIO, "-f", str(cfg), "-DD", "-E", "-w", str(tmp_path),
                              "-Y", str(tmp_path)], stdout=log, stderr=subprocess.STDOUT,
                             stdin=subprocess.DEVNULL)
    try:
        time.sleep(0.5)
        assert proxy.poll() is None, (tmp_path / "kamailio.log").read_text()
        callee.start().wait_listening()
        with running(svc):
            fac = Peers(svc, tmp_path).facility("facility_call", "+15125550100",
                                                sets={"talk_ms": 1000}, timeout_s=30).run()
            car = callee.wait()
    finally:
        callee.kill()
        proxy.terminate()
        proxy.wait(10)
        log.close()
    call_id = connected_call_id(fac)
    assert car.returncode == 0, car.describe() + (tmp_path / "kamailio.log").read_text()
    proxied = (tmp_path / "kamailio.log").read_text()
    assert "forwarding INVITE sip:+15125550100@127.0.0.1" in proxied
    # The called party saw the proxy's Record-Route, and the controller's BYE came
    # through it (two Vias: ours and Kamailio's).
    messages = car.messages
    assert f"Record-Route: <sip:127.0.0.1:{proxy_port};lr" in messages
    bye = messages[messages.index("BYE sip:"):]
    assert bye.split("\n\n", 1)[0].count("Via:") == 2
    record = svc.cdr(call_id)
    assert_cdr(record, outcome="completed", number="+15125550100", side="caller")
    assert record.gateway == "kamailio"
