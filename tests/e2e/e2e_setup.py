"""Service set-up and peers of the end-to-end suite: `ics serve` on a test copy of the configs."""

from __future__ import annotations

import re
import sys
from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

sys.path.insert(0, str(Path(__file__).resolve().parent))

from harness import TRUNKS, Service, Sipp, SippResult, replace_array_tables, set_toml

#: The demo's menu trunk of tx-state-prison, and those the tests add to the other two.
MENU_TRUNKS = {"tx-state-prison": "127.0.0.21", "al-county-jail": "127.0.0.22",
               "ak-regional-jail": "127.0.0.23"}
#: On 300001's allowed list at ak-regional-jail (tests only), with no account to pay.
NO_PAYER_AK = "+12125550100"

#: Test accounts added to the demo seed (number -> (account id, deposit)).
E2E_ACCOUNTS = {
    # A balance that buys 72 s at the test tariff: over a minute, so the warning plays.
    "+15125550142": ("ac-e2e-warning", "0.07"),
    # A balance that buys exactly the 60-second minimum: the call ends when the money does.
    "+15125550143": ("ac-e2e-funds", "0.06"),
    # Blocked by its called party during a test.
    "+15125550144": ("ac-e2e-block", "5.00"),
    # Pays for the pyVoIP call.
    "+15125550145": ("ac-e2e-pyvoip", "5.00"),
    # Other tests' calls, each its own account so balances are checked exactly.
    "+15125550146": ("ac-e2e-rfc4733", "5.00"),
    "+15125550147": ("ac-e2e-rate", "5.00"),
    "+15125550148": ("ac-e2e-hangup", "5.00"),
}


def _closed_window(zone: str) -> str:
    """A one-hour calling window that does not contain the current local time."""
    now = datetime.now(UTC).astimezone(ZoneInfo(zone))
    start = (now + timedelta(hours=6)).replace(minute=0, second=0, microsecond=0).time()
    if start >= time(23, 0):
        start = time(10, 0) if now.hour not in (10, 11) else time(14, 0)
    end = time(start.hour + 1, 0)
    return f'{EVERY_DAY}\nstart = "{start:%H:%M}"\nend = "{end:%H:%M}"'


EVERY_DAY = 'days = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"]'
ALL_DAY = f'{EVERY_DAY}\nstart = "00:00"\nend = "23:59:59"'


def prepare_e2e_service(root: Path, **service_overrides: str) -> Service:
    """The demo configs, with test timings and the test accounts, on free ports.

    * tx-state-prison and ak-regional-jail take calls at any hour; al-county-jail
      is closed now (its one window is hours away), for the calling-hours row.
    * tx-state-prison rings for 5 s at most and bills in 6-second increments,
      so limits and funds run out within seconds.
    * the prompt waits 2 s for a key and plays the options twice in all.
    """
    overrides: dict[tuple[str | None, str], str] = {
        ("sip", "shutdown_grace_seconds"): "2",
        ("sip", "carrier_response_timeout_seconds"): "3",
        ("media", "menu_choice_timeout_seconds"): "2",
        ("media", "menu_attempts"): "2",
        ("media", "inactivity_timeout_seconds"): "150",
    }
    for dotted, literal in service_overrides.items():
        table, key = dotted.split("__")
        overrides[(table, key)] = literal
    svc = Service.prepare(root, service=overrides)

    def tx(text: str) -> str:
        text = set_toml(text, None, "ring_timeout_seconds", "5")
        return replace_array_tables(text, "calling_hours", [ALL_DAY])

    def with_menu_trunk(text: str, facility: str) -> str:
        """A menu trunk beside the header trunk, for the caller's menu tests."""
        text = text.replace("[trunk]\n", "[[trunk]]\n")
        return text + (f'\n[[trunk]]\nsources = ["{MENU_TRUNKS[facility]}/32"]\n'
                       'pin_entry = "menu"\n')

    def ak(text: str) -> str:
        text = with_menu_trunk(text, "ak-regional-jail")
        return replace_array_tables(text, "calling_hours", [ALL_DAY])

    def al(text: str) -> str:
        zone = re.search(r'^timezone\s*=\s*"([^"]+)"', text, re.MULTILINE)
        assert zone, "al-county-jail has no timezone"
        text = with_menu_trunk(text, "al-county-jail")
        return replace_array_tables(text, "calling_hours", [_closed_window(zone.group(1))])

    svc.edit("facilities/tx-state-prison.toml", tx)
    svc.edit("facilities/ak-regional-jail.toml", ak)
    svc.edit("facilities/al-county-jail.toml", al)
    svc.edit("tariffs/tx-state-prison.toml",
             lambda t: set_toml(t, None, "increment_seconds", "6"))

    def seed(text: str) -> str:
        # 300001 at ak-regional-jail may also call a number nobody pays for (no Single Call
        # there): the "nobody can pay" refusal.
        text = text.replace('allowed_numbers = ["+15125550100"]',
                            f'allowed_numbers = ["+15125550100", "{NO_PAYER_AK}"]')
        for number, (account_id, deposit) in E2E_ACCOUNTS.items():
            text += (f'\n[[accounts]]\nid = "{account_id}"\nproduct = "advance_connect"\n'
                     f'numbers = ["{number}"]\nholder = "End-to-end test"\n'
                     f'deposit = "{deposit}"\ndeposit_method = "card"\n')
        return text

    svc.edit("seed/demo.toml", seed)
    return svc


