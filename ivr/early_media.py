"""Early media: a carrier's audio before the answer (183 with SDP), relayed one way to the caller.

A carrier announces "number not in service", or plays its own ringback, before
any answer. On a menu call the caller's leg is already answered, so the caller
hears that audio instead of our ringback tone. Nothing goes the other way: the
called party must not hear the caller before accepting the call. Only packets
from the address the carrier's SDP names are relayed (strays are dropped), and
nothing is recorded (the call is not connected).
"""

from __future__ import annotations

from ivr.bridge import RelayPath
from ivr.events import Address
from ivr.rtp_sockets import RtpEndpoint


class EarlyMediaRelay:
    """Relays what ``source`` (the carrier leg) receives to ``sink`` (the caller's leg)."""

    def __init__(self, source: RtpEndpoint, sink: RtpEndpoint) -> None:
        self.source = source
        self.sink = sink
        self.running = False
        #: Packets relayed to the caller, and packets dropped (strays, other payloads).
        self.relayed = 0
        self.dropped = 0
        self._path: RelayPath | None = None

    def start(self) -> None:
        """Take over the carrier leg's received RTP (its session hears nothing meanwhile)."""
        if self.running or self.source.closed or self.sink.closed:
            return
        s, d = self.source.session, self.sink.session
        self._path = RelayPath(s.codec, d.codec, s.telephone_event_pt, d.telephone_event_pt)
        self.source.divert(self._from_carrier, _ignore)
        self.running = True

    def stop(self) -> None:
        """Give the carrier leg back to its session (the answer came, or the call moved on)."""
        if not self.running:
            return
        self.running = False
        if not self.source.closed:
            self.source.undivert()

    def _from_carrier(self, data: bytes, addr: Address) -> None:
        remote = self.source.session.remote
        target = self.sink.session.remote
        path = self._path
        if remote is None or addr[0] != remote[0] or target is None or path is None:
            self.dropped += 1
            return
        out, _ = path.rewrite(data)
        if out is None:
            self.dropped += 1
            return
        self.relayed += 1
        self.sink.sendto(out, target)


def _ignore(data: bytes, addr: Address) -> None:
    """RTCP of the early media is not relayed: the caller's leg has its own reports."""
