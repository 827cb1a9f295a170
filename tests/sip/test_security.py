"""Trunk security: source CIDRs, digest (MD5, SHA-256, expiry, replay), rate limit, OPTIONS."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from callcontrol.sip import (
    AckReceived,
    DigestAuthenticator,
    Endpoint,
    MessageRejected,
    Request,
    RequestReceived,
    Trunk,
    TrunkPolicy,
    digest_response,
    parse_auth_params,
    parse_message,
)

from .conftest import drain, invite_bytes

TRUSTED = ("127.0.0.11", 5070)


def policy(**kw: object) -> TrunkPolicy:
    return TrunkPolicy([
        Trunk.from_config("tx-state-prison", ["127.0.0.11/32"]),
        Trunk.from_config("al-county-jail", ["127.0.0.12/32", "fd00:12::/64"],
                          users={"al": "s3cret"}),
        Trunk.from_config("wide", ["10.0.0.0/8"]),
        Trunk.from_config("narrow", ["10.1.2.3"]),
    ], realm="ics", **kw)  # type: ignore[arg-type]


def request(method: str = "INVITE", **kw: object) -> Request:
    message = parse_message(invite_bytes(method=method, **kw))  # type: ignore[arg-type]
    assert isinstance(message, Request)
    return message


def test_trunk_lookup_most_specific_and_ipv6() -> None:
    p = policy()
    assert p.trunk_for("127.0.0.11").id == "tx-state-prison"  # type: ignore[union-attr]
    assert p.trunk_for("10.1.2.3").id == "narrow"  # type: ignore[union-attr]
    assert p.trunk_for("10.9.9.9").id == "wide"  # type: ignore[union-attr]
    assert p.trunk_for("fd00:12::7").id == "al-county-jail"  # type: ignore[union-attr]
    assert p.trunk_for("::ffff:127.0.0.11").id == "tx-state-prison"  # type: ignore[union-attr]
    assert p.trunk_for("127.0.0.99") is None and p.trunk_for("junk") is None
    with pytest.raises(ValueError, match="bad source network"):
        Trunk.from_config("x", ["300.0.0.0/8"])


def test_untrusted_gets_403_and_is_counted() -> None:
    p = policy()
    verdict = p.screen(request(), ("127.0.0.99", 5060), 0.0)
    assert verdict.response is not None and verdict.response.status == 403
    assert verdict.response.headers.get("reason") == (
        'Q.850;cause=21;text="call rejected: untrusted source"')
    assert verdict.trunk_id is None
    assert p.screen(request("ACK"), ("127.0.0.99", 5060), 0.0).drop
    assert p.untrusted["127.0.0.99"] == 2 and p.untrusted_total == 2


def test_trusted_options_ping_gets_200() -> None:
    verdict = policy().screen(request("OPTIONS"), TRUSTED, 0.0)
    assert verdict.response is not None and verdict.response.status == 200
    assert verdict.trunk_id == "tx-state-prison"


def test_trusted_invite_passes_with_trunk_id() -> None:
    verdict = policy().screen(request(), TRUSTED, 0.0)
    assert verdict.response is None and verdict.trunk_id == "tx-state-prison"


def test_rate_limit_answers_503_with_retry_after() -> None:
    p = policy(invite_rate=2.0, invite_burst=3.0, retry_after=7)
    codes = [p.screen(request(), TRUSTED, 0.0).response for _ in range(4)]
    assert codes[:3] == [None, None, None]
    assert codes[3] is not None and codes[3].status == 503
    assert codes[3].headers.get("retry-after") == "7"
    assert "cause=42" in (codes[3].headers.get("reason") or "")
    assert p.rate_limited["127.0.0.11"] == 1
    assert p.screen(request(), TRUSTED, 0.5).response is None  # refilled one token
    # In-dialog requests are never rate limited.
    assert p.screen(request("BYE", to_tag="x"), TRUSTED, 0.5).response is None


def authorize(req: Request, challenge: str, algorithm: str, *, nc: str = "00000001",
              password: str = "s3cret", user: str = "al") -> None:
    _, params = parse_auth_params(challenge)
    response = digest_response(algorithm, user, params["realm"], password, req.method, req.uri,
                               params["nonce"], nc, "abc", "auth")
    req.headers.set("authorization", (
        f'Digest username="{user}", realm="{params["realm"]}", nonce="{params["nonce"]}", '
        f'uri="{req.uri}", response="{response}", algorithm={algorithm}, cnonce="abc", '
        f'qop=auth, nc={nc}, opaque="{params["opaque"]}"'))


@pytest.mark.parametrize("algorithm", ["SHA-256", "MD5"])
def test_digest_challenge_and_success(algorithm: str) -> None:
    p = policy()
    source = ("127.0.0.12", 5060)
    first = p.screen(request(), source, 0.0)
    assert first.response is not None and first.response.status == 401
    challenges = first.response.headers.get_all("www-authenticate")
    assert [c.split("algorithm=")[1].split(",")[0] for c in challenges] == ["SHA-256", "MD5"]
    challenge = next(c for c in challenges if f"algorithm={algorithm}," in c)
    req = request(branch="z9hG4bK2")
    authorize(req, challenge, algorithm)
    ok = p.screen(req, source, 1.0)
    assert ok.response is None and ok.trunk_id == "al-county-jail"
    # The same header again is a replay.
    again = p.screen(req, source, 2.0)
    assert again.response is not None and again.response.status == 401
    assert "stale=true" in again.response.headers.get("www-authenticate")  # type: ignore
    # A higher nonce count on the same nonce is fine.
    authorize(req, challenge, algorithm, nc="00000002")
    assert p.screen(req, source, 3.0).response is None


def test_digest_failures() -> None:
    p = policy()
    source = ("127.0.0.12", 5060)
    challenge = p.screen(request(), source, 0.0).response.headers.get(  # type: ignore
        "www-authenticate")
    req = request()
    authorize(req, challenge, "SHA-256", password="wrong")
    assert p.screen(req, source, 1.0).response.status == 401  # type: ignore[union-attr]
    assert p.auth_failures["127.0.0.12"] == 1
    authorize(req, challenge, "SHA-256")
    expired = p.screen(req, source, 1000.0).response
    assert expired is not None and "stale=true" in expired.headers.get("www-authenticate")  # type: ignore
    forged = challenge.replace('nonce="', 'nonce="0')
    authorize(req, forged, "SHA-256")
    assert p.screen(req, source, 1.0).response.status == 401  # type: ignore[union-attr]
    # Credentials from the right trunk do not help an untrusted source.
    authorize(req, challenge, "SHA-256", nc="00000009")
    assert p.screen(req, ("127.0.0.99", 5060), 1.0).response.status == 403  # type: ignore


def test_digest_replay_tracking_is_bounded() -> None:
    auth = DigestAuthenticator("ics", max_tracked_nonces=2)
    users = {"al": "s3cret"}
    reqs = []
    for i in range(3):
        req = request(branch=f"z9hG4bK{i}")
        authorize(req, auth.challenge_headers(float(i))[0][1], "SHA-256")
        reqs.append(req)
        assert auth.verify(req, users, float(i) + 0.5).ok
    # The first nonce's history was dropped; it must not become replayable.
    assert not auth.verify(reqs[0], users, 3.0).ok


def test_endpoint_with_policy_never_lets_untrusted_through() -> None:
    endpoint = Endpoint(screen=policy())
    endpoint.receive_datagram(invite_bytes(), ("127.0.0.99", 5060), 0.0)
    replies = endpoint.datagrams_to_send()
    assert [r.data[:12] for r in replies] == [b"SIP/2.0 403 "]
    (event,) = drain(endpoint)
    assert isinstance(event, MessageRejected) and event.status == 403
    endpoint.receive_datagram(invite_bytes(), ("127.0.0.99", 5060), 0.1)  # retransmission
    assert [r.data[:12] for r in endpoint.datagrams_to_send()] == [b"SIP/2.0 403 "]
    # Stateless: nothing kept, nothing retransmitted towards a possibly spoofed source.
    assert endpoint.transaction_count == 0 and endpoint.get_timer() is None
    assert [type(e) for e in drain(endpoint)] == [MessageRejected]
    endpoint.receive_datagram(invite_bytes(branch="z9hG4bKtrusted"), TRUSTED, 0.0)
    events = drain(endpoint)
    assert isinstance(events[0], RequestReceived) and events[0].trunk_id == "tx-state-prison"


methods = st.sampled_from(["INVITE", "OPTIONS", "BYE", "CANCEL", "INFO", "UPDATE", "REGISTER",
                           "MESSAGE", "ACK", "SUBSCRIBE"])
untrusted_hosts = st.one_of(
    st.ip_addresses(v=4).map(str).filter(lambda h: h not in ("127.0.0.11", "127.0.0.12")
                                         and not h.startswith("10.")),
    st.ip_addresses(v=6).map(str).filter(lambda h: not h.startswith("fd00:12:")
                                         and not h.startswith("::ffff:")),
)


@settings(max_examples=300, deadline=None)
@given(method=methods, host=untrusted_hosts, to_tag=st.one_of(st.none(), st.text(
    "abc123", min_size=1, max_size=5)), with_auth=st.booleans())
def test_untrusted_source_never_gets_past_403(method: str, host: str, to_tag: str | None,
                                              with_auth: bool) -> None:
    endpoint = Endpoint(screen=policy())
    extra = ['Authorization: Digest username="al", realm="ics", nonce="x", uri="sip:a", '
             'response="0"'] if with_auth else []
    endpoint.receive_datagram(invite_bytes(method=method, to_tag=to_tag, extra=extra),
                              (host, 5060), 0.0)
    replies = endpoint.datagrams_to_send()
    events = drain(endpoint)
    assert not any(isinstance(e, RequestReceived) for e in events)
    if method == "ACK":
        assert replies == []
        assert not any(isinstance(e, AckReceived) for e in events)
    else:
        assert [r.data[:12] for r in replies] == [b"SIP/2.0 403 "]


def test_per_source_counters_are_bounded() -> None:
    p = policy()
    p.max_tracked_sources = 3
    for i in range(10):
        p.screen(request(), (f"192.0.2.{i}", 5060), 0.0)
    assert len(p.untrusted) == 4 and p.untrusted["*"] == 7 and p.untrusted_total == 10


def test_trunk_with_its_own_realm() -> None:
    p = TrunkPolicy([Trunk.from_config("ak", ["127.0.0.13"], {"ak": "pw"}, realm="ak.example")])
    source = ("127.0.0.13", 5060)
    challenge = p.screen(request(), source, 0.0).response.headers.get(  # type: ignore
        "www-authenticate")
    assert 'realm="ak.example"' in challenge
    req = request()
    authorize(req, challenge, "SHA-256", user="ak", password="pw")
    assert p.screen(req, source, 1.0).response is None
