"""Trunks behind a SIP proxy: the facility's source as the proxy names it, trusted only
from the proxy; OPTIONS probes fail while the node drains."""

from __future__ import annotations

from callcontrol.sip import Request, Trunk, TrunkPolicy, parse_message
from callcontrol.sip.security import PROXY_TRUNK

from .conftest import invite_bytes

PROXY = ("127.0.0.50", 5060)
FACILITY = ("127.0.0.11", 5070)


def policy() -> TrunkPolicy:
    return TrunkPolicy([Trunk.from_config("tx-state-prison", ["127.0.0.11/32"])],
                       proxies=["127.0.0.50/32"])


def request(method: str = "INVITE", source: str | None = None, **kw: object) -> Request:
    extra = [f"X-ICS-Source: {source}"] if source is not None else []
    message = parse_message(invite_bytes(method=method, extra=extra, **kw))  # type: ignore[arg-type]
    assert isinstance(message, Request)
    return message


def test_a_call_through_the_proxy_is_screened_by_the_facility_address_it_names() -> None:
    p = policy()
    assert p.screen(request(source="127.0.0.11"), PROXY, 0.0).trunk_id == "tx-state-prison"
    bye = request("BYE", source="127.0.0.11", to_tag="tt1")
    assert p.screen(bye, PROXY, 0.0).trunk_id == "tx-state-prison"
    # A source the proxy names that is no trunk's: 403, as if it had come directly.
    stranger = p.screen(request(source="127.0.0.99"), PROXY, 0.0)
    assert stranger.response is not None and stranger.response.status == 403
    assert p.untrusted["127.0.0.99"] == 1


def test_a_forged_source_header_from_anyone_but_the_proxy_is_refused() -> None:
    p = policy()
    for source in (FACILITY, ("127.0.0.99", 5060)):
        verdict = p.screen(request(source="127.0.0.11"), source, 0.0)
        assert verdict.trunk_id is None
        assert verdict.response is not None and verdict.response.status == 403
    assert p.screen(request("ACK", source="127.0.0.11", to_tag="t"), FACILITY, 0.0).drop
    assert p.forged == {"127.0.0.11": 2, "127.0.0.99": 1}
    # Without the header the facility's own trunk still works directly.
    assert p.screen(request(), FACILITY, 0.0).trunk_id == "tx-state-prison"


def test_the_proxy_itself_may_probe_but_not_call() -> None:
    p = policy()
    ping = p.screen(request("OPTIONS"), PROXY, 0.0)
    assert ping.trunk_id == PROXY_TRUNK
    assert ping.response is not None and ping.response.status == 200
    call = p.screen(request(), PROXY, 0.0)
    assert call.trunk_id is None and call.response is not None and call.response.status == 403
    assert p.screen(request("CANCEL"), PROXY, 0.0).trunk_id == PROXY_TRUNK


def test_options_probes_fail_while_the_node_drains() -> None:
    p = policy()
    p.draining = True
    for source in (PROXY, FACILITY):
        verdict = p.screen(request("OPTIONS"), source, 0.0)
        assert verdict.response is not None and verdict.response.status == 503, source
        assert verdict.response.headers.get("retry-after") == "5"
    p.draining = False
    ok = p.screen(request("OPTIONS"), PROXY, 0.0)
    assert ok.response is not None and ok.response.status == 200
