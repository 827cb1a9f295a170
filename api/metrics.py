"""Every Prometheus metric of the product, in one registry per process.

The call controller, the stores and the HTTP layer all count through one
``Metrics`` object so that ``GET /metrics`` shows the whole node. Names:

==========================================  =========  ===============================
name                                        type       labels
==========================================  =========  ===============================
``ics_calls_total``                         counter    facility, outcome
``ics_active_calls``                        gauge      facility
``ics_ivr_key_presses_total``               counter    key
``ics_authorization_seconds``               histogram  (none)
``ics_sip_messages_total``                  counter    direction, method, status
``ics_rtp_packets_total``                   counter    direction
``ics_rtp_packets_lost_total``              counter    (none)
``ics_reservations_total``                  counter    facility, product
``ics_reserved_units_total``                counter    facility, product
``ics_settlements_total``                   counter    facility, product
``ics_settled_units_total``                 counter    facility, product
``ics_store_errors_total``                  counter    store, operation
``ics_three_way_calls_total``              counter    facility, action
``ics_http_requests_total``                 counter    method, route, status
``ics_pin_failures_total``                  counter    facility
``ics_station_locks_total``                 counter    facility
==========================================  =========  ===============================

Money is counted in integer units of 1/10,000 dollar (``*_units_total``), not
in float dollars: Prometheus stores float64, which holds every integer up to
2**53 exactly, so sums of units stay exact where sums of dollars would drift.
Divide by 10,000 in a dashboard to show dollars.

``direction`` is ``in`` or ``out``; a SIP request has ``status=""`` and a SIP
response has its status code and the method of its CSeq.
"""

from __future__ import annotations

from typing import Final

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

#: Authorization (screen + find payer + reserve) normally takes milliseconds;
#: the buckets reach 5 s so that a slow store still shows up in the right bucket.
AUTHORIZATION_BUCKETS: Final = (
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
)

CONTENT_TYPE: Final = CONTENT_TYPE_LATEST

_DIRECTIONS: Final = frozenset({"in", "out"})


