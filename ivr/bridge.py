"""Relays media between two bridged legs, transcoding only where their codecs differ.

``RelayPath`` is the sans-IO rewrite of one direction; ``Bridge`` is the asyncio
adapter that hooks two ``RtpEndpoint``s together, records both parties, and
watches for a leg that stopped sending.

Audio is passed through untouched when both legs use the same codec and payload
type (the common case costs one ``sendto`` per packet). PCMU<->PCMA is a byte
table translation. Telephone-events are passed through with the payload type
the other leg negotiated. Comfort noise and unknown payloads are dropped (the
other leg may not have negotiated them). When one party stops sending, nothing
is fabricated towards the other (silence is legal RTP); the recording is padded
with silence and the inactivity timeout ends the call if the silence lasts.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from ivr.endpoint import RtpEndpoint
from ivr.events import Address
from ivr.g711 import Codec
from ivr.recorder import Recorder


class RelayPath:
    """Rewrites packets received on one leg for sending on the other."""

    __slots__ = ("dst_audio_pt", "dst_event_pt", "src_audio_pt", "src_event_pt", "table")

    def __init__(
        self, src: Codec, dst: Codec, src_event_pt: int | None, dst_event_pt: int | None
    ) -> None:
        self.src_audio_pt = src.payload_type
        self.dst_audio_pt = dst.payload_type
        self.table = src.translate_table(dst)
        self.src_event_pt = src_event_pt
        self.dst_event_pt = dst_event_pt

    def rewrite(self, data: bytes) -> tuple[bytes | None, bool]:
        """``(packet for the other leg or None to drop, is it audio)``."""
        if len(data) < 12 or data[0] >> 6 != 2:
            return None, False
        b1 = data[1]
        pt = b1 & 0x7F
        if pt == self.src_audio_pt:
            if self.table is None and self.dst_audio_pt == pt:
                return data, True
            hlen = header_length(data)
            if hlen is None:
                return None, False
            head = bytes((data[0], (b1 & 0x80) | self.dst_audio_pt)) + data[2:hlen]
            payload = data[hlen:]
            if data[0] & 0x20:  # padding: drop it rather than translate it
                pad = data[-1]
                if pad == 0 or pad > len(payload):
                    return None, False
                payload = payload[:-pad]
                head = bytes((head[0] & ~0x20 & 0xFF,)) + head[1:]
            if self.table is not None:
                payload = payload.translate(self.table)
            return head + payload, True
        if pt == self.src_event_pt and self.dst_event_pt is not None:
            if self.dst_event_pt == pt:
                return data, False
            return bytes((data[0], (b1 & 0x80) | self.dst_event_pt)) + data[2:], False
        return None, False


def header_length(data: bytes) -> int | None:
    """Length of an RTP header with its CSRCs and extension, or None if truncated."""
    hlen = 12 + 4 * (data[0] & 0x0F)
    if data[0] & 0x10:
        if len(data) < hlen + 4:
            return None
        hlen += 4 + 4 * int.from_bytes(data[hlen + 2 : hlen + 4], "big")
    return hlen if len(data) >= hlen else None


class Bridge:
    """Connects two legs. ``a`` is recorded on channel 0, ``b`` on channel 1."""

    def __init__(
        self,
        a: RtpEndpoint,
        b: RtpEndpoint,
        *,
        recorder: Recorder | None = None,
        inactivity_timeout: float = 60.0,
        on_inactive: Callable[[RtpEndpoint], None] | None = None,
        flush_interval: float = 1.0,
    ) -> None:
        self.a = a
        self.b = b
        self.recorder = recorder
        self.inactivity_timeout = inactivity_timeout
        self.on_inactive = on_inactive
        self.flush_interval = flush_interval
        sa, sb = a.session, b.session
        self._ab = RelayPath(sa.codec, sb.codec, sa.telephone_event_pt, sb.telephone_event_pt)
        self._ba = RelayPath(sb.codec, sa.codec, sb.telephone_event_pt, sa.telephone_event_pt)
        self.received = [0, 0]
        self.relayed = [0, 0]
        self._seen = [0, 0]
        self._last_activity = [0.0, 0.0]
        self._tick: asyncio.TimerHandle | None = None
        self.running = False
        self.inactive_leg: RtpEndpoint | None = None

    def start(self) -> None:
        loop = self.a.loop
        now = loop.time()
        for ep in (self.a, self.b):
            ep.session.stop_playback(now)
            ep.suspend_timer()
        self._last_activity = [now, now]
        self.a.relay = self._from_a
        self.b.relay = self._from_b
        self.a.relay_rtcp = self._rtcp_from_a
        self.b.relay_rtcp = self._rtcp_from_b
        self.running = True
        self._tick = loop.call_at(now + self.flush_interval, self._on_tick)

    def stop(self) -> None:
        """Unhook the legs (they go back to their own sessions) and close the recording."""
        if not self.running:
            return
        self.running = False
        if self._tick is not None:
            self._tick.cancel()
        for ep in (self.a, self.b):
            ep.relay = None
            ep.relay_rtcp = None
        if self.recorder is not None:
            self.recorder.close(self.a.loop.time())
        for ep in (self.a, self.b):
            if not ep.closed:
                ep.resume()

    # The two directions are spelled out rather than parameterised: this is the
    # per-packet path of every bridged call.
    def _from_a(self, data: bytes, addr: Address) -> None:
        a = self.a
        self.received[0] += 1
        if addr != a.session.remote:
            a.session._learn(addr, a.loop.time())
        out, audio = self._ab.rewrite(data)
        if out is None:
            return
        if audio and self.recorder is not None:
            hl = 12 if data[0] == 0x80 else header_length(data)
            if hl is not None:
                self.recorder.add(0, data[hl:], int.from_bytes(data[4:8], "big"))
        peer = self.b.session.remote
        if peer is not None:
            self.b.send_raw(out, peer)
            self.relayed[0] += 1

    def _from_b(self, data: bytes, addr: Address) -> None:
        b = self.b
        self.received[1] += 1
        if addr != b.session.remote:
            b.session._learn(addr, b.loop.time())
        out, audio = self._ba.rewrite(data)
        if out is None:
            return
        if audio and self.recorder is not None:
            hl = 12 if data[0] == 0x80 else header_length(data)
            if hl is not None:
                self.recorder.add(1, data[hl:], int.from_bytes(data[4:8], "big"))
        peer = self.a.session.remote
        if peer is not None:
            self.a.send_raw(out, peer)
            self.relayed[1] += 1

    def _rtcp_from_a(self, data: bytes, addr: Address) -> None:
        if self.b.session.remote_rtcp is not None:
            self.b.send_raw_rtcp(data, self.b.session.remote_rtcp)

    def _rtcp_from_b(self, data: bytes, addr: Address) -> None:
        if self.a.session.remote_rtcp is not None:
            self.a.send_raw_rtcp(data, self.a.session.remote_rtcp)

    def _on_tick(self) -> None:
        if not self.running:
            return
        loop = self.a.loop
        now = loop.time()
        # Activity is judged from packet counts once per tick, so the per-packet
        # path reads no clock.
        for i in (0, 1):
            if self.received[i] != self._seen[i]:
                self._seen[i] = self.received[i]
                self._last_activity[i] = now
        if self.recorder is not None:
            self.recorder.flush(now)
        for i, ep in ((0, self.a), (1, self.b)):
            if now - self._last_activity[i] >= self.inactivity_timeout:
                self.inactive_leg = ep
                self.stop()
                if self.on_inactive is not None:
                    self.on_inactive(ep)
                return
        self._tick = loop.call_at(now + self.flush_interval, self._on_tick)
