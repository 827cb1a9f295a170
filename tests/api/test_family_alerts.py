"""Family alert e-mail through a real local SMTP server (aiosmtpd), and the unsubscribe link."""

from __future__ import annotations

import email
import re
from collections.abc import Iterator
from email.message import Message
from email.policy import default
from typing import Any
from urllib.parse import unquote, urlsplit

import httpx
import pytest
from aiosmtpd.controller import Controller

from api import create_app
from api.family_alerts import unsubscribe_token, verify_token
from settings.config import SmtpConfig
from tests.api.conftest import NOW, free_port
from tests.api.family_helpers import AC, cheap_family

SECRET = "test-link-secret-0123456789"


class Inbox:
    def __init__(self) -> None:
        self.messages: list[Message] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.messages.append(email.message_from_bytes(envelope.content, policy=default))
        return "250 OK"


@pytest.fixture
def smtp() -> Iterator[tuple[Inbox, SmtpConfig]]:
    inbox = Inbox()
    port = free_port()
    controller = Controller(inbox, hostname="127.0.0.1", port=port)
    controller.start()
    config = SmtpConfig(host="127.0.0.1", port=port, security="none",
                        sender="alerts@ics.example", public_url="https://calls.example",
                        link_secret=SECRET, timeout_seconds=5)
    try:
        yield inbox, config
    finally:
        controller.stop()


@pytest.fixture
def app(config: Any, service: Any, smtp: tuple[Inbox, SmtpConfig]) -> Any:
    with_smtp = config.model_copy(update={"smtp": smtp[1]})
    return cheap_family(create_app(with_smtp, service, clock=lambda: NOW))


async def test_low_balance_mail_once_until_it_recovers(
    app: Any, service: Any, smtp: tuple[Inbox, SmtpConfig]
) -> None:
    inbox, _ = smtp
    alerts = app.state.family_alerts
    await app.state.family.set_alerts(AC, email="family@example.com",
                                      low_balance_units=300_000, refund_alerts=False)
    assert await alerts.run_once(NOW) == 1
    [mail] = inbox.messages
    assert mail["To"] == "family@example.com" and mail["From"] == "alerts@ics.example"
    body = mail.get_content()
    assert "$25.00" in body and "$30.00" in body
    assert mail["List-Unsubscribe"].startswith("<https://calls.example/account/unsubscribe?")
    # Not again while it stays low.
    assert await alerts.run_once(NOW) == 0
    await service.deposit(AC, "10.00", "card", "top-up", NOW)
    assert await alerts.run_once(NOW) == 0
    assert (await app.state.family.alerts(AC)).low_balance_sent is False
    await service.request_refund(AC, NOW)  # the balance goes to 0: low again
    assert await alerts.run_once(NOW) == 1
    assert len(inbox.messages) == 2


async def test_refund_status_mail_in_the_holders_language(
    app: Any, service: Any, smtp: tuple[Inbox, SmtpConfig]
) -> None:
    inbox, _ = smtp
    alerts = app.state.family_alerts
    await service.deposit(AC, "100.00", "card", "big", NOW)
    await app.state.family.set_alerts(AC, email="familia@example.com", low_balance_units=None,
                                      refund_alerts=True, language="es")
    assert await alerts.run_once(NOW) == 0
    refund = await service.request_refund(AC, NOW)  # $125.00: held for review
    assert await alerts.run_once(NOW) == 1
    assert "En espera de revisión" in inbox.messages[-1]["Subject"]
    await service.approve_refund(refund.id, NOW)
    assert await alerts.run_once(NOW) == 1
    assert "Aprobado" in inbox.messages[-1]["Subject"]
    assert "$125.00" in inbox.messages[-1].get_content()
    assert await alerts.run_once(NOW) == 0


async def test_relay_down_loses_no_alert(
    app: Any, smtp: tuple[Inbox, SmtpConfig]
) -> None:
    inbox, config = smtp
    alerts = app.state.family_alerts
    await app.state.family.set_alerts(AC, email="family@example.com",
                                      low_balance_units=300_000, refund_alerts=False)
    good = alerts.mailer.config
    alerts.mailer.config = config.model_copy(update={"port": free_port()})
    assert await alerts.run_once(NOW) == 0
    assert (await app.state.family.alerts(AC)).low_balance_sent is False
    alerts.mailer.config = good
    assert await alerts.run_once(NOW) == 1
    assert len(inbox.messages) == 1


async def test_unsubscribe_link_works(app: Any, smtp: tuple[Inbox, SmtpConfig]) -> None:
    inbox, _ = smtp
    await app.state.family.set_alerts(AC, email="family@example.com",
                                      low_balance_units=300_000, refund_alerts=True)
    await app.state.family_alerts.run_once(NOW)
    body = inbox.messages[0].get_content()
    link = re.search(r"https://calls\.example(/account/unsubscribe\?token=\S+)", body)
    assert link
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                 base_url="https://calls.example") as client:
        page = await client.get(link.group(1))
        assert page.status_code == 200 and 'id="unsubscribe-form"' in page.text
        token = unquote(urlsplit(link.group(1)).query.partition("=")[2])
        forged = await client.post("/account/unsubscribe", data={"token": token[:-2] + "xx"})
        assert forged.status_code == 400
        assert (await app.state.family.alerts(AC)).refund_alerts is True
        done = await client.post("/account/unsubscribe", data={"token": token})
        assert done.status_code == 200 and 'id="unsubscribed"' in done.text
    prefs = await app.state.family.alerts(AC)
    assert prefs.low_balance_units is None and prefs.refund_alerts is False


def test_tokens_name_one_account() -> None:
    token = unsubscribe_token(SECRET, "ac.with.dots")
    assert verify_token(SECRET, token) == "ac.with.dots"
    assert verify_token("another-secret-0123456789", token) is None
    assert verify_token(SECRET, token.replace("ac.", "ad.", 1)) is None
    assert verify_token(SECRET, "") is None


def test_smtp_config_is_checked() -> None:
    base = {"host": "smtp.example", "sender": "a@b.example", "public_url": "https://x.example",
            "link_secret": SECRET}
    assert SmtpConfig(**base).security == "starttls"
    for bad in ({"security": "none"}, {"link_secret": "short"}, {"sender": "nobody"},
                {"public_url": "ftp://x"}, {"username": "u"}):
        with pytest.raises(ValueError):
            SmtpConfig(**{**base, **bad})


async def test_a_claimed_sweep_runs_once_per_interval(
    app: Any, smtp: tuple[Inbox, SmtpConfig]
) -> None:
    inbox, _ = smtp
    alerts = app.state.family_alerts
    await app.state.family.set_alerts(AC, email="family@example.com",
                                      low_balance_units=300_000, refund_alerts=False)
    assert await alerts.run_once(NOW, claim=True) == 1
    await app.state.family.set_alerts(AC, email="family@example.com",
                                      low_balance_units=290_000, refund_alerts=False)
    # Another node's sweep within the interval does nothing.
    assert await alerts.run_once(NOW, claim=True) == 0
    assert len(inbox.messages) == 1
