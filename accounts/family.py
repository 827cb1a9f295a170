"""The account holder's own access: passcodes, set-up codes, sessions, sign-in throttling, alerts.

A family (the holder of an AdvanceConnect or Direct Bill account) signs in
with the account's phone number and a passcode they chose. The passcode is
set with a one-time code the admin API issues; it is kept only as an argon2
hash. A session is a random token: the store keeps its SHA-256 only, under
the account it belongs to, so a stolen store does not hand out sessions.

The records here are kept by a ``FamilyStore``; both account stores have one
(``accounts.family_sqlite``, ``accounts.redis.family``), chosen by
``family_store_for``. The money side of what a family does on its pages
(refunds, closure, blocks, statements) goes through ``AccountService``.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any, Protocol

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from accounts.errors import AccountsError, InvalidRequest, InvalidState
from accounts.model import Account, AccountStatus, Refund
from accounts.service import AccountService
from accounts.service_core import normalize_number
from rating import Jurisdiction, Product, RatingError, classify

#: Products whose holder is a called party, and so may have a family sign-in.
FAMILY_PRODUCTS = frozenset({Product.ADVANCE_CONNECT, Product.DIRECT_BILL})
#: Passcode length limits (characters).
PASSCODE_MIN = 8
PASSCODE_MAX = 128
#: Letters of a set-up code: no 0/O or 1/I/L to misread on the phone.
_CODE_ALPHABET = "23456789ABCDEFGHJKMNPQRSTUVWXYZ"
SETUP_CODE_LENGTH = 10
#: Most called numbers one Direct Bill account pays for.
MAX_DIRECT_BILL_NUMBERS = 5


class SignInRefused(AccountsError):
    """Wrong number, wrong passcode or no passcode set: one answer for all three."""

    http_status = 401


class FamilyRefusal(AccountsError):
    """A holder's request the rules refuse; ``reason`` names the rule (for the page's words)."""

    http_status = 409

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


def _number(number: str) -> str:
    try:
        return normalize_number(number)
    except InvalidRequest:
        raise FamilyRefusal("number.invalid", "not a number we can call") from None


class SignInThrottled(AccountsError):
    """Too many failed sign-ins for this number or from this address lately."""

    http_status = 429


@dataclass(frozen=True)
class FamilyPolicy:
    """How long things last and how many wrong passcodes are tolerated."""

    session_seconds: int = 30 * 60
    setup_code_seconds: int = 7 * 24 * 3600
    throttle_window_seconds: int = 15 * 60
    max_failures_per_number: int = 5
    max_failures_per_address: int = 20
    #: argon2id parameters (argon2-cffi's defaults are the RFC 9106 low-memory profile).
    argon2_time_cost: int = 3
    argon2_memory_kib: int = 65_536
    argon2_parallelism: int = 4

    def __post_init__(self) -> None:
        for name in ("session_seconds", "setup_code_seconds", "throttle_window_seconds",
                     "max_failures_per_number", "max_failures_per_address"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be positive")


@dataclass(frozen=True)
class FamilyCredential:
    account_id: str
    updated_at: datetime
    passcode_hash: str | None = None
    #: SHA-256 of the one-time set-up code (it is random and long: no need for argon2).
    setup_code_hash: str | None = None
    setup_expires_at: datetime | None = None


@dataclass(frozen=True)
class FamilySession:
    account_id: str
    #: SHA-256 of the token in the cookie.
    token_hash: str
    csrf_token: str
    created_at: datetime
    expires_at: datetime


@dataclass(frozen=True)
class AlertPreferences:
    """Where and when a holder wants e-mail, and what has been sent already."""

    account_id: str
    email: str = ""
    #: Low-balance threshold in units; None: no low-balance alert.
    low_balance_units: int | None = None
    refund_alerts: bool = False
    #: A low-balance alert was sent and the balance has not recovered since.
    low_balance_sent: bool = False
    #: "refund id:status" pairs already announced.
    refund_notified: tuple[str, ...] = ()
    #: The language the holder saved the preferences in: mail is written in it.
    language: str = "en"

    @property
    def wants_mail(self) -> bool:
        return bool(self.email) and (self.low_balance_units is not None or self.refund_alerts)


def alerts_json(preferences: AlertPreferences) -> str:
    data = asdict(preferences)
    data.pop("account_id")
    data["refund_notified"] = list(preferences.refund_notified)
    return json.dumps(data, sort_keys=True)


def alerts_from_json(account_id: str, text: str | None) -> AlertPreferences:
    if not text:
        return AlertPreferences(account_id)
    data = json.loads(text)
    data["refund_notified"] = tuple(data.get("refund_notified", ()))
    return AlertPreferences(account_id=account_id, **data)



class FamilyStore(Protocol):
    """What a store keeps for family sign-in and alerts (one implementation per store)."""

    async def get_credential(self, account_id: str) -> FamilyCredential | None: ...

    async def put_credential(self, credential: FamilyCredential) -> None: ...

    async def add_session(self, session: FamilySession) -> None: ...

    async def get_session(self, account_id: str, token_hash: str) -> FamilySession | None: ...

    async def delete_session(self, account_id: str, token_hash: str) -> None: ...

    async def delete_sessions(self, account_id: str) -> None:
        """Every session of the account (a passcode change signs everyone out)."""

    async def count_failure(self, key: str, at: datetime, window_seconds: int) -> int:
        """Record one failed sign-in under ``key``; the failures within the window."""

    async def failures(self, key: str, at: datetime, window_seconds: int) -> int: ...

    async def clear_failures(self, key: str) -> None: ...

    async def get_alerts(self, account_id: str) -> AlertPreferences: ...

    async def put_alerts(self, preferences: AlertPreferences) -> None: ...

    async def alert_accounts(self) -> list[str]:
        """Ids of accounts with alert preferences stored."""

    async def claim_sweep(self, at: datetime, seconds: float) -> bool:
        """True for the one caller (node) that may run the alert sweep for ``seconds``."""


def family_store_for(store: Any) -> FamilyStore:
    """The ``FamilyStore`` over an open account store (SQLite or Redis)."""
    from accounts.redis import RedisAccountStore
    from accounts.sqlite_store import SqliteAccountStore

    if isinstance(store, SqliteAccountStore):
        from accounts.family_sqlite import SqliteFamilyStore

        return SqliteFamilyStore(store)
    if isinstance(store, RedisAccountStore):
        from accounts.redis.family import RedisFamilyStore

        return RedisFamilyStore(store)
    raise TypeError(f"no family store for {type(store).__name__}")


def sha256_hex(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8", "surrogateescape")).hexdigest()


def check_passcode(passcode: str) -> None:
    if not isinstance(passcode, str) or not PASSCODE_MIN <= len(passcode) <= PASSCODE_MAX:
        raise InvalidRequest(
            f"passcode: must be {PASSCODE_MIN} to {PASSCODE_MAX} characters long")
    if any(not ch.isprintable() for ch in passcode):
        raise InvalidRequest("passcode: contains a control character")


def normalize_setup_code(code: str) -> str:
    """A set-up code as typed (spaces, dashes, lower case) in its canonical form."""
    return "".join(ch for ch in code.upper() if ch.isalnum())


@dataclass(frozen=True)
class SignedIn:
    """A new session: the cookie value to hand to the browser, and the session."""

    cookie: str
    session: FamilySession


@dataclass
class FamilyAccess:
    """Sign-in, sessions and alert preferences of family accounts, over ``AccountService``."""

    service: AccountService
    store: FamilyStore
    policy: FamilyPolicy = field(default_factory=FamilyPolicy)

    def __post_init__(self) -> None:
        self._hasher = PasswordHasher(
            time_cost=self.policy.argon2_time_cost,
            memory_cost=self.policy.argon2_memory_kib,
            parallelism=self.policy.argon2_parallelism,
        )
        # Verified when a number has no passcode, so that timing does not tell
        # (made on first use: hashing costs as much as a sign-in).
        self._decoy: str | None = None

    # -- accounts ----------------------------------------------------------
    async def account(self, account_id: str) -> Account:
        return await self.service.store.get_account(account_id)

    async def _family_accounts(self, number: str) -> list[Account]:
        e164 = normalize_number(number)
        found = await self.service.store.list_accounts(number_e164=e164)
        return [a for a in found if a.product in FAMILY_PRODUCTS]

    # -- set-up codes and passcodes ------------------------------------------
    async def issue_setup_code(self, account_id: str, at: datetime) -> tuple[str, datetime]:
        """A new one-time code for the holder to set a passcode with; the old one lapses."""
        account = await self.account(account_id)
        if account.product not in FAMILY_PRODUCTS:
            raise InvalidRequest(
                f"a {account.product} account has no family sign-in (only AdvanceConnect"
                " and Direct Bill accounts do)")
        if account.status is AccountStatus.CLOSED:
            raise InvalidState(f"account {account_id!r} is closed")
        code = "".join(secrets.choice(_CODE_ALPHABET) for _ in range(SETUP_CODE_LENGTH))
        expires = at + timedelta(seconds=self.policy.setup_code_seconds)
        old = await self.store.get_credential(account_id)
        credential = FamilyCredential(
            account_id=account_id, updated_at=at,
            passcode_hash=old.passcode_hash if old else None,
            setup_code_hash=sha256_hex(code), setup_expires_at=expires)
        await self.store.put_credential(credential)
        return code, expires

    async def set_passcode(
        self, number: str, setup_code: str, passcode: str, address: str, at: datetime
    ) -> SignedIn:
        """Use a set-up code to choose a passcode; signs the holder in.

        A wrong code counts as a failed sign-in (it is throttled the same way).
        Every earlier session of the account ends.
        """
        check_passcode(passcode)
        e164 = normalize_number(number)
        await self._check_throttle(e164, address, at)
        given = sha256_hex(normalize_setup_code(setup_code))
        for account in await self._family_accounts(e164):
            credential = await self.store.get_credential(account.id)
            if credential is None or credential.setup_code_hash is None:
                continue
            if credential.setup_expires_at is None or credential.setup_expires_at <= at:
                continue
            if hmac.compare_digest(credential.setup_code_hash, given):
                await self.store.put_credential(replace(
                    credential, passcode_hash=self._hasher.hash(passcode),
                    setup_code_hash=None, setup_expires_at=None, updated_at=at))
                await self.store.delete_sessions(account.id)
                await self._forgive(e164)
                return await self._new_session(account.id, at)
        await self._failed(e164, address, at)
        raise SignInRefused("the number or the set-up code is not right, or the code expired")

    async def sign_in(self, number: str, passcode: str, address: str, at: datetime) -> SignedIn:
        """A session for the account of ``number`` whose passcode is ``passcode``."""
        if not isinstance(passcode, str) or len(passcode) > PASSCODE_MAX:
            raise InvalidRequest(f"passcode: longer than {PASSCODE_MAX} characters")
        e164 = normalize_number(number)
        await self._check_throttle(e164, address, at)
        checked = False
        for account in await self._family_accounts(e164):
            credential = await self.store.get_credential(account.id)
            if credential is None or credential.passcode_hash is None:
                continue
            checked = True
            if self._verify(credential.passcode_hash, passcode):
                if account.status is AccountStatus.CLOSED:
                    break
                await self._forgive(e164)
                return await self._new_session(account.id, at)
        if not checked:
            if self._decoy is None:
                self._decoy = self._hasher.hash(secrets.token_hex(16))
            self._verify(self._decoy, passcode)
        await self._failed(e164, address, at)
        raise SignInRefused("the number or the passcode is not right")

    def _verify(self, hashed: str, passcode: str) -> bool:
        try:
            return self._hasher.verify(hashed, passcode)
        except (VerificationError, InvalidHashError):
            return False

    # -- throttling ----------------------------------------------------------
    @staticmethod
    def _keys(e164: str, address: str) -> tuple[str, str]:
        return f"number:{e164}", f"address:{address[:64]}"

    async def _check_throttle(self, e164: str, address: str, at: datetime) -> None:
        window = self.policy.throttle_window_seconds
        by_number, by_address = self._keys(e164, address)
        if await self.store.failures(by_number, at, window) >= \
                self.policy.max_failures_per_number:
            raise SignInThrottled("too many wrong passcodes for this number; try again later")
        if await self.store.failures(by_address, at, window) >= \
                self.policy.max_failures_per_address:
            raise SignInThrottled("too many wrong passcodes from here; try again later")

    async def _failed(self, e164: str, address: str, at: datetime) -> None:
        window = self.policy.throttle_window_seconds
        for key in self._keys(e164, address):
            await self.store.count_failure(key, at, window)

    async def _forgive(self, e164: str) -> None:
        await self.store.clear_failures(f"number:{e164}")

    # -- sessions --------------------------------------------------------------
    async def _new_session(self, account_id: str, at: datetime) -> SignedIn:
        token = secrets.token_urlsafe(32)
        session = FamilySession(
            account_id=account_id, token_hash=sha256_hex(token),
            csrf_token=secrets.token_urlsafe(32), created_at=at,
            expires_at=at + timedelta(seconds=self.policy.session_seconds))
        await self.store.add_session(session)
        # Account ids never hold ':'; the id tells the store where the session is.
        return SignedIn(cookie=f"{account_id}:{token}", session=session)

    async def session(self, cookie: str | None, at: datetime) -> FamilySession | None:
        """The live session a cookie names, or None (unknown, malformed or expired)."""
        if not cookie or len(cookie) > 300:
            return None
        account_id, sep, token = cookie.partition(":")
        if not sep or not account_id or not token:
            return None
        session = await self.store.get_session(account_id, sha256_hex(token))
        if session is None:
            return None
        if session.expires_at <= at:
            await self.store.delete_session(account_id, session.token_hash)
            return None
        return session

    async def sign_out(self, session: FamilySession) -> None:
        await self.store.delete_session(session.account_id, session.token_hash)

    # -- refunds ---------------------------------------------------------------
    async def request_refund(self, account_id: str, at: datetime) -> Refund:
        """The account service's refund of the whole balance, asked by the holder.

        Refused while the account is closing: the remainder is refunded when
        the closure hold ends, and a refund now would race the late calls the
        hold is for.
        """
        account = await self.account(account_id)
        if account.product not in (Product.ADVANCE_CONNECT, Product.DEBIT):
            raise FamilyRefusal("refund.not_prepaid", "a Direct Bill account has no prepaid"
                                " balance to refund")
        if account.status is AccountStatus.CLOSING:
            raise FamilyRefusal("refund.closing", "the account is closing; what is left is"
                                " refunded when it closes")
        if account.balance_units <= 0:
            raise FamilyRefusal("refund.none", "there is no balance to refund")
        return await self.service.request_refund(account_id, at, reason="requested by holder")

    async def request_closure(self, account_id: str, at: datetime) -> Account:
        account = await self.account(account_id)
        if account.status is not AccountStatus.OPEN:
            raise FamilyRefusal("closure.not_open", f"the account is {account.status}")
        return await self.service.request_closure(account_id, at)

    # -- numbers of a Direct Bill account --------------------------------------
    async def add_number(self, account_id: str, number: str) -> Account:
        """Add a called number to a Direct Bill account, within the facilities' rules.

        The number must be one every facility can dial, inside the North
        American plan (a Direct Bill is billed to a US number), not a
        privileged (attorney) number, and not already paid for by another
        Direct Bill account; an account has at most ``MAX_DIRECT_BILL_NUMBERS``.
        """
        account = await self.account(account_id)
        if account.product is not Product.DIRECT_BILL:
            raise FamilyRefusal("number.not_direct_bill", "only a Direct Bill account has"
                                " numbers to add")
        if account.status is not AccountStatus.OPEN:
            raise FamilyRefusal("number.not_open", f"the account is {account.status}")
        e164 = _number(number)
        if e164 in account.numbers:
            raise FamilyRefusal("number.duplicate", "already on this account")
        if len(account.numbers) >= MAX_DIRECT_BILL_NUMBERS:
            raise FamilyRefusal("number.limit", f"an account has at most"
                                f" {MAX_DIRECT_BILL_NUMBERS} numbers")
        for facility in self.service.facilities.values():
            try:
                called = classify(facility.rated, e164)
            except RatingError:
                raise FamilyRefusal("number.invalid", "not a number we can call") from None
            if called.jurisdiction is Jurisdiction.INTERNATIONAL:
                raise FamilyRefusal("number.international", "a Direct Bill account pays for"
                                    " US numbers only")
        if e164 in await self.service.store.list_privileged():
            raise FamilyRefusal("number.privileged", "an attorney's number cannot be added")
        try:
            return await self.service.store.attach_number(account_id, e164)
        except InvalidState:
            raise FamilyRefusal("number.taken", "another Direct Bill account pays for this"
                                " number") from None

    async def remove_number(self, account_id: str, number: str) -> Account:
        account = await self.account(account_id)
        if account.product is not Product.DIRECT_BILL:
            raise FamilyRefusal("number.not_direct_bill", "only a Direct Bill account has"
                                " numbers to remove")
        e164 = _number(number)
        if e164 not in account.numbers:
            raise FamilyRefusal("number.not_on_account", "not on this account")
        if len(account.numbers) <= 1:
            raise FamilyRefusal("number.last", "the account's last number cannot be removed")
        return await self.service.store.detach_number(account_id, e164)

    # -- alert preferences --------------------------------------------------------
    async def alerts(self, account_id: str) -> AlertPreferences:
        return await self.store.get_alerts(account_id)

    async def set_alerts(
        self, account_id: str, *, email: str, low_balance_units: int | None,
        refund_alerts: bool, language: str = "en",
    ) -> AlertPreferences:
        current = await self.store.get_alerts(account_id)
        notified = current.refund_notified
        if refund_alerts and not current.refund_alerts:
            # Alerts start from now: refunds as they stand are not news.
            notified = refund_marks(await self.service.store.list_refunds(account_id=account_id))
        changed = replace(
            current, email=email, low_balance_units=low_balance_units,
            refund_alerts=refund_alerts, language=language, refund_notified=notified,
            # A new threshold is judged afresh.
            low_balance_sent=current.low_balance_sent
            and current.low_balance_units == low_balance_units)
        await self.store.put_alerts(changed)
        return changed

    async def unsubscribe(self, account_id: str) -> AlertPreferences:
        current = await self.store.get_alerts(account_id)
        changed = replace(current, low_balance_units=None, refund_alerts=False,
                          low_balance_sent=False)
        await self.store.put_alerts(changed)
        return changed


def refund_marks(refunds: Sequence[Any]) -> tuple[str, ...]:
    """The "id:status" marks of refunds, as ``AlertPreferences.refund_notified`` keeps them."""
    return tuple(sorted(f"{r.id}:{r.status}" for r in refunds))