@dataclass
class Peers:
    """Places calls through the service with SIPp on both sides."""

    service: Service
    workdir: Path
    count: int = 0

    def carrier(self, scenario: str, *, keys: dict[str, str] | None = None,
                sets: dict[str, str | int] | None = None, timeout_s: float = 60,
                echo: bool = True, calls: int = 1) -> Sipp:
        self.count += 1
        sipp = Sipp(self.workdir, f"{self.count:02d}-{scenario}", scenario,
                    local_ip="127.0.0.1", calls=calls, timeout_s=timeout_s, keys=keys, sets=sets,
                    extra=["-rtp_echo"] if echo else [])
        # The carrier gateway address is fixed by the config.
        i = sipp.cmd.index("-p")
        sipp.cmd[i + 1] = str(self.service.ports.carrier)
        sipp.sip_port = self.service.ports.carrier
        return sipp.start().wait_listening()

    def facility(self, scenario: str, number: str, *, pin: str = "100001",
                 facility: str = "tx-state-prison", source: str | None = None,
                 keys: dict[str, str] | None = None, sets: dict[str, str | int] | None = None,
                 timeout_s: float = 60, calls: int = 1) -> Sipp:
        self.count += 1
        return Sipp(self.workdir, f"{self.count:02d}-{scenario}", scenario,
                    local_ip=source or TRUNKS[facility],
                    remote=f"127.0.0.1:{self.service.ports.sip}", calls=calls,
                    timeout_s=timeout_s, keys={"pin": pin, **(keys or {})}, sets=sets,
                    service=number)

    def call(self, facility_scenario: str, number: str, carrier_scenario: str | None = None,
             *, carrier_keys: dict[str, str] | None = None,
             carrier_sets: dict[str, str | int] | None = None, timeout_s: float = 60,
             **facility_kwargs: object) -> tuple[SippResult, SippResult | None]:
        """One call: the carrier side (if any) first, then the facility side; both results."""
        carrier = None
        if carrier_scenario is not None:
            carrier = self.carrier(carrier_scenario, keys=carrier_keys, sets=carrier_sets,
                                   timeout_s=timeout_s)
        try:
            fac = self.facility(facility_scenario, number, timeout_s=timeout_s,
                                **facility_kwargs).run()  # type: ignore[arg-type]
            car = carrier.wait() if carrier is not None else None
        finally:
            if carrier is not None:
                carrier.kill()
        return fac, car
