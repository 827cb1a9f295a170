"""The family's own account pages: sign-in, balance, calls, statements, numbers, blocks,
refund and closure, alerts. Server-rendered HTML; no JavaScript needed.

Every page under ``/account/{account_id}`` needs the session of that very
account: without a live session it answers 401 (sign in again), with the
session of another account 403, whether or not the id names an account.
Every form carries the session's CSRF token (the sign-in forms a
double-submit cookie); a form that fails any check changes nothing.
"""

from __future__ import annotations

import calendar
import csv
import io
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Annotated, Any, Final

from fastapi import APIRouter, Path, Request
from fastapi.responses import Response

from accounts import (
    Account,
    AccountsError,
    CallDetailRecord,
    CdrFilter,
    InvalidRequest,
    StoreUnavailable,
    UnknownAccount,
)
from accounts.family import (
    FamilyAccess,
    FamilyRefusal,
    FamilySession,
    SignInRefused,
    SignInThrottled,
)
from api.family_web import (
    FORM_CSRF_COOKIE,
    SESSION_COOKIE,
    FormError,
    client_address,
    context_of,
    csrf_ok,
    family_of,
    form_token,
    form_token_ok,
    language,
    message,
    read_form,
    redirect,
    render,
    set_cookie,
)
from rating import Product, RatingError, cents_str, quote, to_units

router = APIRouter(prefix="/account", include_in_schema=False)

#: How far back calls and statements go.
HISTORY_DAYS: Final = 90
AccountId = Annotated[str, Path(min_length=1, max_length=100)]
_NUMBER_MAX: Final = 40
_CSRF_MAX: Final = 64


# -- sessions ------------------------------------------------------------------


@dataclass(frozen=True)
class Visit:
    """A request by the signed-in holder of the account named in the path."""

    family: FamilyAccess
    session: FamilySession
    account: Account
    now: datetime


async def _visit(request: Request, account_id: str) -> Visit | Response:
    family = family_of(request)
    if family is None:
        return message(request, "error.unavailable", status=503)
    now = context_of(request).clock()
    try:
        session = await family.session(request.cookies.get(SESSION_COOKIE), now)
    except StoreUnavailable:
        return message(request, "error.unavailable", status=503)
    if session is None:
        return message(request, "error.expired", status=401, sign_in=True)
    if session.account_id != account_id:
        # The same answer whether or not the id names an account.
        return message(request, "error.forbidden", status=403, session=session)
    try:
        account = await family.account(account_id)
    except UnknownAccount:
        return message(request, "error.forbidden", status=403, session=session)
    except StoreUnavailable:
        return message(request, "error.unavailable", status=503, session=session)
    return Visit(family, session, account, now)


async def _posted(
    request: Request, account_id: str, limits: dict[str, int]
) -> tuple[Visit, dict[str, str]] | Response:
    """The visit and form of a POST whose CSRF token is the session's."""
    visit = await _visit(request, account_id)
    if isinstance(visit, Response):
        return visit
    try:
        fields = await read_form(request, {**limits, "csrf": _CSRF_MAX})
    except FormError as exc:
        return message(request, exc.key, status=exc.status, session=visit.session)
    if not csrf_ok(visit.session, fields.get("csrf")):
        return message(request, "error.csrf", status=403, session=visit.session)
    return visit, fields


def _page(request: Request, visit: Visit, template: str, *, status: int = 200,
          **values: Any) -> Response:
    done = request.query_params.get("done")
    return render(request, template, status=status, session=visit.session,
                  account=visit.account, done=done if done in _DONE else None,
                  facility_names=_facility_names(request), **values)


#: Confirmation messages a redirect may name (``?done=``); anything else is ignored.
_DONE: Final = frozenset({"added", "removed", "refund_done", "closure_done", "saved",
                          "blocked", "unblocked"})


def _facility_names(request: Request) -> dict[str, str]:
    return {fid: str(getattr(f, "name", fid))
            for fid, f in context_of(request).config.facilities.items()}


async def _guard(request: Request, visit: Visit | None,
                 action: Callable[[], Awaitable[Response]]) -> Response:
    """Run ``action``; the store being away is a clear page, never a 500."""
    try:
        return await action()
    except StoreUnavailable:
        return message(request, "error.unavailable", status=503,
                       session=visit.session if visit else None)


# -- signing in ------------------------------------------------------------------


