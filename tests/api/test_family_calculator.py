"""The rate calculator shows an international rate as its parts: the capped rate and the
termination cost allowed on top, so no rate sits above the legal maximum unexplained."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import httpx
import pytest

from api import create_app

#: A day under the FCC 2025 interim caps (al-county-jail: $0.19 maximum).
DAY = datetime(2026, 12, 3, 15, 0, tzinfo=UTC)


@pytest.fixture
async def calculator(config: Any, service: Any) -> Any:
    app = create_app(config, service, clock=lambda: DAY)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                 base_url="http://t") as c:
        yield c


async def test_quote_json_adds_the_parts(calculator: httpx.AsyncClient) -> None:
    r = await calculator.get("/v1/quote", params={"facility": "al-county-jail",
                                                  "number": "+442079460958", "minutes": 10})
    doc = r.json()
    assert doc["cap_per_minute"] == "0.19"
    for q in doc["quotes"]:
        # The contract's fields are all still there...
        assert {"product", "rate_per_minute", "billed_minutes", "charge", "fees", "taxes",
                "total"} <= set(q)
        rate, capped, termination = (Decimal(q[k]) for k in (
            "rate_per_minute", "capped_rate_per_minute", "termination_per_minute"))
        assert rate == capped + termination == Decimal("0.30")
        assert capped <= Decimal(doc["cap_per_minute"]) < rate


async def test_domestic_quote_has_no_termination(calculator: httpx.AsyncClient) -> None:
    r = await calculator.get("/v1/quote", params={"facility": "tx-state-prison",
                                                  "number": "+15125550100", "minutes": 5})
    for q in r.json()["quotes"]:
        assert q["termination_per_minute"] == "0.0000"
        assert q["capped_rate_per_minute"] == q["rate_per_minute"]


@pytest.mark.parametrize(("lang", "capped_label"), [
    ("en", "Rate within the legal maximum"), ("es", "Tarifa dentro del máximo legal")])
async def test_page_explains_a_rate_above_the_maximum(
    calculator: httpx.AsyncClient, lang: str, capped_label: str
) -> None:
    r = await calculator.get("/", params={"facility": "al-county-jail", "lang": lang,
                                          "number": "+442079460958", "minutes": "10"})
    html = r.text
    assert 'id="cap-note"' in html
    products = html.count('class="product"')
    assert products >= 3
    assert html.count('class="capped-rate"') == html.count('class="termination"') == products
    assert capped_label in html
    assert re.search(r'class="capped-rate">\$0\.1500', html)
    assert re.search(r'class="termination">\$0\.1500', html)


async def test_domestic_page_shows_one_rate(calculator: httpx.AsyncClient) -> None:
    r = await calculator.get("/", params={"facility": "tx-state-prison",
                                          "number": "+15125550100", "minutes": "10"})
    assert 'class="rate"' in r.text
    assert 'class="capped-rate"' not in r.text and 'id="cap-note"' not in r.text
