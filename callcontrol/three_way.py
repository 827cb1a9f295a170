"""Three-way call detection as the controller configures it: each facility's policy and
detector sensitivity, and the CDR's form of a decision."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ivr.threeway import Sensitivity, ThreeWaySuspected

from .flow import THREE_WAY_POLICIES


@dataclass(frozen=True, slots=True)
class ThreeWaySettings:
    """A facility's ``three_way_policy`` and ``[three_way_sensitivity]``."""

    policy: str = "flag"
    sensitivity: Sensitivity = field(default_factory=Sensitivity)

    def __post_init__(self) -> None:
        if self.policy not in THREE_WAY_POLICIES:
            raise ValueError(f"three_way_policy must be one of {', '.join(THREE_WAY_POLICIES)},"
                             f" not {self.policy!r}")


def three_way_settings(config: Any) -> dict[str, ThreeWaySettings]:
    """Every facility's three-way settings from the service config."""
    out = {}
    for fid, facility in config.facilities.items():
        try:
            sensitivity = Sensitivity(**facility.three_way_sensitivity.settings())
        except ValueError as exc:
            raise ValueError(f"facility {fid}: three_way_sensitivity: {exc}") from exc
        out[fid] = ThreeWaySettings(facility.three_way_policy, sensitivity)
    return out


def evidence(suspected: ThreeWaySuspected) -> tuple[tuple[str, float], ...]:
    """What made the call look three-way, as the CDR keeps it: (signal, seconds)."""
    return tuple((s.signal.value, round(s.at, 2)) for s in suspected.signals)
