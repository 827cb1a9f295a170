"""HTTP digest authentication for SIP (RFC 7616 via RFC 3261 22): MD5 and SHA-256.

Nonces are self-validating (time stamp + random + HMAC), expire after a
lifetime, and every (nonce, nc) is accepted once, so a captured Authorization
header cannot be replayed.
"""

from __future__ import annotations

import hashlib
import hmac
import os
from collections.abc import Mapping
from dataclasses import dataclass

from .errors import ParseError
from .message import Request

ALGORITHMS = {"MD5": hashlib.md5, "SHA-256": hashlib.sha256}


def parse_auth_params(value: str) -> tuple[str, dict[str, str]]:
    """Split ``Digest a="b", c=d`` into (scheme, params); params keys lower-cased."""
    scheme, _, rest = value.strip().partition(" ")
    params: dict[str, str] = {}
    i = 0
    n = len(rest)
    while i < n:
        while i < n and rest[i] in " ,\t":
            i += 1
        if i >= n:
            break
        eq = rest.find("=", i)
        if eq < 0:
            raise ParseError(f"auth parameter without '=' in {value[:80]!r}")
        key = rest[i:eq].strip().lower()
        i = eq + 1
        while i < n and rest[i] in " \t":
            i += 1
        if i < n and rest[i] == '"':
            i += 1
            chars: list[str] = []
            while i < n and rest[i] != '"':
                if rest[i] == "\\" and i + 1 < n:
                    i += 1
                chars.append(rest[i])
                i += 1
            if i >= n:
                raise ParseError(f"unterminated quoted string in {value[:80]!r}")
            i += 1
            val = "".join(chars)
        else:
            end = rest.find(",", i)
            end = n if end < 0 else end
            val = rest[i:end].strip()
            i = end
        if not key:
            raise ParseError(f"empty auth parameter name in {value[:80]!r}")
        params[key] = val
    return scheme, params


def digest_response(
    algorithm: str, username: str, realm: str, password: str, method: str, uri: str,
    nonce: str, nc: str | None = None, cnonce: str | None = None, qop: str | None = None,
) -> str:
    """The ``response`` value a client computes (also used by our tests and UAC side)."""
    h = ALGORITHMS[algorithm]

    def digest(text: str) -> str:
        return h(text.encode()).hexdigest()

    ha1 = digest(f"{username}:{realm}:{password}")
    ha2 = digest(f"{method}:{uri}")
    if qop:
        return digest(f"{ha1}:{nonce}:{nc}:{cnonce}:{qop}:{ha2}")
    return digest(f"{ha1}:{nonce}:{ha2}")


@dataclass(frozen=True, slots=True)
class DigestOutcome:
    """``ok`` with the user name, or why not; ``stale`` means retry with a fresh nonce."""

    ok: bool
    username: str | None = None
    stale: bool = False
    reason: str = ""


