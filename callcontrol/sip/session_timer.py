"""Session timers (RFC 4028) for one leg of a call: the interval both ends agreed, who
refreshes it, when a refresh is due and when the session has expired.

No I/O and no clock: `SessionTimer` is told ``now`` and what happened (a refresh
sent, answered, failed, received) and says what to do (`RefreshDue`,
`SessionExpired`); `get_timer` says when to call `handle_timer` next.
"""

from __future__ import annotations

from dataclasses import dataclass

from .errors import PeerProtocolError
from .message import Message, Request, Response, parse_params

#: RFC 4028 4: no session interval may be below 90 seconds.
MIN_SE_FLOOR = 90

OPTION_TAG = "timer"


class SessionIntervalTooSmall(PeerProtocolError):
    """A Session-Expires below our Min-SE: answered 422 with ``Min-SE`` (RFC 4028 8.1.1)."""

    default_status = 422

    def __init__(self, interval: int, min_se: int) -> None:
        super().__init__(f"Session-Expires {interval} is below Min-SE {min_se}")
        self.min_se = min_se


@dataclass(frozen=True, slots=True)
class SessionExpires:
    """A ``Session-Expires`` value: ``delta-seconds [;refresher=uac|uas]``."""

    interval: int
    refresher: str | None = None

    @classmethod
    def parse(cls, value: str) -> SessionExpires:
        number, _, rest = value.strip().partition(";")
        number = number.strip()
        if not number.isdigit() or len(number) > 10:
            raise PeerProtocolError(f"malformed Session-Expires {value[:40]!r}")
        params = parse_params(rest)
        refresher = params.get("refresher")
        if refresher is not None:
            refresher = refresher.lower()
            if refresher not in ("uac", "uas"):
                raise PeerProtocolError(f"Session-Expires refresher {refresher[:10]!r}")
        return cls(int(number), refresher)

    def __str__(self) -> str:
        return f"{self.interval};refresher={self.refresher}" if self.refresher else \
            str(self.interval)


def session_expires_of(message: Message) -> SessionExpires | None:
    value = message.headers.get("session-expires")
    return SessionExpires.parse(value) if value is not None else None


def min_se_of(message: Message) -> int:
    """The Min-SE a message states (RFC 4028 5); 0 when it states none."""
    value = (message.headers.get("min-se") or "").partition(";")[0].strip()
    if not value:
        return 0
    if not value.isdigit() or len(value) > 10:
        raise PeerProtocolError(f"malformed Min-SE {value[:40]!r}")
    return int(value)


def supports_timer(message: Message) -> bool:
    tags = message.headers.get_list("supported") + message.headers.get_list("require")
    return any(tag.lower() == OPTION_TAG for tag in tags)


def check_interval(request: Request, min_se: int) -> None:
    """Raise `SessionIntervalTooSmall` when a request asks for less than ``min_se``."""
    expires = session_expires_of(request)
    if expires is not None and expires.interval < min_se:
        raise SessionIntervalTooSmall(expires.interval, min_se)


@dataclass(frozen=True, slots=True)
class RefreshDue:
    """We are the refresher and half the interval has passed: send a re-INVITE or UPDATE."""

    interval: int


@dataclass(frozen=True, slots=True)
class SessionExpired:
    """No refresh came (or ours failed) in time: BYE the leg; the call was last known
    alive at ``alive_at``."""

    alive_at: float
    reason: str


