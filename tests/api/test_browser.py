"""The calculator page in a real headless Chromium against a real uvicorn server."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.api.conftest import NOW, ThreadedServer

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")

pytestmark = pytest.mark.e2e
# The browser is part of the test set-up (scripts/test.sh installs it): missing, it fails.
assert CHROMIUM.exists() and CHROMEDRIVER.exists(), (
    "needs Debian chromium and chromium-driver (scripts/test.sh installs them)")

#: Where screenshots go, for a person to look at (kept after the run).
SHOTS = Path(os.environ.get("ICS_SCREENSHOTS", tempfile.gettempdir())) / "ics-screenshots"


def make_driver(profile: Path, *, javascript: bool = True, width: int = 390,
                height: int = 844) -> Any:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                 "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync",
                 "--disable-dev-shm-usage", f"--user-data-dir={profile}",
                 f"--window-size={width},{height}"):
        options.add_argument(flag)
    if not javascript:
        options.add_experimental_option(
            "prefs", {"profile.managed_default_content_settings.javascript": 2})
    return webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=options)


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[Any]:
    driver = make_driver(tmp_path / "profile")
    try:
        yield driver
    finally:
        driver.quit()


def wait_for(driver: Any, css: str, text: str | None = None) -> Any:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    wait = WebDriverWait(driver, 15)
    if text is None:
        return wait.until(ec.visibility_of_element_located((By.CSS_SELECTOR, css)))
    wait.until(ec.text_to_be_present_in_element((By.CSS_SELECTOR, css), text))
    return driver.find_element(By.CSS_SELECTOR, css)


def totals(driver: Any) -> dict[str, str]:
    from selenium.webdriver.common.by import By

    return {
        li.get_attribute("data-product"): li.find_element(By.CSS_SELECTOR, ".total dd").text
        for li in driver.find_elements(By.CSS_SELECTOR, "li.product")
    }


def expected(config: Any, facility: str, number: str, minutes: int) -> dict[str, Any]:
    from rating import quote_document

    doc = quote_document(config.facilities[facility].rated, number, minutes, NOW)
    return {q["product"]: q for q in doc["quotes"]}


def test_family_quotes_a_call_with_the_keyboard(browser: Any, served_app: ThreadedServer,
                                                config: Any) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.support.ui import Select

    browser.get(served_app.url + "/")
    assert browser.title == "What will a call cost?"
    Select(browser.find_element(By.ID, "facility")).select_by_value("al-county-jail")
    # Choosing the facility updates the limit shown next to the minutes field.
    hint = browser.find_element(By.ID, "minutes-hint").text
    assert hint == "From 1 to 15 minutes at this facility."
    number = browser.find_element(By.ID, "number")
    number.send_keys("(512) 555-0100")
    minutes = browser.find_element(By.ID, "minutes")
    minutes.clear()
    minutes.send_keys("10", Keys.ENTER)
    heading = wait_for(browser, "#result h2", "10-minute call")
    assert heading.text == "Cost of a 10-minute call to +15125550100"
    # The script showed the result in place and focused it for screen readers.
    assert browser.switch_to.active_element == heading
    assert browser.current_url.endswith("minutes=10")
    want = expected(config, "al-county-jail", "+15125550100", 10)
    assert totals(browser) == {p: f"${q['total']}" for p, q in want.items()}
    fee = want["advance_connect"]["fees"][0]
    card = browser.find_element(By.CSS_SELECTOR, 'li[data-product="advance_connect"]').text
    assert f"{fee['name']}: ${fee['amount']}" in card
    # Everything the page loaded came from our own origin.
    origins = browser.execute_script(
        "return performance.getEntriesByType('resource').map(e => new URL(e.name).origin)")
    assert origins and set(origins) == {served_app.url}
    SHOTS.mkdir(parents=True, exist_ok=True)
    browser.save_screenshot(str(SHOTS / "calculator-phone.png"))
    browser.execute_script("document.querySelector('li.product').scrollIntoView()")
    browser.save_screenshot(str(SHOTS / "calculator-phone-result.png"))


def test_page_works_without_javascript_and_in_spanish(tmp_path: Path, config: Any,
                                                      served_app: ThreadedServer) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    driver = make_driver(tmp_path / "nojs", javascript=False, width=1280, height=900)
    try:
        driver.get(served_app.url + "/")
        driver.find_element(By.LINK_TEXT, "Español").click()
        wait_for(driver, "h1", "¿Cuánto costará una llamada?")
        assert driver.find_element(By.TAG_NAME, "html").get_attribute("lang") == "es"
        Select(driver.find_element(By.ID, "facility")).select_by_value("tx-state-prison")
        driver.find_element(By.ID, "number").send_keys("+1 212 555 0100")
        minutes = driver.find_element(By.ID, "minutes")
        minutes.clear()
        minutes.send_keys("20")
        driver.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
        heading = wait_for(driver, "#result h2", "20 minutos")
        assert heading.text == "Costo de una llamada de 20 minutos al +12125550100"
        assert "Entre estados" in driver.find_element(By.CSS_SELECTOR, ".summary").text
        want = expected(config, "tx-state-prison", "+12125550100", 20)
        assert totals(driver) == {p: f"${q['total']}" for p, q in want.items()}
        # A full page load happened: the form is in the query string.
        assert "facility=tx-state-prison" in driver.current_url
        driver.find_element(By.ID, "minutes").clear()
        driver.find_element(By.ID, "minutes").send_keys("21")
        driver.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
        error = wait_for(driver, "#minutes-error")
        assert error.text == "Escriba un número entero de minutos de 1 a 20."
        SHOTS.mkdir(parents=True, exist_ok=True)
        driver.save_screenshot(str(SHOTS / "calculator-desktop-es-error.png"))
    finally:
        driver.quit()
