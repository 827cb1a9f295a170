"""The sans-IO relay rewrite of one direction of a bridge."""

from __future__ import annotations

from ivr import PCMA, PCMU, Codec, g711
from ivr.bridge import RelayPath, header_length
from ivr.rtp import RtpPacket, build_packet


def test_same_codec_is_passed_through_untouched() -> None:
    path = RelayPath(PCMU, PCMU, 101, 101)
    pkt = build_packet(0, 1, 160, 7, b"\x12" * 160, marker=True)
    out, audio = path.rewrite(pkt)
    assert out is pkt and audio


def test_transcoding_keeps_header_fields_and_sets_the_other_payload_type() -> None:
    path = RelayPath(PCMU, PCMA, 101, 96)
    payload = bytes(range(160))
    out, audio = path.rewrite(build_packet(0, 65535, 0xFFFFFFF0, 7, payload, marker=True))
    assert audio and out is not None
    p = RtpPacket.parse(out)
    assert (p.payload_type, p.sequence_number, p.timestamp, p.ssrc, p.marker) == (
        8, 65535, 0xFFFFFFF0, 7, True,
    )
    assert p.payload == g711.alaw_encode(g711.ulaw_decode(payload))


def test_dynamic_audio_payload_type_is_rewritten_even_for_the_same_codec() -> None:
    path = RelayPath(Codec("PCMU", 0), Codec("PCMU", 110), None, None)
    out, _ = path.rewrite(build_packet(0, 1, 2, 3, b"\x00" * 160))
    assert out is not None and RtpPacket.parse(out).payload_type == 110


def test_telephone_events_are_passed_with_the_other_legs_type() -> None:
    path = RelayPath(PCMU, PCMU, 101, 96)
    ev = bytes.fromhex("010a0140")
    out, audio = path.rewrite(build_packet(101, 5, 8000, 3, ev, marker=True))
    assert out is not None and not audio
    p = RtpPacket.parse(out)
    assert (p.payload_type, p.payload, p.marker) == (96, ev, True)
    # A leg that did not negotiate telephone-event gets none.
    assert RelayPath(PCMU, PCMU, 101, None).rewrite(build_packet(101, 5, 8000, 3, ev)) == (
        None, False,
    )


def test_comfort_noise_unknown_types_and_garbage_are_dropped() -> None:
    path = RelayPath(PCMU, PCMA, 101, 101)
    assert path.rewrite(build_packet(13, 1, 2, 3, b"\x40")) == (None, False)
    assert path.rewrite(build_packet(96, 1, 2, 3, b"x")) == (None, False)
    assert path.rewrite(b"\x80\x00\x00") == (None, False)
    assert path.rewrite(b"\x40" + bytes(20)) == (None, False)  # RTP version 1


def test_csrc_extension_and_padding_survive_transcoding() -> None:
    pkt = RtpPacket(0, 1, 2, 3, b"\xff" * 8, False, [9], 0xBEDE, bytes(4)).serialize()
    padded = bytearray(pkt + b"\x00\x00\x00\x04")
    padded[0] |= 0x20
    assert header_length(bytes(padded)) == 12 + 4 + 8
    out, audio = RelayPath(PCMU, PCMA, None, None).rewrite(bytes(padded))
    assert audio and out is not None
    p = RtpPacket.parse(out)
    assert p.csrc == [9] and p.extension_profile == 0xBEDE
    assert p.payload == bytes([PCMA.silence_byte]) * 8
    truncated = pkt[:14]
    assert RelayPath(PCMU, PCMA, None, None).rewrite(truncated) == (None, False)
