"""Paces an encoded prompt into 20 ms frames against the caller's clock, without drift."""

from __future__ import annotations

FRAME_SAMPLES = 160
PTIME = 0.02
#: If the loop falls this many frames behind, skip the backlog instead of bursting it.
MAX_CATCH_UP = 10


class PromptPlayer:
    """Frame ``k`` is due at ``start + k * PTIME`` exactly: times are computed from
    the start, never accumulated, so lateness of one wake-up does not carry over."""

    def __init__(self, payload: bytes, start: float, silence_byte: int = 0xFF) -> None:
        rem = len(payload) % FRAME_SAMPLES
        if rem:
            payload = payload + bytes([silence_byte]) * (FRAME_SAMPLES - rem)
        self.payload = payload
        self.start = start
        self.frames = len(payload) // FRAME_SAMPLES
        self.next_frame = 0
        self.skipped = 0

    @property
    def finished(self) -> bool:
        return self.next_frame >= self.frames

    def next_time(self) -> float | None:
        if self.finished:
            return None
        return self.start + self.next_frame * PTIME

    def due(self, now: float) -> list[tuple[int, bytes]]:
        """Frames due by ``now`` as ``(frame index, payload)``."""
        if self.finished:
            return []
        last_due = min(int((now - self.start) / PTIME + 1e-9), self.frames - 1)
        if last_due < self.next_frame:
            return []
        if last_due - self.next_frame + 1 > MAX_CATCH_UP:
            skip_to = last_due - MAX_CATCH_UP + 1
            self.skipped += skip_to - self.next_frame
            self.next_frame = skip_to
        out = []
        for k in range(self.next_frame, last_due + 1):
            out.append((k, self.payload[k * FRAME_SAMPLES : (k + 1) * FRAME_SAMPLES]))
        self.next_frame = last_due + 1
        return out