def _sign_in_page(request: Request, template: str, *, status: int = 200,
                  errors: dict[str, str] | None = None, number: str = "") -> Response:
    token = form_token(request)
    response = render(request, template, status=status, errors=errors or {},
                      number=number, form_token=token)
    set_cookie(response, request, FORM_CSRF_COOKIE, token)
    return response


@router.get("")
async def account_home(request: Request) -> Response:
    family = family_of(request)
    if family is None:
        return message(request, "error.unavailable", status=503)
    try:
        session = await family.session(request.cookies.get(SESSION_COOKIE),
                                       context_of(request).clock())
    except StoreUnavailable:
        return message(request, "error.unavailable", status=503)
    if session is None:
        return redirect("/account/sign-in")
    return redirect(f"/account/{session.account_id}")


@router.get("/sign-in")
async def sign_in_form(request: Request) -> Response:
    return _sign_in_page(request, "sign_in.html")


_SIGN_IN_FIELDS: Final = {"number": _NUMBER_MAX, "passcode": 128, "form_token": _CSRF_MAX}


async def _signed_in(request: Request, cookie: str) -> Response:
    account_id = cookie.partition(":")[0]
    response = redirect(f"/account/{account_id}")
    set_cookie(response, request, SESSION_COOKIE, cookie)
    return response


@router.post("/sign-in")
async def sign_in(request: Request) -> Response:
    family = family_of(request)
    if family is None:
        return message(request, "error.unavailable", status=503)
    try:
        fields = await read_form(request, _SIGN_IN_FIELDS)
    except FormError as exc:
        return _sign_in_page(request, "sign_in.html", status=exc.status,
                             errors={"form": exc.key})
    if not form_token_ok(request, fields.get("form_token")):
        return message(request, "error.csrf", status=403)
    number = fields.get("number", "").strip()
    try:
        signed = await family.sign_in(number, fields.get("passcode", ""),
                                      client_address(request), context_of(request).clock())
    except SignInThrottled:
        return _sign_in_page(request, "sign_in.html", status=429,
                             errors={"form": "error.throttled"}, number=number)
    except (SignInRefused, InvalidRequest):
        return _sign_in_page(request, "sign_in.html", status=401,
                             errors={"form": "error.sign_in"}, number=number)
    except StoreUnavailable:
        return message(request, "error.unavailable", status=503)
    return await _signed_in(request, signed.cookie)


@router.get("/set-up")
async def set_up_form(request: Request) -> Response:
    return _sign_in_page(request, "set_up.html")


@router.post("/set-up")
async def set_up(request: Request) -> Response:
    family = family_of(request)
    if family is None:
        return message(request, "error.unavailable", status=503)
    limits = {"number": _NUMBER_MAX, "setup_code": 40, "passcode": 128, "passcode_again": 128,
              "form_token": _CSRF_MAX}
    try:
        fields = await read_form(request, limits)
    except FormError as exc:
        return _sign_in_page(request, "set_up.html", status=exc.status,
                             errors={"form": exc.key})
    if not form_token_ok(request, fields.get("form_token")):
        return message(request, "error.csrf", status=403)
    number = fields.get("number", "").strip()
    passcode = fields.get("passcode", "")
    if passcode != fields.get("passcode_again", ""):
        return _sign_in_page(request, "set_up.html", status=422,
                             errors={"passcode_again": "error.passcode_match"}, number=number)
    try:
        signed = await family.set_passcode(number, fields.get("setup_code", ""), passcode,
                                           client_address(request), context_of(request).clock())
    except SignInThrottled:
        return _sign_in_page(request, "set_up.html", status=429,
                             errors={"form": "error.throttled"}, number=number)
    except InvalidRequest as exc:
        field = "passcode" if str(exc).startswith("passcode") else "number"
        key = "error.passcode" if field == "passcode" else "error.phone"
        return _sign_in_page(request, "set_up.html", status=422, errors={field: key},
                             number=number)
    except SignInRefused:
        return _sign_in_page(request, "set_up.html", status=401,
                             errors={"form": "error.set_up"}, number=number)
    except StoreUnavailable:
        return message(request, "error.unavailable", status=503)
    return await _signed_in(request, signed.cookie)


async def _signed_out(family: FamilyAccess, session: FamilySession) -> Response:
    await family.sign_out(session)
    return redirect("/account/sign-in")


