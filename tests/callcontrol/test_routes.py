"""Carrier routes without I/O: gateway order, failover rules, call limits, keep-alive."""

from __future__ import annotations

import random
from collections import Counter
from pathlib import Path

import pytest

from callcontrol.routes import (
    Gateway,
    GatewayDown,
    GatewayUp,
    KeepAlive,
    RouteSelector,
    Target,
    fails_over,
    weighted_order,
)
from settings.config import ConfigError, load_config, split_host_port


def selector(*gateways: Gateway, seed: int = 1) -> RouteSelector:
    routes = RouteSelector(gateways, rng=random.Random(seed))
    for n, gw in enumerate(gateways):
        routes.set_targets(gw.name, [Target(f"192.0.2.{n + 1}", 5060)])
    return routes


def names(routes: RouteSelector) -> list[str]:
    plan = routes.plan()
    out = []
    while (picked := plan.next()) is not None:
        out.append(picked[0].name)
    plan.finish()
    return out


def test_lower_priority_first_then_the_rest() -> None:
    routes = selector(Gateway("backup", "b", priority=20), Gateway("main", "a", priority=10),
                      Gateway("last", "c", priority=30))
    assert names(routes) == ["main", "backup", "last"]


def test_weights_share_one_priority() -> None:
    routes = selector(Gateway("big", "a", weight=3), Gateway("small", "b", weight=1), seed=7)
    first = Counter(names(routes)[0] for _ in range(4000))
    assert set(first) == {"big", "small"}
    assert 0.70 < first["big"] / 4000 < 0.80  # 3:1


def test_weight_zero_is_tried_after_the_weighted_ones() -> None:
    rng = random.Random(3)
    firsts = Counter(weighted_order([(0, "zero"), (5, "five")], rng)[0] for _ in range(500))
    # RFC 2782: the weight-0 entry wins only when the draw is 0 (1 in 6 here).
    assert 380 < firsts["five"] < 450 and firsts["zero"] > 0


def test_only_503_408_move_a_call_on() -> None:
    assert fails_over(503) and fails_over(408)
    for status in (400, 403, 404, 480, 486, 487, 500, 502, 600, 603, 604, 200):
        assert not fails_over(status), status


def test_a_full_gateway_is_skipped_and_its_slot_given_back() -> None:
    routes = selector(Gateway("main", "a", priority=1, max_calls=1), Gateway("backup", "b"))
    one = routes.plan()
    assert one.next()[0].name == "main"
    assert routes.calls("main") == 1
    two = routes.plan()
    assert two.next()[0].name == "backup"  # main is full
    assert two.remaining == 0
    one.finish()
    assert routes.calls("main") == 0
    assert routes.plan().next()[0].name == "main"


def test_moving_on_releases_the_previous_gateway() -> None:
    routes = selector(Gateway("a", "a", priority=1), Gateway("b", "b", priority=2))
    plan = routes.plan()
    plan.next()
    assert plan.remaining == 1
    assert plan.next()[0].name == "b"
    assert (routes.calls("a"), routes.calls("b")) == (0, 1)
    assert plan.next() is None
    assert routes.calls("b") == 0
    assert plan.tried == ["a", "b"]


def test_all_full_means_nothing_usable() -> None:
    routes = selector(Gateway("a", "a", max_calls=1))
    plan = routes.plan()
    plan.next()
    assert not routes.any_usable
    assert routes.plan().next() is None
    plan.finish()
    assert routes.any_usable


def test_unresolved_gateway_is_not_used() -> None:
    routes = selector(Gateway("a", "a", priority=1), Gateway("b", "b", priority=2))
    routes.set_targets("a", [])
    assert names(routes) == ["b"]


def test_keepalive_marks_down_after_n_failures_and_up_on_an_answer() -> None:
    routes = selector(Gateway("a", "a"), Gateway("b", "b"))
    ka = KeepAlive(routes, interval=10, timeout=2, failures=2, now=0.0)
    assert ka.get_timer() == 0.0
    probes = ka.handle_timer(0.0)
    assert [name for name, _ in probes] == ["a", "b"]
    assert probes[0][1] == Target("192.0.2.1", 5060)
    ka.answered("b", 200, 0.1)
    assert ka.get_timer() == 2.0  # a's probe expires
    assert ka.handle_timer(2.0) == []
    assert routes.is_up("a")  # one failure of two
    assert ka.get_timer() == 10.0
    ka.handle_timer(10.0)
    ka.answered("b", 404, 10.1)  # any answer but 503 is "in service"
    ka.handle_timer(12.0)
    assert not routes.is_up("a") and routes.is_up("b")
    assert ka.take_changes() == [GatewayDown("a", 12.0)]
    assert names(routes) == ["b"]
    ka.handle_timer(20.0)
    ka.answered("a", 200, 20.5)
    assert routes.is_up("a")
    assert ka.take_changes() == [GatewayUp("a", 20.5)]


