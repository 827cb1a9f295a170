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

from ivr.events import Address
from ivr.g711 import Codec
from ivr.recorder import Recorder
from ivr.rtp_sockets import RtpEndpoint


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
        #: The codecs the recording was opened with (a leg may change codec mid-call).
        self._recorded_codecs = (sa.codec, sb.codec)
        self._rec_table_a: bytes | None = None
        self._rec_table_b: bytes | None = None
        self._paths()
        self._a_peer = sa.remote
        self._b_peer = sb.remote
        # A party on hold (SDP direction): nothing is relayed towards a leg that does
        # not receive, and the recording takes nothing, so it has silence there.
        self._mute_to_a = False
        self._mute_to_b = False
        self._held_recorder: Recorder | None = None
        self._a_send = a.sendto
        self._b_send = b.sendto
        self.received_a = 0
        self.received_b = 0
        self._seen = [0, 0]
        self._last_activity = [0.0, 0.0]
        self._tick: asyncio.TimerHandle | None = None
        self.running = False
        self.inactive_leg: RtpEndpoint | None = None
        # While an announcement plays to a party, the other party's audio to it is held.
        self._hold_to_a = False
        self._hold_to_b = False
        self._announce_timer: asyncio.TimerHandle | None = None
        self._announced: asyncio.Future[None] | None = None
        #: While the called leg (``b``) is watched for three-way calling: the payloads
        #: of its audio, appended as relayed (see ``ivr.threeway_watch``).
        self.called_audio: list[bytes] | None = None

    @property
    def heard_at(self) -> float:
        """When media last came from both parties (loop time, to the bridge's tick)."""
        return min(self._last_activity)

    def _paths(self) -> None:
        sa, sb = self.a.session, self.b.session
        self._ab = RelayPath(sa.codec, sb.codec, sa.telephone_event_pt, sb.telephone_event_pt)
        self._ba = RelayPath(sb.codec, sa.codec, sb.telephone_event_pt, sa.telephone_event_pt)
        self._a_audio_pt = sa.codec.payload_type
        self._b_audio_pt = sb.codec.payload_type
        # Same codec and payload type both ways: audio is forwarded byte for byte.
        self._same = self._ab.table is None and self._a_audio_pt == self._b_audio_pt
        self._rec_table_a = sa.codec.translate_table(self._recorded_codecs[0])
        self._rec_table_b = sb.codec.translate_table(self._recorded_codecs[1])

    def retarget(self) -> None:
        """A leg's media was renegotiated (new address, port or codec): relay to match."""
        self._paths()
        self._a_peer = self.a.session.remote
        self._b_peer = self.b.session.remote

    def set_directions(self, to_a: bool, to_b: bool) -> None:
        """Whether each leg receives media (False while its party holds the call or is
        held). While either does not, the recording takes nothing: it pads silence."""
        self._mute_to_a = not to_a
        self._mute_to_b = not to_b
        held = not (to_a and to_b)
        if held and self._held_recorder is None and self.recorder is not None:
            self._held_recorder, self.recorder = self.recorder, None
        elif not held and self._held_recorder is not None:
            self.recorder, self._held_recorder = self._held_recorder, None
            self.recorder.resume_channels(self.a.loop.time())

    @property
    def held(self) -> bool:
        return self._mute_to_a or self._mute_to_b

    def start(self) -> None:
        loop = self.a.loop
        now = loop.time()
        for ep in (self.a, self.b):
            ep.session.stop_playback(now)
        self._a_send = self.a.sendto
        self._b_send = self.b.sendto
        self._a_peer = self.a.session.remote
        self._b_peer = self.b.session.remote
        self._last_activity = [now, now]
        self.a.divert(self._from_a, self._rtcp_from_a)
        self.b.divert(self._from_b, self._rtcp_from_b)
        self.running = True
        # Spread the bridges' once-a-second work (recording flushes) over the
        # second, so hundreds of calls started together do not stall the relay at once.
        phase = (self.a.port * 7919 % 1000) / 1000 * self.flush_interval
        self._tick = loop.call_at(now + phase + self.flush_interval / 2, self._on_tick)

    def stop(self) -> None:
        """Unhook the legs (they go back to their own sessions) and close the recording."""
        if not self.running:
            return
        self.running = False
        if self._tick is not None:
            self._tick.cancel()
        self._end_announcement()
        if self._held_recorder is not None:
            self.recorder, self._held_recorder = self._held_recorder, None
        if self.recorder is not None:
            self.recorder.close(self.a.loop.time())
        for ep in (self.a, self.b):
            if not ep.closed:
                ep.undivert()

    def announce(self, to_a: bytes | None, to_b: bytes | None) -> asyncio.Future[None]:
        """Play encoded audio to one or both parties without unbridging (the
        one-minute warning). Each party hears the prompt instead of the other
        party for its length; recording goes on. The future resolves when done."""
        loop = self.a.loop
        if not self.running:
            raise RuntimeError("the bridge is not running")
        self._end_announcement()
        now = loop.time()
        if to_a is not None:
            self.a.session.play(to_a, now)
            self._hold_to_a = True
        if to_b is not None:
            self.b.session.play(to_b, now)
            self._hold_to_b = True
        self._announced = loop.create_future()
        self._announce_step()
        return self._announced

    def _announce_step(self) -> None:
        loop = self.a.loop
        now = loop.time()
        next_times = []
        for ep, peer in ((self.a, self._a_peer), (self.b, self._b_peer)):
            s = ep.session
            if not s.playing:
                continue
            if peer is not None:
                s.remote = peer
            for out in s.datagrams_to_send(now):
                if not out.rtcp:
                    ep.sendto(out.data, out.address)
            while s.next_event() is not None:
                pass
            t = s.next_send_time()
            if t is not None:
                next_times.append(t)
        self._hold_to_a = self.a.session.playing
        self._hold_to_b = self.b.session.playing
        if next_times:
            self._announce_timer = loop.call_at(min(next_times), self._announce_step)
        else:
            self._end_announcement()

    def _end_announcement(self) -> None:
        if self._announce_timer is not None:
            self._announce_timer.cancel()
            self._announce_timer = None
        now = self.a.loop.time()
        for ep in (self.a, self.b):
            ep.session.stop_playback(now)
        self._hold_to_a = self._hold_to_b = False
        if self._announced is not None and not self._announced.done():
            self._announced.set_result(None)

    # The per-packet path of every bridged call: the two directions are spelled
    # out, with the common case (same codec, plain 12-byte header) inline.
    def _from_a(self, data: bytes, addr: Address) -> None:
        if addr != self._a_peer:
            if not self._learn(0, self.a, addr):
                return  # not from the party: never relayed
            self._a_peer = addr
        self.received_a += 1
        if len(data) < 12:
            return
        if data[1] & 0x7F == self._a_audio_pt and data[0] == 0x80:
            if self.recorder is not None:
                table = self._rec_table_a
                self.recorder.add(0, data[12:] if table is None else data[12:].translate(table),
                                  int.from_bytes(data[4:8], "big"))
            out: bytes | None = data if self._same else self._ab.rewrite(data)[0]
        else:
            out, audio = self._ab.rewrite(data)
            if audio and self.recorder is not None:
                hl = header_length(data)
                if hl is not None:
                    self._record(0, data, hl)
        if out is not None and self._b_peer is not None and not self._hold_to_b and \
                not self._mute_to_b:
            self._b_send(out, self._b_peer)

    def _from_b(self, data: bytes, addr: Address) -> None:
        if addr != self._b_peer:
            if not self._learn(1, self.b, addr):
                return
            self._b_peer = addr
        self.received_b += 1
        if len(data) < 12:
            return
        if data[1] & 0x7F == self._b_audio_pt and data[0] == 0x80:
            if self.recorder is not None or self.called_audio is not None:
                self._heard_b(data, 12)
            out: bytes | None = data if self._same else self._ba.rewrite(data)[0]
        else:
            out, audio = self._ba.rewrite(data)
            if audio and (self.recorder is not None or self.called_audio is not None):
                hl = header_length(data)
                if hl is not None:
                    self._heard_b(data, hl)
        if out is not None and self._a_peer is not None and not self._hold_to_a and \
                not self._mute_to_a:
            self._a_send(out, self._a_peer)

    def _heard_b(self, data: bytes, hlen: int) -> None:
        """The called party's audio, in the codec it was bridged with (translated once),
        into the recording and to the three-way watch, whichever are on."""
        table = self._rec_table_b
        payload = data[hlen:] if table is None else data[hlen:].translate(table)
        if self.recorder is not None:
            self.recorder.add(1, payload, int.from_bytes(data[4:8], "big"))
        if self.called_audio is not None:
            self.called_audio.append(payload)

    def _record(self, channel: int, data: bytes, hlen: int) -> None:
        """One party's audio into the recording, in the codec it was opened with."""
        assert self.recorder is not None
        table = self._rec_table_b if channel else self._rec_table_a
        payload = data[hlen:] if table is None else data[hlen:].translate(table)
        self.recorder.add(channel, payload, int.from_bytes(data[4:8], "big"))

    def _learn(self, leg: int, ep: RtpEndpoint, addr: Address) -> bool:
        """Symmetric RTP, with the session's rule against strays (a rare path)."""
        now = ep.loop.time()
        # The per-packet path keeps counts, not times: if the party's count moved
        # since the last tick it was heard within a tick, else when the tick saw it.
        # A party never heard since bridging is judged by what its session knows.
        count = self.received[leg]
        if count:
            ep.session.note_heard(now if count != self._seen[leg] else self._last_activity[leg])
        accepted = ep.session.learn_source(addr, now)
        while ep.session.next_event() is not None:
            pass  # the bridge owns the leg: learned addresses are applied here
        return accepted

    def _rtcp_from_a(self, data: bytes, addr: Address) -> None:
        if self.b.session.remote_rtcp is not None:
            self.b.send_raw_rtcp(data, self.b.session.remote_rtcp)

    def _rtcp_from_b(self, data: bytes, addr: Address) -> None:
        if self.a.session.remote_rtcp is not None:
            self.a.send_raw_rtcp(data, self.a.session.remote_rtcp)

    @property
    def received(self) -> tuple[int, int]:
        return self.received_a, self.received_b

    def _on_tick(self) -> None:
        if not self.running:
            return
        loop = self.a.loop
        now = loop.time()
        # Activity is judged from packet counts once per tick, so the per-packet
        # path reads no clock.
        for i, count in enumerate(self.received):
            if count != self._seen[i]:
                self._seen[i] = count
                self._last_activity[i] = now
        recorder = self.recorder or self._held_recorder
        if recorder is not None:
            recorder.flush(now)
        if self._mute_to_a or self._mute_to_b:
            self._last_activity = [now, now]  # silence on hold is no lost media
        for i, ep in ((0, self.a), (1, self.b)):
            if now - self._last_activity[i] >= self.inactivity_timeout:
                self.inactive_leg = ep
                self.stop()
                if self.on_inactive is not None:
                    self.on_inactive(ep)
                return
        self._tick = loop.call_at(now + self.flush_interval, self._on_tick)