@router.post("/sign-out")
async def sign_out(request: Request) -> Response:
    family = family_of(request)
    if family is None:
        return message(request, "error.unavailable", status=503)
    try:
        session = await family.session(request.cookies.get(SESSION_COOKIE),
                                       context_of(request).clock())
    except StoreUnavailable:
        return message(request, "error.unavailable", status=503)
    if session is None:
        return redirect("/account/sign-in")
    try:
        fields = await read_form(request, {"csrf": _CSRF_MAX})
    except FormError as exc:
        return message(request, exc.key, status=exc.status, session=session)
    if not csrf_ok(session, fields.get("csrf")):
        return message(request, "error.csrf", status=403, session=session)
    response = await _guard(request, None, lambda: _signed_out(family, session))
    response.delete_cookie(SESSION_COOKIE, path="/account")
    return response


# -- unsubscribe (no session: the signed link is the credential) ---------------------


@router.get("/unsubscribe")
async def unsubscribe_form(request: Request) -> Response:
    from api.family_alerts import account_of_token

    family = family_of(request)
    token = request.query_params.get("token", "")
    account_id = account_of_token(request.app, token)
    if family is None or account_id is None:
        return message(request, "error.link", status=400)
    try:
        account = await family.account(account_id)
    except (UnknownAccount, StoreUnavailable):
        return message(request, "error.link", status=400)
    return render(request, "unsubscribe.html", token=token, account=account, done=False)


@router.post("/unsubscribe")
async def unsubscribe(request: Request) -> Response:
    from api.family_alerts import account_of_token

    family = family_of(request)
    try:
        fields = await read_form(request, {"token": 300})
    except FormError as exc:
        return message(request, exc.key, status=exc.status)
    token = fields.get("token", "")
    account_id = account_of_token(request.app, token)
    if family is None or account_id is None:
        return message(request, "error.link", status=400)
    try:
        account = await family.account(account_id)
        await family.unsubscribe(account_id)
    except (UnknownAccount, StoreUnavailable):
        return message(request, "error.link", status=400)
    return render(request, "unsubscribe.html", token=token, account=account, done=True)


# -- the account's pages ---------------------------------------------------------------


def money(units: int) -> str:
    return cents_str(units)


def _funding_lines(txs: list[Any], account_id: str) -> list[dict[str, Any]]:
    lines = []
    for tx in txs:
        amount = sum(leg.amount_units for leg in tx.legs
                     if str(leg.book) == "account" and leg.ref == account_id)
        lines.append({"at": tx.at, "kind": tx.kind, "method": tx.memo, "amount": money(amount)})
    return lines


@router.get("/{account_id}")
async def overview(request: Request, account_id: AccountId) -> Response:
    visit = await _visit(request, account_id)
    if isinstance(visit, Response):
        return visit

    async def show() -> Response:
        store = visit.family.service.store
        funded = [tx for tx in await store.transactions(account_id=account_id)
                  if tx.kind in ("deposit", "payment")]
        standing = None
        if visit.account.product is Product.DIRECT_BILL:
            standing = await visit.family.service.direct_bill_standing(account_id, visit.now)
        return _page(request, visit, "overview.html",
                     funding=_funding_lines(funded, account_id), standing=standing,
                     balance=money(visit.account.balance_units),
                     owed=money(max(0, -visit.account.balance_units)),
                     held=money(visit.account.held_units),
                     credit_limit=money(visit.account.credit_limit_units))

    return await _guard(request, visit, show)


