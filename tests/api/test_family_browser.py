"""The family pages in headless Chromium against a real `ics serve`, after a real SIPp call:
sign in, read the balance, the call and its itemized charge, download a statement, block and
unblock, ask for alerts and receive the low-balance e-mail on a real SMTP server, request a
refund; in English and in Spanish."""

from __future__ import annotations

import csv
import io
import json
import sys
import time
import urllib.request
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller

from tests.api.conftest import ADMIN, free_port
from tests.api.test_browser import SHOTS, make_driver, wait_for
from tests.api.test_family_alerts import SECRET, Inbox

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "e2e"))
from checks import connected_call_id
from e2e_setup import Peers, prepare_e2e_service
from harness import Service

pytestmark = pytest.mark.e2e

AC = "ac-15125550100"
NUMBER = "+15125550100"
PASSCODE = "a long family passcode"


@pytest.fixture(scope="module")
def inbox() -> Iterator[Inbox]:
    box = Inbox()
    controller = Controller(box, hostname="127.0.0.1", port=free_port())
    controller.start()
    box.port = controller.port  # type: ignore[attr-defined]
    try:
        yield box
    finally:
        controller.stop()


@pytest.fixture(scope="module")
def served(inbox: Inbox, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    svc = prepare_e2e_service(tmp_path_factory.mktemp("family-e2e"))
    port = inbox.port  # type: ignore[attr-defined]
    svc.edit("demo.toml", lambda text: text + (
        f'\n[smtp]\nhost = "127.0.0.1"\nport = {port}\nsecurity = "none"\n'
        f'sender = "alerts@ics.example"\npublic_url = "{svc.http_base}"\n'
        f'link_secret = "{SECRET}"\ncheck_interval_seconds = 0.5\n'))
    svc.start()
    try:
        yield svc
    finally:
        assert svc.stop() == 0, svc.log()[-3000:]


def admin_post(svc: Service, path: str) -> dict[str, Any]:
    request = urllib.request.Request(svc.http_base + path, method="POST", data=b"",
                                     headers={"Authorization": f"Bearer {ADMIN}"})
    with urllib.request.urlopen(request, timeout=10) as resp:
        data: dict[str, Any] = json.loads(resp.read())
        return data


def place_call(svc: Service, workdir: Path) -> Any:
    """A real call from tx-state-prison to the family, accepted with 1, talked 2 s."""
    peers = Peers(svc, workdir)
    fac, car = peers.call(
        "facility_call", NUMBER, "carrier_info", carrier_keys={"digit": "1"},
        carrier_sets={"ring_ms": 200, "dtmf_ms": 1000}, sets={"talk_ms": 2000},
        timeout_s=40)
    assert car is not None and car.returncode == 0, car.describe() if car else ""
    return svc.cdr(connected_call_id(fac))


def dollars(units: int) -> str:
    sign = "-" if units < 0 else ""
    return f"{sign}${abs(units) // 10_000}.{abs(units) % 10_000 // 100:02d}"


def test_family_account_in_a_browser(served: Service, inbox: Inbox, tmp_path: Path) -> None:
    from selenium.webdriver.common.by import By

    record = place_call(served, tmp_path / "sipp")
    assert record.payer_account_id == AC and record.total_units > 0
    code = admin_post(served, f"/v1/accounts/{AC}/family-setup-code")["code"]
    browser = make_driver(tmp_path / "profile", javascript=False, width=1024, height=900)
    base = served.http_base
    try:
        # Set a passcode with the code, which signs in.
        browser.get(base + "/account/set-up")
        browser.find_element(By.ID, "number").send_keys("(512) 555-0100")
        browser.find_element(By.ID, "setup_code").send_keys(code)
        browser.find_element(By.ID, "passcode").send_keys(PASSCODE)
        browser.find_element(By.ID, "passcode_again").send_keys(PASSCODE)
        browser.find_element(By.CSS_SELECTOR, "#set-up button").click()
        balance = wait_for(browser, "#balance")
        assert balance.text == dollars(served.balance(AC))
        assert served.balance(AC) == 250_000 - record.total_units
        assert browser.find_element(By.ID, "held").text == "$0.00"
        # Sign out, sign in with the passcode.
        browser.find_element(By.CSS_SELECTOR, ".sign-out button").click()
        wait_for(browser, "#sign-in")
        browser.find_element(By.ID, "number").send_keys(NUMBER)
        browser.find_element(By.ID, "passcode").send_keys(PASSCODE)
        browser.find_element(By.CSS_SELECTOR, "#sign-in button").click()
        wait_for(browser, "#balance")

        # The call and its itemized charge.
        browser.find_element(By.LINK_TEXT, "Recent calls").click()
        row = wait_for(browser, f'tr[data-call="{record.call_id}"]')
        assert "Texas State Prison" in row.text and dollars(record.total_units) in row.text
        row.find_element(By.TAG_NAME, "a").click()
        total = wait_for(browser, "#itemized .total dd")
        assert total.text == dollars(record.total_units)

        # This month's statement: its calls total is the CDRs' total.
        month = datetime.now(UTC).strftime("%Y-%m")
        browser.find_element(By.LINK_TEXT, "Statements").click()
        wait_for(browser, f'li[data-month="{month}"]').find_element(
            By.PARTIAL_LINK_TEXT, "Printable").click()
        cdrs = served.cdrs(payer_account_id=AC)
        charged = sum(c.total_units for c in cdrs if c.setup_at.strftime("%Y-%m") == month)
        assert wait_for(browser, "#calls-total").text == dollars(-charged)
        cookie = browser.get_cookie("ics_family")
        assert cookie is not None and cookie["httpOnly"] is True
        request = urllib.request.Request(
            f"{base}/account/{AC}/statements/{month}.csv",
            headers={"Cookie": f"ics_family={cookie['value']}"})
        with urllib.request.urlopen(request, timeout=10) as resp:
            assert resp.headers["Content-Type"].startswith("text/csv")
            rows = list(csv.reader(io.StringIO(resp.read().decode())))
        call_rows = [r for r in rows if len(r) == 5 and r[1] == "call"]
        assert len(call_rows) == len([c for c in cdrs if c.total_units])
        summary = {r[1]: r[4] for r in rows if len(r) == 5 and r[0] == ""}
        assert summary["calls_total"] == dollars(-charged).replace("$", "")

        # Block the facility, then undo it at once.
        browser.find_element(By.LINK_TEXT, "Blocked facilities").click()
        cell = 'tr[data-facility="tx-state-prison"]'
        wait_for(browser, cell).find_element(By.TAG_NAME, "button").click()
        assert wait_for(browser, cell).get_attribute("data-blocked") == "yes"
        assert served._query(lambda s: s.list_self_blocks(NUMBER)) == ["tx-state-prison"]
        browser.find_element(By.CSS_SELECTOR, f"{cell} button").click()
        assert wait_for(browser, cell).get_attribute("data-blocked") == "no"
        assert served._query(lambda s: s.list_self_blocks(NUMBER)) == []

        # Alerts below $30: the sweep e-mails the low balance.
        browser.find_element(By.LINK_TEXT, "E-mail alerts").click()
        wait_for(browser, "#email").send_keys("family@example.com")
        browser.find_element(By.ID, "low_balance").send_keys("30.00")
        browser.find_element(By.ID, "refund_alerts").click()
        browser.find_element(By.CSS_SELECTOR, "#alerts-form button").click()
        wait_for(browser, ".notice")
        deadline = time.monotonic() + 15
        while not inbox.messages and time.monotonic() < deadline:
            time.sleep(0.1)
        assert inbox.messages, served.log()[-2000:]
        mail = inbox.messages[0]
        assert mail["To"] == "family@example.com"
        assert dollars(served.balance(AC)) in mail.get_content()

        # A refund of what is left ($25 less the call: under $100, approved at once).
        browser.find_element(By.LINK_TEXT, "Refund and closure").click()
        wait_for(browser, "#refund-form button").click()
        status = wait_for(browser, "#refunds tr[data-refund]")
        assert status.get_attribute("data-status") == "approved"
        assert served.balance(AC) == 0

        # In Spanish.
        browser.find_element(By.LINK_TEXT, "Español").click()
        wait_for(browser, "h1", "Reembolso y cierre")
        assert "Aprobado, por pagar" in browser.find_element(By.ID, "refunds").text
        browser.find_element(By.LINK_TEXT, "Saldo").click()
        assert wait_for(browser, "#balance").text == "$0.00"
        assert "Saldo disponible" in browser.page_source
        SHOTS.mkdir(parents=True, exist_ok=True)
        browser.save_screenshot(str(SHOTS / "family-overview-es.png"))
        # The refund's e-mail follows too, in the language the alerts were saved in.
        deadline = time.monotonic() + 15
        while len(inbox.messages) < 2 and time.monotonic() < deadline:
            time.sleep(0.1)
        assert any("refund" in m["Subject"].lower() for m in inbox.messages[1:]), [
            m["Subject"] for m in inbox.messages]
    finally:
        browser.quit()
