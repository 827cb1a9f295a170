"""G.711 against ITU-T G.191 reference values."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from ivr import g711

# Decoded values of selected codes, from the G.711 tables (16-bit scale).
ULAW_DECODE_REF = {
    0x00: -32124, 0x0F: -16764, 0x10: -15996, 0x7E: -8, 0x7F: 0,
    0x80: 32124, 0x8F: 16764, 0xF0: 120, 0xFE: 8, 0xFF: 0,
}
ALAW_DECODE_REF = {
    0xD5: 8, 0x55: -8, 0xD4: 24, 0x54: -24, 0xAA: 32256, 0x2A: -32256,
    0xC5: 264, 0x45: -264, 0xA5: 16896, 0xFA: 1008,
}
# Encoder decision boundaries (G.191 reference: one's complement for negatives).
ULAW_ENCODE_REF = {
    0: 0xFF, 3: 0xFF, 4: 0xFE, 11: 0xFE, 12: 0xFD, -1: 0x7F, -4: 0x7F, -5: 0x7E,
    32767: 0x80, -32768: 0x00, 32124: 0x80, -32124: 0x00,
}
ALAW_ENCODE_REF = {
    0: 0xD5, -1: 0x55, 15: 0xD5, 16: 0xD4, -16: 0x55, -17: 0x54, 32767: 0xAA,
    -32768: 0x2A, 256: 0xC5, 255: 0xDA,
}


@pytest.mark.parametrize(("code", "value"), sorted(ULAW_DECODE_REF.items()))
def test_ulaw_decode_reference(code: int, value: int) -> None:
    assert int(g711.ulaw_decode(bytes([code]))[0]) == value


@pytest.mark.parametrize(("code", "value"), sorted(ALAW_DECODE_REF.items()))
def test_alaw_decode_reference(code: int, value: int) -> None:
    assert int(g711.alaw_decode(bytes([code]))[0]) == value


@pytest.mark.parametrize(("sample", "code"), sorted(ULAW_ENCODE_REF.items()))
def test_ulaw_encode_reference(sample: int, code: int) -> None:
    assert g711.ulaw_encode([sample]) == bytes([code])


@pytest.mark.parametrize(("sample", "code"), sorted(ALAW_ENCODE_REF.items()))
def test_alaw_encode_reference(sample: int, code: int) -> None:
    assert g711.alaw_encode([sample]) == bytes([code])


def test_every_code_survives_decode_then_encode() -> None:
    codes = bytes(range(256))
    assert g711.alaw_encode(g711.alaw_decode(codes)) == codes
    # mu-law has two zeros (0x7F and 0xFF); the reference encodes 0 as 0xFF.
    expected = bytes(0xFF if c == 0x7F else c for c in codes)
    assert g711.ulaw_encode(g711.ulaw_decode(codes)) == expected


def test_encoding_is_monotonic_over_the_whole_range() -> None:
    x = np.arange(-32768, 32768, dtype=np.int16)
    for enc, dec in ((g711.ulaw_encode, g711.ulaw_decode), (g711.alaw_encode, g711.alaw_decode)):
        y = dec(enc(x)).astype(np.int32)
        assert np.all(np.diff(y) >= 0)
        # Quantisation error stays within half the largest step (1024 for segment 8).
        assert np.max(np.abs(y - x.astype(np.int32))) <= 1024


def test_matches_cpython_audioop_where_it_follows_g191() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        audioop = pytest.importorskip(
            "audioop", reason="audioop left the standard library in Python 3.13")
    x = np.arange(-32768, 32768, dtype=np.int16)
    raw = x.tobytes()
    assert g711.alaw_encode(x) == audioop.lin2alaw(raw, 2)
    codes = bytes(range(256))
    assert g711.ulaw_decode(codes).tobytes() == audioop.ulaw2lin(codes, 2)
    assert g711.alaw_decode(codes).tobytes() == audioop.alaw2lin(codes, 2)
    # audioop's mu-law encoder takes two's complement of negatives (Sun's code);
    # for non-negative input both agree.
    pos = x[x >= 0]
    assert g711.ulaw_encode(pos) == audioop.lin2ulaw(pos.tobytes(), 2)


def test_transcoding_tables_equal_decode_then_encode() -> None:
    codes = bytes(range(256))
    assert codes.translate(g711.ULAW_TO_ALAW) == g711.alaw_encode(g711.ulaw_decode(codes))
    assert codes.translate(g711.ALAW_TO_ULAW) == g711.ulaw_encode(g711.alaw_decode(codes))


def test_codec_objects() -> None:
    assert g711.PCMU.silence_byte == g711.ulaw_encode([0])[0]
    assert g711.PCMA.silence_byte == g711.alaw_encode([0])[0]
    assert g711.PCMU.translate_table(g711.PCMU) is None
    assert g711.PCMU.translate_table(g711.PCMA) == g711.ULAW_TO_ALAW
    with pytest.raises(ValueError, match="unsupported codec 'G729'"):
        g711.Codec("G729", 18)
    with pytest.raises(ValueError, match="payload type 128"):
        g711.Codec("PCMU", 128)