def _duration(seconds: int) -> dict[str, int]:
    return {"m": seconds // 60, "s": seconds % 60}


async def _recent_calls(visit: Visit) -> list[CallDetailRecord]:
    since = visit.now - timedelta(days=HISTORY_DAYS)
    found = await visit.family.service.store.list_cdrs(
        CdrFilter(payer_account_id=visit.account.id, since=since))
    return sorted(found, key=lambda c: c.setup_at, reverse=True)


@router.get("/{account_id}/calls")
async def calls(request: Request, account_id: AccountId) -> Response:
    visit = await _visit(request, account_id)
    if isinstance(visit, Response):
        return visit

    async def show() -> Response:
        rows = [{"cdr": c, "duration": _duration(c.talked_seconds), "total": money(c.total_units)}
                for c in await _recent_calls(visit)]
        return _page(request, visit, "calls.html", calls=rows)

    return await _guard(request, visit, show)


@router.get("/{account_id}/calls/{call_id}")
async def call_detail(request: Request, account_id: AccountId,
                      call_id: Annotated[str, Path(min_length=1, max_length=200)]) -> Response:
    visit = await _visit(request, account_id)
    if isinstance(visit, Response):
        return visit

    async def show() -> Response:
        try:
            cdr = await visit.family.service.store.get_cdr(call_id)
        except AccountsError:
            cdr = None
        if cdr is None or cdr.payer_account_id != account_id:
            # Another account's call is "no such call" too.
            return message(request, "error.not_found", status=404, session=visit.session)
        return _page(request, visit, "call.html", cdr=cdr,
                     duration=_duration(cdr.talked_seconds),
                     billed=_duration(cdr.billed_seconds), items=_items(visit, cdr),
                     totals={"charge": money(cdr.charge_units), "fees": money(cdr.fee_units),
                             "taxes": money(cdr.tax_units), "total": money(cdr.total_units)})

    return await _guard(request, visit, show)


def _items(visit: Visit, cdr: CallDetailRecord) -> dict[str, Any] | None:
    """The call priced again as the quote prices it, if that gives the recorded charge."""
    facility = visit.family.service.facilities.get(cdr.facility_id)
    if facility is None or not cdr.product:
        return None
    try:
        q = quote(facility.rated, cdr.number_e164, Product(cdr.product), cdr.talked_seconds,
                  cdr.setup_at)
    except (RatingError, ValueError):
        return None
    if (q.charge_units, q.total_units) != (cdr.charge_units, cdr.total_units):
        return None
    return q.to_json() | {"capped_rate_units": q.rate_units - q.termination_units,
                          "termination_units": q.termination_units}


def _months(now: datetime) -> list[tuple[int, int]]:
    """Calendar months (UTC) that overlap the last ``HISTORY_DAYS`` days, newest first."""
    first = (now - timedelta(days=HISTORY_DAYS)).astimezone(UTC)
    months: list[tuple[int, int]] = []
    year, month = now.astimezone(UTC).year, now.astimezone(UTC).month
    while (year, month) >= (first.year, first.month):
        months.append((year, month))
        year, month = (year - 1, 12) if month == 1 else (year, month - 1)
    return months


def _period(text: str, now: datetime) -> tuple[int, int] | None:
    year_text, sep, month_text = text.partition("-")
    if not (sep and year_text.isdigit() and month_text.isdigit() and len(year_text) == 4
            and len(month_text) == 2):
        return None
    wanted = (int(year_text), int(month_text))
    return wanted if wanted in _months(now) else None


def _month_name(lang: str, year: int, month: int) -> str:
    names_es = ("enero", "febrero", "marzo", "abril", "mayo", "junio", "julio", "agosto",
                "septiembre", "octubre", "noviembre", "diciembre")
    if lang == "es":
        return f"{names_es[month - 1]} de {year}"
    return f"{calendar.month_name[month]} {year}"


@router.get("/{account_id}/statements")
async def statements(request: Request, account_id: AccountId) -> Response:
    visit = await _visit(request, account_id)
    if isinstance(visit, Response):
        return visit
    lang = language(request)
    months = [{"id": f"{y:04d}-{m:02d}", "name": _month_name(lang, y, m)}
              for y, m in _months(visit.now)]
    return _page(request, visit, "statements.html", months=months)


async def _statement(visit: Visit, year: int, month: int) -> dict[str, Any]:
    s = await visit.family.service.statement(visit.account.id, year, month)

    def total(lines: tuple[Any, ...]) -> int:
        return sum(line.amount_units for line in lines)

    return {"s": s, "opening": money(s.opening_balance_units),
            "closing": money(s.closing_balance_units),
            "deposits_total": money(total(s.deposits)), "calls_total": money(total(s.calls)),
            "other_total": money(total(s.other)),
            "lines": sorted((*s.deposits, *s.calls, *s.other), key=lambda line: line.at)}


@router.get("/{account_id}/statements/{period}.csv")
async def statement_csv(request: Request, account_id: AccountId,
                        period: Annotated[str, Path(max_length=7)]) -> Response:
    visit = await _visit(request, account_id)
    if isinstance(visit, Response):
        return visit
    wanted = _period(period, visit.now)
    if wanted is None:
        return message(request, "error.not_found", status=404, session=visit.session)

    async def download() -> Response:
        data = await _statement(visit, *wanted)
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\r\n")
        writer.writerow(["at", "kind", "description", "seconds", "amount"])
        for line in data["lines"]:
            writer.writerow([line.at.isoformat(), line.kind, line.description,
                             "" if line.seconds is None else line.seconds,
                             money(line.amount_units)])
        writer.writerow([])
        for name in ("opening", "deposits_total", "calls_total", "other_total", "closing"):
            writer.writerow(["", name, "", "", data[name]])
        filename = f"statement-{account_id}-{period}.csv"
        return Response(out.getvalue(), media_type="text/csv; charset=utf-8", headers={
            "Content-Disposition": f'attachment; filename="{filename}"',
            "Cache-Control": "no-store"})

    return await _guard(request, visit, download)


@router.get("/{account_id}/statements/{period}")
async def statement_page(request: Request, account_id: AccountId,
                         period: Annotated[str, Path(max_length=7)]) -> Response:
    visit = await _visit(request, account_id)
    if isinstance(visit, Response):
        return visit
    wanted = _period(period, visit.now)
    if wanted is None:
        return message(request, "error.not_found", status=404, session=visit.session)
    async def show() -> Response:
        data = await _statement(visit, *wanted)
        return _page(request, visit, "statement.html", period=period,
                     month_name=_month_name(language(request), *wanted), money=money, **data)

    return await _guard(request, visit, show)


# -- numbers (Direct Bill) ----------------------------------------------------------------


@router.get("/{account_id}/numbers")
async def numbers(request: Request, account_id: AccountId) -> Response:
    visit = await _visit(request, account_id)
    if isinstance(visit, Response):
        return visit
    return _page(request, visit, "numbers.html", errors={}, value="")


@router.post("/{account_id}/numbers")
async def change_numbers(request: Request, account_id: AccountId) -> Response:
    posted = await _posted(request, account_id, {"number": _NUMBER_MAX, "action": 10})
    if isinstance(posted, Response):
        return posted
    visit, fields = posted
    action = fields.get("action")
    number = fields.get("number", "").strip()

    async def change() -> Response:
        try:
            if action == "add":
                await visit.family.add_number(account_id, number)
            elif action == "remove":
                await visit.family.remove_number(account_id, number)
            else:
                return message(request, "error.field", status=400, session=visit.session)
        except FamilyRefusal as exc:
            return _page(request, visit, "numbers.html", status=422,
                         errors={"number": exc.reason}, value=number)
        return redirect(f"/account/{account_id}/numbers?done="
                        + ("added" if action == "add" else "removed"))

    return await _guard(request, visit, change)


# -- blocks ------------------------------------------------------------------------------


async def _block_rows(visit: Visit, request: Request) -> list[dict[str, Any]]:
    rows = []
    for number in visit.account.numbers:
        blocked = set(await visit.family.service.store.list_self_blocks(number))
        for fid, name in sorted(_facility_names(request).items(), key=lambda i: i[1]):
            rows.append({"number": number, "facility": fid, "name": name,
                         "blocked": fid in blocked or None in blocked,
                         "everywhere": None in blocked})
    return rows


@router.get("/{account_id}/blocks")
async def blocks(request: Request, account_id: AccountId) -> Response:
    visit = await _visit(request, account_id)
    if isinstance(visit, Response):
        return visit

    async def show() -> Response:
        return _page(request, visit, "blocks.html", rows=await _block_rows(visit, request))

    return await _guard(request, visit, show)


@router.post("/{account_id}/blocks")
async def change_block(request: Request, account_id: AccountId) -> Response:
    posted = await _posted(request, account_id,
                           {"number": _NUMBER_MAX, "facility": 100, "action": 10})
    if isinstance(posted, Response):
        return posted
    visit, fields = posted
    number, facility, action = (fields.get("number"), fields.get("facility"),
                                fields.get("action"))
    if (number not in visit.account.numbers or facility not in _facility_names(request)
            or action not in ("block", "unblock")):
        return message(request, "error.field", status=400, session=visit.session)
    assert number is not None and facility is not None
    service = visit.family.service

    async def change() -> Response:
        if action == "block":
            await service.block_facility_for_number(number, facility)
        else:
            await service.unblock_facility_for_number(number, facility)
        return redirect(f"/account/{account_id}/blocks?done="
                        + ("blocked" if action == "block" else "unblocked"))

    return await _guard(request, visit, change)


# -- refund and closure ---------------------------------------------------------------------


async def _money_page(request: Request, visit: Visit, *, status: int = 200,
                      error: str | None = None) -> Response:
    service = visit.family.service
    refunds = sorted(await service.store.list_refunds(account_id=visit.account.id),
                     key=lambda r: r.requested_at, reverse=True)
    return _page(request, visit, "money.html", status=status, error=error,
                 refunds=[{"r": r, "amount": money(r.amount_units)} for r in refunds],
                 threshold=money(service.policy.refund_review_threshold_units),
                 hold_days=service.policy.closure_hold_days,
                 prepaid=visit.account.product is not Product.DIRECT_BILL,
                 balance=money(visit.account.balance_units))


@router.get("/{account_id}/money")
async def money_page(request: Request, account_id: AccountId) -> Response:
    visit = await _visit(request, account_id)
    if isinstance(visit, Response):
        return visit
    return await _guard(request, visit, lambda: _money_page(request, visit))


@router.post("/{account_id}/refund")
async def refund(request: Request, account_id: AccountId) -> Response:
    posted = await _posted(request, account_id, {})
    if isinstance(posted, Response):
        return posted
    visit, _ = posted

    async def ask() -> Response:
        try:
            await visit.family.request_refund(account_id, visit.now)
        except FamilyRefusal as exc:
            return await _money_page(request, visit, status=409, error=exc.reason)
        return redirect(f"/account/{account_id}/money?done=refund_done")

    return await _guard(request, visit, ask)


@router.post("/{account_id}/closure")
async def closure(request: Request, account_id: AccountId) -> Response:
    posted = await _posted(request, account_id, {"confirm": 10})
    if isinstance(posted, Response):
        return posted
    visit, fields = posted
    if fields.get("confirm") != "yes":
        return await _guard(request, visit, lambda: _money_page(
            request, visit, status=422, error="closure.confirm"))

    async def ask() -> Response:
        try:
            await visit.family.request_closure(account_id, visit.now)
        except FamilyRefusal as exc:
            return await _money_page(request, visit, status=409, error=exc.reason)
        return redirect(f"/account/{account_id}/money?done=closure_done")

    return await _guard(request, visit, ask)


# -- alerts ------------------------------------------------------------------------------------


def _alert_form(prefs: Any) -> dict[str, str]:
    return {"email": prefs.email,
            "low_balance": "" if prefs.low_balance_units is None
            else cents_str(prefs.low_balance_units),
            "refund_alerts": "on" if prefs.refund_alerts else ""}


@router.get("/{account_id}/alerts")
async def alerts(request: Request, account_id: AccountId) -> Response:
    visit = await _visit(request, account_id)
    if isinstance(visit, Response):
        return visit

    async def show() -> Response:
        prefs = await visit.family.alerts(account_id)
        return _page(request, visit, "alerts.html", errors={}, form=_alert_form(prefs))

    return await _guard(request, visit, show)


def _email_ok(text: str) -> bool:
    local, at, domain = text.rpartition("@")
    return (bool(at and local and "." in domain.strip(".")) and len(text) <= 254
            and not any(ch.isspace() or ch in "<>,;\"\\" or not ch.isprintable()
                        for ch in text))


@router.post("/{account_id}/alerts")
async def save_alerts(request: Request, account_id: AccountId) -> Response:
    posted = await _posted(request, account_id,
                           {"email": 254, "low_balance": 12, "refund_alerts": 3})
    if isinstance(posted, Response):
        return posted
    visit, fields = posted
    form = {"email": fields.get("email", "").strip(),
            "low_balance": fields.get("low_balance", "").strip(),
            "refund_alerts": fields.get("refund_alerts", "")}
    errors: dict[str, str] = {}
    if form["email"] and not _email_ok(form["email"]):
        errors["email"] = "error.email"
    threshold: int | None = None
    if form["low_balance"]:
        try:
            threshold = to_units(Decimal(form["low_balance"]), places=2, field="low_balance")
            if threshold < 0 or threshold > to_units("10000.00"):
                raise ValueError("out of range")
        except (ArithmeticError, ValueError):
            errors["low_balance"] = "error.amount"
    if (threshold is not None or form["refund_alerts"]) and not form["email"]:
        errors.setdefault("email", "error.email")
    if errors:
        return _page(request, visit, "alerts.html", status=422, errors=errors, form=form)

    async def save() -> Response:
        await visit.family.set_alerts(account_id, email=form["email"],
                                      low_balance_units=threshold,
                                      refund_alerts=form["refund_alerts"] == "on",
                                      language=language(request))
        return redirect(f"/account/{account_id}/alerts?done=saved")

    return await _guard(request, visit, save)
