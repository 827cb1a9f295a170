"""`ics serve` nodes on a shared Redis, with SIPp peers: helpers for the Redis end-to-end tests."""

from __future__ import annotations

import sys
from decimal import Decimal
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "e2e"))
from harness import (
    SIPP,
    TRUNKS,
    Service,
    ServicePorts,
    Sipp,
    replace_array_tables,
    set_toml,
)
from redis_servers import SERVERS

__all__ = [
    "SIPP", "TRUNKS", "Service", "Sipp", "carrier", "facility", "prepare_node", "shared_store",
]


def shared_store(redis: str) -> tuple[str, list[str], dict[str, str]]:
    """Where the nodes keep their accounts: ``redis`` is "standalone" or "cluster".

    Answers the URL ('' on the cluster), the cluster's nodes (none on one Redis) and the
    service-file settings that say so (``prepare_node``'s keywords)."""
    if redis == "cluster":
        # With cluster nodes in the config the URL is not used.
        cluster = SERVERS.cluster().nodes
        return "", cluster, {"store__cluster_nodes": "[" + ", ".join(
            f'"{n}"' for n in cluster) + "]"}
    return SERVERS.single().url, [], {}

ALL_DAY = (
    'days = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"]\nstart = "00:00"\nend = "23:59:59"'
)


def prepare_node(
    root: Path, url: str, prefix: str, accounts: dict[str, tuple[str, Decimal]],
    **service: str,
) -> Service:
    """A node on the demo configs with its store in Redis; ``accounts``: number -> (id, deposit)."""
    svc = Service.prepare(
        root,
        ports=ServicePorts.pick(rtp_size=60),
        service={
            ("store", "kind"): '"redis"',
            ("store", "url"): f'"{url}"',
            ("store", "prefix"): f'"{prefix}"',
            ("sip", "shutdown_grace_seconds"): "2",
            ("sip", "carrier_response_timeout_seconds"): "3",
            ("media", "menu_choice_timeout_seconds"): "2",
            ("media", "menu_attempts"): "2",
            **{tuple(k.split("__")): v for k, v in service.items()},  # type: ignore[dict-item]
        },
    )

    def tx(text: str) -> str:
        text = set_toml(text, None, "ring_timeout_seconds", "5")
        # Nobody else pays: a call the account cannot hold for is refused (402).
        text = set_toml(text, None, "single_call_allowed", "false")
        return replace_array_tables(text, "calling_hours", [ALL_DAY])

    svc.edit("facilities/tx-state-prison.toml", tx)

    def seed(text: str) -> str:
        for number, (account_id, deposit) in accounts.items():
            text += (
                f'\n[[accounts]]\nid = "{account_id}"\nproduct = "advance_connect"\n'
                f'numbers = ["{number}"]\nholder = "Redis tests"\n'
                f'deposit = "{deposit}"\ndeposit_method = "card"\n'
            )
        return text

    svc.edit("seed/demo.toml", seed)
    return svc


def carrier(svc: Service, workdir: Path, name: str, calls: int) -> Sipp:
    """The called party: answers, accepts with 1 by SIP INFO, waits for the BYE."""
    sipp = Sipp(workdir, name, "carrier_info", local_ip="127.0.0.1", calls=calls,
                timeout_s=40, keys={"digit": "1"}, sets={"ring_ms": 200, "dtmf_ms": 800},
                extra=["-rtp_echo"])  # fmt: skip
    i = sipp.cmd.index("-p")
    sipp.cmd[i + 1] = str(svc.ports.carrier)
    sipp.sip_port = svc.ports.carrier
    return sipp.start().wait_listening()


def facility(svc: Service, workdir: Path, name: str, number: str, calls: int,
             scenario: str = "facility_call", talk_ms: int = 3000) -> Sipp:
    # A refused call leaves SIPp waiting on its scenario; the connected calls are
    # over in about five seconds, so the run is cut at 15.
    return Sipp(workdir, name, scenario, local_ip=TRUNKS["tx-state-prison"],
                remote=f"127.0.0.1:{svc.ports.sip}", calls=calls, timeout_s=15,
                keys={"pin": "100001"},
                sets={"talk_ms": talk_ms} if scenario != "facility_refused" else None,
                service=number,
                extra=["-l", str(calls)])  # fmt: skip