class DigestAuthenticator:
    """Issues challenges and checks credentials for one realm."""

    def __init__(
        self,
        realm: str,
        *,
        secret: bytes | None = None,
        nonce_lifetime: float = 300.0,
        algorithms: tuple[str, ...] = ("SHA-256", "MD5"),
        max_tracked_nonces: int = 100_000,
    ) -> None:
        for algorithm in algorithms:
            if algorithm not in ALGORITHMS:
                raise ValueError(f"unsupported digest algorithm {algorithm!r}")
        self.realm = realm
        self.secret = secret or os.urandom(32)
        self.nonce_lifetime = nonce_lifetime
        self.algorithms = algorithms
        self.max_tracked_nonces = max_tracked_nonces
        self._used: dict[str, tuple[float, int]] = {}  # nonce -> (issued at, highest nc)
        self._horizon = float("-inf")  # nonces issued up to here and not tracked: refused

    def new_nonce(self, now: float) -> str:
        stamp = f"{int(now * 1000):x}.{os.urandom(8).hex()}"
        mac = hmac.new(self.secret, stamp.encode(), hashlib.sha256).hexdigest()[:32]
        return f"{stamp}.{mac}"

    def challenge_headers(self, now: float, *, stale: bool = False) -> list[tuple[str, str]]:
        """``WWW-Authenticate`` headers, strongest algorithm first (RFC 7616 3.7)."""
        nonce = self.new_nonce(now)
        opaque = hmac.new(self.secret, b"opaque", hashlib.sha256).hexdigest()[:16]
        extra = ", stale=true" if stale else ""
        return [
            ("WWW-Authenticate",
             f'Digest realm="{self.realm}", nonce="{nonce}", opaque="{opaque}", '
             f'algorithm={algorithm}, qop="auth"{extra}')
            for algorithm in self.algorithms
        ]

    def _nonce_issued_at(self, nonce: str) -> float | None:
        parts = nonce.split(".")
        if len(parts) != 3:
            return None
        stamp = f"{parts[0]}.{parts[1]}"
        mac = hmac.new(self.secret, stamp.encode(), hashlib.sha256).hexdigest()[:32]
        if not hmac.compare_digest(mac, parts[2]):
            return None
        try:
            return int(parts[0], 16) / 1000
        except ValueError:
            return None

    def verify(
        self, request: Request, passwords: Mapping[str, str], now: float
    ) -> DigestOutcome:
        """Check the request's Authorization header against ``passwords`` (user -> secret)."""
        header = request.headers.get("authorization")
        if header is None:
            return DigestOutcome(False, reason="no credentials")
        try:
            scheme, params = parse_auth_params(header)
        except ParseError as exc:
            return DigestOutcome(False, reason=str(exc))
        if scheme.lower() != "digest":
            return DigestOutcome(False, reason=f"unsupported scheme {scheme[:20]!r}")
        username = params.get("username", "")
        nonce = params.get("nonce", "")
        response = params.get("response", "")
        uri = params.get("uri", "")
        algorithm = params.get("algorithm", "MD5").upper()
        if params.get("realm") != self.realm:
            return DigestOutcome(False, username, reason="wrong realm")
        if algorithm not in self.algorithms:
            return DigestOutcome(False, username, reason=f"algorithm {algorithm[:20]} refused")
        if uri != request.uri:
            return DigestOutcome(False, username, reason="digest uri differs from Request-URI")
        issued = self._nonce_issued_at(nonce)
        if issued is None:
            return DigestOutcome(False, username, reason="nonce not issued by us")
        if now - issued > self.nonce_lifetime or issued - now > 1.0:
            return DigestOutcome(False, username, stale=True, reason="nonce expired")
        password = passwords.get(username)
        if password is None:
            return DigestOutcome(False, username, reason="unknown user")
        qop = params.get("qop")
        nc_text = params.get("nc")
        cnonce = params.get("cnonce")
        if qop is not None:
            if qop != "auth" or not nc_text or not cnonce:
                return DigestOutcome(False, username, reason="qop=auth needs nc and cnonce")
            try:
                nc = int(nc_text, 16)
            except ValueError:
                return DigestOutcome(False, username, reason="bad nc")
        else:
            nc = 0
        expected = digest_response(algorithm, username, self.realm, password, request.method,
                                   uri, nonce, nc_text, cnonce, qop)
        if not hmac.compare_digest(expected, response):
            return DigestOutcome(False, username, reason="wrong response")
        # Replay protection: each nonce count is good once, and counts only go up.
        previous = self._used.get(nonce)
        if previous is not None and (qop is None or nc <= previous[1]):
            return DigestOutcome(False, username, stale=True, reason="replayed nonce count")
        if previous is None and issued <= self._horizon:
            # We may have forgotten this nonce's history: make the client take a new one.
            return DigestOutcome(False, username, stale=True, reason="nonce too old to track")
        self._remember(nonce, issued, nc, now)
        return DigestOutcome(True, username)

    def _remember(self, nonce: str, issued: float, nc: int, now: float) -> None:
        if nonce not in self._used and len(self._used) >= self.max_tracked_nonces:
            horizon = now - self.nonce_lifetime
            for key in [k for k, (at, _) in self._used.items() if at < horizon]:
                del self._used[key]
            if len(self._used) >= self.max_tracked_nonces:
                oldest = next(iter(self._used))
                self._horizon = max(self._horizon, self._used.pop(oldest)[0])
        self._used[nonce] = (issued, nc)
