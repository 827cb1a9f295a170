"""In-band key presses reach each leg's events when many legs are analysed together."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Callable, Sequence

import numpy as np
import pytest
from ivr_loops import LOOPS, free_range, run

import ivr.rtp_sockets
from ivr import PCMA, PCMU, PortAllocator, RtpEndpoint
from ivr.catalogue import PromptCatalogue
from ivr.events import DtmfReceived, MediaEvent
from ivr.g711 import Codec
from ivr.inband import dtmf_tone
from ivr.rtp import build_packet
from ivr.session import MediaSession, analyse_inband


def _audio(digits: str) -> np.ndarray:
    gap = np.zeros(800, dtype=np.int16)
    parts = [gap]
    for d in digits:
        parts += [dtmf_tone(d, 80, -12.0), gap]
    return np.concatenate([*parts, np.zeros(1600, dtype=np.int16)])


@pytest.mark.parametrize("loop_kind", LOOPS)
def test_each_leg_hears_its_own_keys(loop_kind: str, monkeypatch: pytest.MonkeyPatch) -> None:
    batches: list[int] = []

    def counted(sessions: Sequence[MediaSession], now: float) -> list[bool]:
        batches.append(len(sessions))
        return analyse_inband(sessions, now)

    monkeypatch.setattr(ivr.rtp_sockets, "analyse_inband", counted)

    async def main() -> None:
        lo, hi = free_range(8)
        ports = PortAllocator(lo, hi)
        speech = PromptCatalogue("en").audio("intro_prepaid")[:12_000]
        plan: list[tuple[Codec, np.ndarray, str]] = [
            (PCMU, _audio("147"), "147"),
            (PCMA, _audio("*0#"), "*0#"),
            (PCMU, speech, ""),
            (PCMU, _audio("9"), "9"),
        ]
        got: list[list[tuple[str, str]]] = [[] for _ in plan]

        def collector(i: int) -> Callable[[MediaEvent], None]:
            def on_event(ev: MediaEvent) -> None:
                if isinstance(ev, DtmfReceived):
                    got[i].append((ev.digit, ev.source))
            return on_event

        legs = [await RtpEndpoint.open(codec, allocator=ports, on_event=collector(i))
                for i, (codec, _, _) in enumerate(plan)]
        peers = []
        for _ in plan:
            peer = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            peer.bind(("127.0.0.1", 0))
            peers.append(peer)
        try:
            payloads = [codec.encode(x) for codec, x, _ in plan]
            frames = max(len(p) for p in payloads) // 160
            for k in range(frames):
                # Every leg's packet of this 20 ms goes out together, as many calls'
                # packets arrive within one turn of a busy loop.
                for i, (codec, _, _) in enumerate(plan):
                    chunk = payloads[i][k * 160 : (k + 1) * 160]
                    if len(chunk) == 160:
                        packet = build_packet(codec.payload_type, k, 160 * k, 0x100 + i, chunk)
                        peers[i].sendto(packet, ("127.0.0.1", legs[i].port))
                await asyncio.sleep(0.002)
            await asyncio.sleep(0.2)
        finally:
            for peer in peers:
                peer.close()
            for leg in legs:
                leg.close()
        assert [[d for d, _ in g] for g in got] == [list(want) for _, _, want in plan]
        assert {source for g in got for _, source in g} == {"inband"}

    run(loop_kind, main)
    assert max(batches) > 1  # legs that heard audio in the same turn were analysed together
