"""RTP and RTCP wire formats: captured bytes, round trips, truncation, wrap-around."""

from __future__ import annotations

import pytest

from ivr.rtcp import (
    OtherRtcp,
    ReceiverReport,
    ReceptionStats,
    ReportBlock,
    SenderReport,
    parse_compound,
)
from ivr.rtp import RtpPacket, SequenceTracker, build_packet, is_rtcp, seq_diff, ts_diff

# First packet of SIPp's dtmf_2833_1.pcap (telephone-event, marker set).
CAPTURED = bytes.fromhex("80e51f30000033e00e05384e010a0000")


def test_parse_captured_packet() -> None:
    p = RtpPacket.parse(CAPTURED)
    assert (p.payload_type, p.marker, p.sequence_number) == (101, True, 0x1F30)
    assert (p.timestamp, p.ssrc, p.payload) == (0x33E0, 0x0E05384E, bytes.fromhex("010a0000"))
    assert p.serialize() == CAPTURED


def test_round_trip_with_csrc_extension() -> None:
    p = RtpPacket(8, 65535, 0xFFFFFFFF, 0xDEADBEEF, b"\xd5" * 160, True, [1, 2], 0xBEDE, bytes(8))
    data = p.serialize()
    assert RtpPacket.parse(data) == p
    assert RtpPacket.parse(data).serialize() == data


def test_padding_is_stripped() -> None:
    data = bytearray(build_packet(0, 1, 2, 3, b"\xff" * 4 + b"\x00\x00\x00\x04"))
    data[0] |= 0x20
    assert RtpPacket.parse(bytes(data)).payload == b"\xff" * 4


@pytest.mark.parametrize("length", range(12))
def test_every_truncated_header_is_rejected(length: int) -> None:
    with pytest.raises(ValueError, match=rf"RTP packet truncated: {length} bytes, header needs 12"):
        RtpPacket.parse(CAPTURED[:length])


def test_truncated_csrc_and_extension_are_rejected() -> None:
    full = RtpPacket(0, 1, 2, 3, b"", False, [7], 1, b"abcd").serialize()
    for n in range(12, 16):
        with pytest.raises(ValueError, match="1 CSRCs need 16"):
            RtpPacket.parse(full[:n])
    for n in range(16, 20):
        with pytest.raises(ValueError, match="extension header missing"):
            RtpPacket.parse(full[:n])
    for n in range(20, 24):
        with pytest.raises(ValueError, match="extension body missing"):
            RtpPacket.parse(full[:n])


def test_bad_version_and_padding() -> None:
    with pytest.raises(ValueError, match="RTP version 1 is not 2"):
        RtpPacket.parse(b"\x40" + CAPTURED[1:])
    bad = bytearray(build_packet(0, 1, 2, 3, b"\x01\x09"))
    bad[0] |= 0x20
    with pytest.raises(ValueError, match="padding length 9 is invalid"):
        RtpPacket.parse(bytes(bad))


def test_serialize_refuses_bad_fields() -> None:
    with pytest.raises(ValueError, match="payload type 200"):
        RtpPacket(200, 0, 0, 0).serialize()
    with pytest.raises(ValueError, match="multiple of 4"):
        RtpPacket(0, 0, 0, 0, extension_profile=1, extension=b"abc").serialize()


def test_sequence_and_timestamp_arithmetic_wraps() -> None:
    assert seq_diff(0, 65535) == 1
    assert seq_diff(65535, 0) == -1
    assert ts_diff(5, 0xFFFFFFFF) == 6
    assert ts_diff(0xFFFFFFF0, 0x10) == -0x20


def test_sequence_tracker_counts_cycles_and_loss() -> None:
    t = SequenceTracker()
    for s in list(range(65530, 65536)) + list(range(0, 10)):
        if s == 3:
            continue  # lost
        t.update(s)
    assert t.cycles == 65536
    assert t.extended_max == 65536 + 9
    assert t.expected == 16
    assert t.lost == 1
    assert t.update(3) == 65536 + 3  # late arrival within the misorder window
    assert t.lost == 0


def test_sequence_tracker_accepts_restart_after_confirmation() -> None:
    t = SequenceTracker()
    t.update(100)
    assert t.update(40000) is None
    assert t.update(40001) == 40001
    assert t.lost == 0


def test_rtcp_demultiplexing() -> None:
    assert not is_rtcp(CAPTURED)
    assert is_rtcp(ReceiverReport(1).serialize())


def block() -> ReportBlock:
    return ReportBlock(0x1234, 25, -3, 70000, 40, 0xAABBCCDD, 65536)


def test_sender_report_round_trip() -> None:
    sr = SenderReport(0xCAFE, 0x1122334455667788, 16000, 50, 8000, (block(),))
    sdes = OtherRtcp(202, 1, b"\x00\x00\xca\xfe\x01\x03ics\x00\x00\x00")
    data = sr.serialize() + sdes.serialize()
    assert parse_compound(data) == [sr, sdes]
    assert len(sr.serialize()) == 28 + 24


def test_receiver_report_round_trip_and_negative_loss() -> None:
    rr = ReceiverReport(7, (block(), block()))
    assert parse_compound(rr.serialize()) == [rr]


def test_rtcp_truncation_is_rejected_at_every_length() -> None:
    data = SenderReport(1, 2, 3, 4, 5, (block(),)).serialize()
    for n in range(len(data)):
        with pytest.raises(ValueError, match="RTCP"):
            parse_compound(data[:n])


def test_rtcp_bad_type_and_version() -> None:
    with pytest.raises(ValueError, match="RTCP packet type 100"):
        parse_compound(b"\x80\x64\x00\x00")
    with pytest.raises(ValueError, match="RTCP version 0"):
        parse_compound(b"\x00\xc9\x00\x00")


def test_reception_stats_loss_fraction_and_jitter() -> None:
    st = ReceptionStats(ssrc=9)
    # 100 packets, every 10th lost, arriving with alternating 0/4 ms of delay.
    for i in range(100):
        if i % 10 == 5:
            continue
        st.update(i, i * 160, i * 0.02 + (0.004 if i % 2 else 0.0))
    rb = st.report_block(now=2.0)
    assert rb.cumulative_lost == 10
    assert rb.fraction_lost == (10 << 8) // 100
    assert 10 < rb.jitter < 40  # 32 units of transit swing, smoothed by 1/16
    # The next interval starts from here: nothing new, nothing lost.
    assert st.report_block(now=3.0).fraction_lost == 0
