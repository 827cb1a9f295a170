"""The three-way calls counter: by facility and the action the policy took."""

from __future__ import annotations

from test_metrics import samples

from api.metrics import Metrics


def test_three_way_calls_are_counted_by_facility_and_action() -> None:
    m = Metrics()
    m.three_way_call("tx-state-prison", "flag")
    m.three_way_call("tx-state-prison", "flag")
    m.three_way_call("al-county-jail", "disconnect")
    s = samples(m)
    flag = ("ics_three_way_calls_total", (("action", "flag"), ("facility", "tx-state-prison")))
    cut = ("ics_three_way_calls_total", (("action", "disconnect"),
                                         ("facility", "al-county-jail")))
    assert (s[flag], s[cut]) == (2, 1)