class Metrics:
    """The process's metrics; one instance per node (or per test app)."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        r = self.registry
        self.calls = Counter(
            "ics_calls", "Calls that ended, by facility and outcome "
            "(completed, declined, blocked, forbidden, no_funds, no_answer, busy, failed...)",
            ["facility", "outcome"], registry=r,
        )
        self.active_calls = Gauge(
            "ics_active_calls", "Calls in progress (from INVITE to final settlement)",
            ["facility"], registry=r,
        )
        self.ivr_key_presses = Counter(
            "ics_ivr_key_presses", "DTMF keys pressed by called parties at the IVR prompt",
            ["key"], registry=r,
        )
        self.authorization_seconds = Histogram(
            "ics_authorization_seconds",
            "Time to screen a call, find its payer and reserve funds",
            buckets=AUTHORIZATION_BUCKETS, registry=r,
        )
        self.three_way_calls = Counter(
            "ics_three_way_calls", "Calls that sounded like a three-way or forwarded call,"
            " by facility and the policy applied (flag, warn, disconnect)",
            ["facility", "action"], registry=r,
        )
        self.sip_messages = Counter(
            "ics_sip_messages", "SIP messages received (in) and sent (out)",
            ["direction", "method", "status"], registry=r,
        )
        self.rtp_packets = Counter(
            "ics_rtp_packets", "RTP packets received (in) and sent (out)",
            ["direction"], registry=r,
        )
        self.rtp_packets_lost = Counter(
            "ics_rtp_packets_lost", "RTP packets lost, from sequence number gaps", registry=r,
        )
        self.reservations = Counter(
            "ics_reservations", "Funds reservations made for calls",
            ["facility", "product"], registry=r,
        )
        self.reserved_units = Counter(
            "ics_reserved_units", "Amount reserved, in units of 1/10,000 dollar",
            ["facility", "product"], registry=r,
        )
        self.settlements = Counter(
            "ics_settlements", "Reservations settled at the end of a call",
            ["facility", "product"], registry=r,
        )
        self.settled_units = Counter(
            "ics_settled_units", "Amount charged at settlement, in units of 1/10,000 dollar",
            ["facility", "product"], registry=r,
        )
        self.store_errors = Counter(
            "ics_store_errors", "Errors raised by the account store",
            ["store", "operation"], registry=r,
        )
        self.http_requests = Counter(
            "ics_http_requests", "HTTP requests answered, by route template and status",
            ["method", "route", "status"], registry=r,
        )
        self.pin_failures = Counter(
            "ics_pin_failures", "Wrong PINs entered in the caller's voice menu",
            ["facility"], registry=r,
        )
        self.gateway_up = Gauge(
            "ics_carrier_gateway_up", "1 while a carrier gateway is in service (keep-alive)",
            ["gateway"], registry=r,
        )
        self.gateway_active_calls = Gauge(
            "ics_carrier_gateway_calls", "Calls a carrier gateway carries now",
            ["gateway"], registry=r,
        )
        self.carrier_failovers = Counter(
            "ics_carrier_failovers", "Calls moved on to the next gateway, by the gateway left",
            ["gateway"], registry=r,
        )
        self.station_locks = Counter(
            "ics_station_locks", "Stations whose PIN entry was locked after repeated wrong PINs",
            ["facility"], registry=r,
        )

    # The controller calls these; keeping label names here means a typo in a
    # label cannot create a second, silently empty series elsewhere.

    def call_started(self, facility: str) -> None:
        self.active_calls.labels(facility).inc()

    def call_ended(self, facility: str, outcome: str) -> None:
        self.active_calls.labels(facility).dec()
        self.calls.labels(facility, outcome).inc()

    def ivr_key_pressed(self, key: str) -> None:
        self.ivr_key_presses.labels(key).inc()

    def three_way_call(self, facility: str, action: str) -> None:
        self.three_way_calls.labels(facility, action).inc()

    def observe_authorization(self, seconds: float) -> None:
        self.authorization_seconds.observe(seconds)

    def sip_message(self, direction: str, method: str, status: int | None = None) -> None:
        if direction not in _DIRECTIONS:
            raise ValueError(f"direction must be 'in' or 'out', not {direction!r}")
        self.sip_messages.labels(direction, method, "" if status is None else str(status)).inc()

    def rtp_packet(self, direction: str, count: int = 1) -> None:
        if direction not in _DIRECTIONS:
            raise ValueError(f"direction must be 'in' or 'out', not {direction!r}")
        self.rtp_packets.labels(direction).inc(count)

    def rtp_lost(self, count: int) -> None:
        if count > 0:
            self.rtp_packets_lost.inc(count)

    def reservation_made(self, facility: str, product: str, units: int) -> None:
        self.reservations.labels(facility, product).inc()
        self.reserved_units.labels(facility, product).inc(_units(units))

    def settlement_made(self, facility: str, product: str, units: int) -> None:
        self.settlements.labels(facility, product).inc()
        self.settled_units.labels(facility, product).inc(_units(units))

    def store_error(self, store: str, operation: str) -> None:
        self.store_errors.labels(store, operation).inc()

    def http_request(self, method: str, route: str, status: int) -> None:
        self.http_requests.labels(method, route, str(status)).inc()

    def pin_failed(self, facility: str) -> None:
        self.pin_failures.labels(facility).inc()

    def station_locked(self, facility: str) -> None:
        self.station_locks.labels(facility).inc()

    def gateway_state(self, gateway: str, up: bool) -> None:
        self.gateway_up.labels(gateway).set(1 if up else 0)

    def gateway_calls(self, gateway: str, calls: int) -> None:
        self.gateway_active_calls.labels(gateway).set(calls)

    def carrier_failover(self, gateway: str) -> None:
        self.carrier_failovers.labels(gateway).inc()

    def exposition(self) -> bytes:
        """The text format served at ``/metrics``."""
        return generate_latest(self.registry)


def _units(units: int) -> int:
    if isinstance(units, bool) or not isinstance(units, int):
        raise TypeError(f"money is counted in integer units, not {type(units).__name__}")
    if units < 0:
        raise ValueError(f"a reserved or settled amount cannot be negative: {units}")
    return units