class SessionTimer:
    """One leg's session timer once the dialog is confirmed.

    ``local_refresher``: we refresh at half the interval; otherwise the peer does,
    and without a refresh the session expires at the interval less
    min(32, interval/3) (RFC 4028 10). ``alive_at`` is the last moment a refresh
    (or, through `alive`, media) showed the other end was there.
    """

    __slots__ = ("alive_at", "interval", "local_refresher", "min_se", "refreshing",
                 "retry_at", "started_at")

    def __init__(self, interval: int, *, local_refresher: bool, now: float,
                 min_se: int = MIN_SE_FLOOR) -> None:
        self.interval = interval
        self.local_refresher = local_refresher
        self.min_se = min_se
        self.started_at = now
        self.alive_at = now
        self.refreshing = False
        #: After a 491 to our refresh, when to send it again (RFC 3261 14.1).
        self.retry_at: float | None = None

    # -- negotiation ----------------------------------------------------------------------
    @classmethod
    def answering(
        cls, request: Request, now: float, *, min_se: int = MIN_SE_FLOOR, interval: int = 0,
    ) -> tuple[SessionTimer | None, list[tuple[str, str]]]:
        """The timer and the 2xx headers for a dialog we answer as UAS (RFC 4028 9).

        The request's interval is kept (`check_interval` has refused it when too small)
        and so is its refresher choice; with none, we refresh. Without a
        Session-Expires in the request we add one only when ``interval`` is set.
        """
        asked = session_expires_of(request)
        peer_supports = supports_timer(request)
        if asked is None:
            if interval <= 0:
                return None, []
            asked = SessionExpires(max(interval, min_se_of(request), min_se))
        refresher = asked.refresher if peer_supports and asked.refresher else "uas"
        headers = [("Session-Expires", str(SessionExpires(asked.interval, refresher)))]
        if peer_supports:
            headers.append(("Require", OPTION_TAG))
        timer = cls(asked.interval, local_refresher=refresher == "uas", now=now,
                    min_se=max(min_se, min_se_of(request)))
        return timer, headers

    @classmethod
    def answered(cls, response: Response, now: float, *, min_se: int = MIN_SE_FLOOR) -> \
            SessionTimer | None:
        """The timer a 2xx to our INVITE sets up, if it has a Session-Expires (RFC 4028 7.2)."""
        expires = session_expires_of(response)
        if expires is None:
            return None
        return cls(expires.interval, local_refresher=expires.refresher != "uas", now=now,
                   min_se=min(min_se, expires.interval))

    # -- time -----------------------------------------------------------------------------
    @property
    def expires_at(self) -> float:
        """When the session ends without a refresh; the BYE goes at this moment."""
        return self.started_at + self.interval - min(32.0, self.interval / 3)

    @property
    def refresh_at(self) -> float | None:
        if not self.local_refresher or self.refreshing:
            return None
        return self.started_at + self.interval / 2

    def get_timer(self) -> float | None:
        if self.retry_at is not None:
            return min(self.retry_at, self.expires_at)
        refresh = self.refresh_at
        return refresh if refresh is not None else self.expires_at

    def handle_timer(self, now: float) -> list[RefreshDue | SessionExpired]:
        if now >= self.expires_at:
            return [SessionExpired(self.alive_at, "session timer expired")]
        if self.retry_at is not None:
            if now < self.retry_at:
                return []
            self.retry_at = None
            return [RefreshDue(self.interval)]
        refresh = self.refresh_at
        if refresh is not None and now >= refresh:
            self.refreshing = True
            return [RefreshDue(self.interval)]
        return []

    # -- what happened --------------------------------------------------------------------
    def alive(self, at: float) -> None:
        """Media (or anything else from the peer) showed the call was alive at ``at``."""
        if at > self.alive_at:
            self.alive_at = at

    def refreshed(self, now: float, message: Message | None = None, *,
                  we_answered: bool = False) -> list[tuple[str, str]]:
        """A refresh succeeded: ours got its 2xx (``message`` the response), or the peer's
        came in (``message`` the request, ``we_answered``). Returns the headers our
        2xx to the peer's refresh carries."""
        self.started_at = now
        self.alive(now)
        self.refreshing = False
        headers: list[tuple[str, str]] = []
        expires = session_expires_of(message) if message is not None else None
        if we_answered:
            interval = expires.interval if expires is not None else self.interval
            interval = max(interval, self.min_se)
            peer_supports = message is not None and supports_timer(message)
            refresher = expires.refresher if expires is not None and expires.refresher \
                and peer_supports else "uas"
            self.interval = interval
            self.local_refresher = refresher == "uas"
            headers.append(("Session-Expires", str(SessionExpires(interval, refresher))))
            if peer_supports:
                headers.append(("Require", OPTION_TAG))
        elif expires is not None:
            self.interval = expires.interval
            self.local_refresher = expires.refresher != "uas"
        return headers

    def refresh_failed(self, now: float, response: Response | None = None, *,
                       retry_in: float = 2.0) -> list[RefreshDue | SessionExpired]:
        """Our refresh got an error or no answer (RFC 4028 10: the session is over),
        except a 422, retried at once with the Min-SE it names, and a 491 (glare),
        retried ``retry_in`` seconds later."""
        self.refreshing = False
        if response is not None and response.status == 491:
            self.refreshing = True
            # Never later than halfway to the expiry: a retry after it is no use.
            self.retry_at = now + min(retry_in, max(0.0, self.expires_at - now) / 2)
            return []
        if response is not None and response.status == 422:
            wanted = min_se_of(response)
            if wanted > self.interval:
                self.interval = self.min_se = wanted
                self.refreshing = True
                return [RefreshDue(self.interval)]
        what = f"refresh answered {response.status}" if response is not None else \
            "refresh not answered"
        return [SessionExpired(self.alive_at, what)]

    def refresh_headers(self) -> list[tuple[str, str]]:
        """The headers of our refresh request (we stay the refresher)."""
        return [("Session-Expires", str(SessionExpires(self.interval, "uac"))),
                ("Min-SE", str(self.min_se)), ("Supported", OPTION_TAG)]
