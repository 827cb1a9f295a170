"""Family alert e-mail: low balance and refund status, through the configured SMTP relay.

A sweep (``FamilyAlerts.run_once``, every ``check_interval_seconds`` under
``ics serve``) looks at each account whose holder asked for alerts: a
balance below the holder's threshold is announced once, until it recovers;
each refund state not yet announced is announced. Nothing is marked as sent
unless the relay took the message, so a relay that is down delays alerts and
loses none. Every message carries a signed unsubscribe link. Where several
nodes (or ``ics serve`` and ``ics api`` on one file) share the store, one of
them sweeps per interval: each claims it first (``FamilyStore.claim_sweep``).
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import logging
import smtplib
import ssl
from collections.abc import Callable
from dataclasses import replace
from datetime import datetime
from email.message import EmailMessage
from typing import Any
from urllib.parse import quote as url_quote

from accounts import Account, AccountsError, Refund
from accounts.family import AlertPreferences, FamilyAccess, refund_marks
from api.family_i18n import FamilyTranslator
from rating import Product, cents_str

log = logging.getLogger(__name__)

MAIL_STRINGS = {
    "en": {
        "low.subject": "Low balance on your calling account",
        "low.body": "The balance available on the account for {numbers} is {balance}, below "
                    "the {threshold} you chose.\n\nSee your account: {url}\n",
        "refund.subject": "Your refund request: {state}",
        "refund.body": "Your refund request of {amount} ({method}) for the account of "
                       "{numbers} is now: {state}.\n\nSee your account: {url}\n",
        "footer": "\n--\nYou get this e-mail because you asked for alerts. To stop them: {url}\n",
    },
    "es": {
        "low.subject": "Saldo bajo en su cuenta de llamadas",
        "low.body": "El saldo disponible de la cuenta de {numbers} es {balance}, menor que "
                    "los {threshold} que usted eligió.\n\nVea su cuenta: {url}\n",
        "refund.subject": "Su solicitud de reembolso: {state}",
        "refund.body": "Su solicitud de reembolso de {amount} ({method}) de la cuenta de "
                       "{numbers} ahora está: {state}.\n\nVea su cuenta: {url}\n",
        "footer": "\n--\nRecibe este correo porque pidió avisos. Para dejar de recibirlos: "
                  "{url}\n",
    },
}


def _signature(secret: str, account_id: str) -> str:
    mac = hmac.new(secret.encode(), f"unsubscribe\x00{account_id}".encode(), hashlib.sha256)
    return base64.urlsafe_b64encode(mac.digest()).decode().rstrip("=")


def unsubscribe_token(secret: str, account_id: str) -> str:
    """``<account id>.<signature>``: the link needs no session and names one account."""
    return f"{account_id}.{_signature(secret, account_id)}"


def verify_token(secret: str, token: str) -> str | None:
    """The account id a token was signed for, or None."""
    account_id, dot, signature = token.rpartition(".")
    if not dot or not account_id or len(token) > 300:
        return None
    expected = _signature(secret, account_id)
    if not hmac.compare_digest(expected.encode(), signature.encode("utf-8", "surrogateescape")):
        return None
    return account_id


def account_of_token(app: Any, token: str) -> str | None:
    smtp = getattr(app.state.context.config, "smtp", None)
    if smtp is None or not token:
        return None
    return verify_token(smtp.link_secret, token)


class SmtpMailer:
    """Sends one message through the relay (blocking smtplib, run in a thread)."""

    def __init__(self, config: Any) -> None:
        self.config = config

    def _send(self, message: EmailMessage) -> None:
        c = self.config
        context = ssl.create_default_context()
        smtp: smtplib.SMTP
        if c.security == "tls":
            smtp = smtplib.SMTP_SSL(c.host, c.port, timeout=c.timeout_seconds, context=context)
        else:
            smtp = smtplib.SMTP(c.host, c.port, timeout=c.timeout_seconds)
        with smtp:
            if c.security == "starttls":
                smtp.starttls(context=context)
            if c.username:
                smtp.login(c.username, c.password)
            smtp.send_message(message)

    async def send(self, message: EmailMessage) -> None:
        await asyncio.to_thread(self._send, message)


class FamilyAlerts:
    """The alert sweep over every account with alert preferences."""

    def __init__(self, family: FamilyAccess, config: Any, mailer: Any | None = None,
                 clock: Callable[[], datetime] | None = None) -> None:
        self.family = family
        self.config = config
        self.mailer = mailer or SmtpMailer(config)
        self.clock = clock
        self.sent = 0

    @property
    def interval(self) -> float:
        return float(self.config.check_interval_seconds)

    def _url(self, path: str) -> str:
        return str(self.config.public_url).rstrip("/") + path

    def _message(self, prefs: AlertPreferences, account: Account, kind: str,
                 **values: str) -> EmailMessage:
        lang = prefs.language if prefs.language in MAIL_STRINGS else "en"
        words = MAIL_STRINGS[lang]
        token = unsubscribe_token(self.config.link_secret, account.id)
        unsubscribe = self._url(f"/account/unsubscribe?token={url_quote(token)}")
        values = {"numbers": ", ".join(account.numbers),
                  "url": self._url(f"/account/{account.id}"), **values}
        message = EmailMessage()
        message["From"] = self.config.sender
        message["To"] = prefs.email
        message["Subject"] = words[f"{kind}.subject"].format(**values)
        message["List-Unsubscribe"] = f"<{unsubscribe}>"
        message["Content-Language"] = lang
        message.set_content(words[f"{kind}.body"].format(**values)
                            + words["footer"].format(url=unsubscribe))
        return message

    @staticmethod
    def available_units(account: Account) -> int:
        """What calls can still spend: the balance, or a Direct Bill's room under its limit."""
        if account.product is Product.DIRECT_BILL:
            return account.balance_units + account.credit_limit_units
        return account.balance_units

    async def _send(self, message: EmailMessage) -> bool:
        try:
            await self.mailer.send(message)
        except (OSError, smtplib.SMTPException) as exc:
            log.warning("alert e-mail to %s not sent: %s", message["To"], exc)
            return False
        self.sent += 1
        return True

    async def run_once(self, at: datetime, *, claim: bool = False) -> int:
        """Check every account once; the number of messages sent.

        With ``claim``, only if no other node (or process on the same file)
        swept within the last interval: several nodes sweep the same accounts.
        """
        before = self.sent
        store = self.family.store
        if claim and not await store.claim_sweep(at, self.interval * 0.9):
            return 0
        for account_id in await store.alert_accounts():
            prefs = await store.get_alerts(account_id)
            if not prefs.email:
                continue
            try:
                account = await self.family.account(account_id)
            except AccountsError:
                continue
            changed = await self._low_balance(prefs, account)
            changed = await self._refunds(changed, account)
            if changed != prefs:
                await store.put_alerts(changed)
        return self.sent - before

    async def _low_balance(self, prefs: AlertPreferences, account: Account) -> AlertPreferences:
        threshold = prefs.low_balance_units
        if threshold is None:
            return prefs
        available = self.available_units(account)
        if available < threshold and not prefs.low_balance_sent:
            message = self._message(prefs, account, "low", balance=f"${cents_str(available)}",
                                    threshold=f"${cents_str(threshold)}")
            if await self._send(message):
                return replace(prefs, low_balance_sent=True)
        elif available >= threshold and prefs.low_balance_sent:
            return replace(prefs, low_balance_sent=False)
        return prefs

    async def _refunds(self, prefs: AlertPreferences, account: Account) -> AlertPreferences:
        refunds = await self.family.service.store.list_refunds(account_id=account.id)
        marks = refund_marks(refunds)
        if not prefs.refund_alerts:
            return replace(prefs, refund_notified=marks)
        t = FamilyTranslator(prefs.language if prefs.language in MAIL_STRINGS else "en")
        notified = set(prefs.refund_notified)
        for refund in sorted(refunds, key=lambda r: r.requested_at):
            mark = f"{refund.id}:{refund.status}"
            if mark in notified:
                continue
            if await self._send(self._refund_message(prefs, account, refund, t)):
                notified.add(mark)
        # Marks of states since left behind are dropped: the set stays one per refund.
        current = set(marks)
        return replace(prefs, refund_notified=tuple(sorted(notified & current)))

    def _refund_message(self, prefs: AlertPreferences, account: Account, refund: Refund,
                        t: FamilyTranslator) -> EmailMessage:
        return self._message(prefs, account, "refund",
                             amount=f"${cents_str(refund.amount_units)}",
                             method=t(f"refund_method.{refund.method}"),
                             state=t(f"refund.{refund.status}"))

    async def run_forever(self, interval: float | None = None) -> None:
        """Sweep every ``interval`` seconds (the config's ``check_interval_seconds``)."""
        from datetime import UTC

        every = self.interval if interval is None else float(interval)
        while True:
            await asyncio.sleep(every)
            try:
                await self.run_once(self.clock() if self.clock else datetime.now(UTC),
                                    claim=True)
            except Exception:  # the store or relay may be down; the next sweep tries again
                log.warning("family alert sweep failed", exc_info=True)
