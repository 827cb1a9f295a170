"""The metrics registry: names, labels, exact money units, exposition."""

from __future__ import annotations

import pytest
from prometheus_client.parser import text_string_to_metric_families

from api.metrics import Metrics


def samples(metrics: Metrics) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    out = {}
    for family in text_string_to_metric_families(metrics.exposition().decode()):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def test_each_app_has_its_own_registry() -> None:
    a, b = Metrics(), Metrics()
    a.ivr_key_pressed("1")
    assert samples(a)[("ics_ivr_key_presses_total", (("key", "1"),))] == 1
    assert ("ics_ivr_key_presses_total", (("key", "1"),)) not in samples(b)


def test_call_lifecycle_moves_gauge_and_counts_outcome() -> None:
    m = Metrics()
    m.call_started("tx-state-prison")
    m.call_started("tx-state-prison")
    m.call_ended("tx-state-prison", "completed")
    s = samples(m)
    assert s[("ics_active_calls", (("facility", "tx-state-prison"),))] == 1
    key = ("ics_calls_total", (("facility", "tx-state-prison"), ("outcome", "completed")))
    assert s[key] == 1


def test_sip_messages_split_requests_and_responses() -> None:
    m = Metrics()
    m.sip_message("in", "INVITE")
    m.sip_message("out", "INVITE", 200)
    s = samples(m)
    assert s[("ics_sip_messages_total",
              (("direction", "in"), ("method", "INVITE"), ("status", "")))] == 1
    assert s[("ics_sip_messages_total",
              (("direction", "out"), ("method", "INVITE"), ("status", "200")))] == 1
    with pytest.raises(ValueError, match="direction"):
        m.sip_message("sideways", "BYE")


def test_money_is_counted_in_exact_integer_units() -> None:
    m = Metrics()
    for _ in range(3):
        m.reservation_made("tx-state-prison", "advance_connect", 1)  # 0.0001 dollar
    m.settlement_made("tx-state-prison", "advance_connect", 90_00)
    s = samples(m)
    labels = (("facility", "tx-state-prison"), ("product", "advance_connect"))
    assert s[("ics_reserved_units_total", labels)] == 3
    assert s[("ics_reservations_total", labels)] == 3
    assert s[("ics_settled_units_total", labels)] == 9000
    with pytest.raises(TypeError):
        m.settlement_made("tx-state-prison", "debit", 0.9)  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        m.reservation_made("tx-state-prison", "debit", -1)


def test_authorization_histogram_rtp_and_store_errors() -> None:
    m = Metrics()
    m.observe_authorization(0.004)
    m.rtp_packet("in", 50)
    m.rtp_lost(2)
    m.rtp_lost(0)
    m.store_error("sqlite", "reserve")
    s = samples(m)
    assert s[("ics_authorization_seconds_bucket", (("le", "0.005"),))] == 1
    assert s[("ics_authorization_seconds_bucket", (("le", "0.0025"),))] == 0
    assert s[("ics_rtp_packets_total", (("direction", "in"),))] == 50
    assert s[("ics_rtp_packets_lost_total", ())] == 2
    assert s[("ics_store_errors_total", (("operation", "reserve"), ("store", "sqlite")))] == 1


def test_pin_failures_and_station_locks_are_counted_per_facility() -> None:
    m = Metrics()
    for _ in range(5):
        m.pin_failed("tx-state-prison")
    m.station_locked("tx-state-prison")
    m.pin_failed("al-county-jail")
    s = samples(m)
    tx = (("facility", "tx-state-prison"),)
    assert s[("ics_pin_failures_total", tx)] == 5
    assert s[("ics_station_locks_total", tx)] == 1
    assert s[("ics_pin_failures_total", (("facility", "al-county-jail"),))] == 1
    assert ("ics_station_locks_total", (("facility", "al-county-jail"),)) not in s