def test_keepalive_503_and_transaction_failures_count() -> None:
    routes = selector(Gateway("a", "a"))
    ka = KeepAlive(routes, interval=5, timeout=1, failures=2, now=0.0)
    ka.handle_timer(0.0)
    ka.answered("a", 503, 0.2)
    ka.handle_timer(5.0)
    ka.failed("a", 5.1)
    assert not routes.is_up("a")
    assert not routes.any_up
    ka.answered("a", 200, 5.2)  # late: that probe was already counted
    assert not routes.is_up("a")


# -- configuration ---------------------------------------------------------------------

CONFIGS = Path(__file__).resolve().parents[2] / "configs"


def service_file(tmp_path: Path, body: str) -> Path:
    path = tmp_path / "demo.toml"
    text = (CONFIGS / "demo.toml").read_text()
    text = text.replace('facilities = "facilities/*.toml"',
                        f'facilities = "{CONFIGS}/facilities/*.toml"')
    text = text.replace('regulation = "regulation/*.toml"',
                        f'regulation = "{CONFIGS}/regulation/*.toml"')
    path.write_text(text + body)
    return path


def test_gateways_load(tmp_path: Path) -> None:
    config = load_config(service_file(tmp_path, """
[carrier]
keepalive_interval_seconds = 10
dns_servers = ["127.0.0.1:5353"]

[[carrier.gateways]]
name = "main"
address = "192.0.2.10:5070"
priority = 1
weight = 3
max_calls = 20

[[carrier.gateways]]
name = "srv"
address = "sip.carrier.example"
transport = "tcp"
"""))
    main, srv = config.carrier.gateways
    assert (main.host, main.port, main.transport, main.priority, main.weight, main.max_calls) \
        == ("192.0.2.10", 5070, "udp", 1, 3, 20)
    assert (srv.host, srv.port, srv.transport, srv.priority, srv.weight) == (
        "sip.carrier.example", None, "tcp", 10, 1)


def test_without_gateways_the_single_carrier_is_the_route() -> None:
    from callcontrol.app import ControllerSettings

    settings = ControllerSettings.from_config(load_config(CONFIGS / "demo.toml"))
    assert settings.gateways == ()
    assert settings.routes == (Gateway("carrier", "127.0.0.1", 5090),)


@pytest.mark.parametrize(("body", "message"), [
    ('name = "a"\naddress = "10.0.0.1"\n[[carrier.gateways]]\nname = "a"\naddress = "10.0.0.2"',
     "carrier: Value error, gateways: the name 'a' is used twice"),
    ('name = "a"\naddress = "10.0.0.1:5060"\n[[carrier.gateways]]\nname = "b"\n'
     'address = "10.0.0.1:5060"', "'b' has the address of 'a'"),
    ('name = "a"\naddress = "10.0.0.1:99999"', "port must be 1-65535"),
    ('name = "a"\naddress = "bad host!"', "is not a host name or IP address"),
    ('name = "a"\naddress = "10.0.0.1"\ntransport = "sctp"', "transport"),
    ('name = "a"\naddress = "10.0.0.1"\nweight = 0', "every weight is 0"),
    ('name = "a"\naddress = "10.0.0.1"\nmax_calls = 0', "max_calls"),
])
def test_bad_gateways_are_named(tmp_path: Path, body: str, message: str) -> None:
    with pytest.raises(ConfigError) as exc:
        load_config(service_file(tmp_path, "\n[[carrier.gateways]]\n" + body + "\n"))
    assert "carrier" in str(exc.value)
    assert message.replace("carrier: Value error, ", "") in str(exc.value)


def test_host_port_forms() -> None:
    assert split_host_port("gw.example") == ("gw.example", None)
    assert split_host_port("gw.example:5070") == ("gw.example", 5070)
    assert split_host_port("[2001:db8::1]:5060") == ("2001:db8::1", 5060)
    assert split_host_port("2001:db8::1") == ("2001:db8::1", None)
    with pytest.raises(ValueError, match="not an IPv6 address"):
        split_host_port("[nonsense]:5060")
