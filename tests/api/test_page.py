"""GET /: the calculator page rendered on the server (no JavaScript needed)."""

from __future__ import annotations

import re
from html.parser import HTMLParser

import httpx


class Collector(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))


def parse(html: str) -> Collector:
    c = Collector()
    c.feed(html)
    return c


async def test_empty_form_has_labelled_controls_and_local_assets(
    client: httpx.AsyncClient,
) -> None:
    r = await client.get("/")
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/html")
    assert "default-src 'none'" in r.headers["content-security-policy"]
    page = parse(r.text)
    html = page.tags[0]
    assert html == ("html", {"lang": "en"})
    labels = {a["for"] for t, a in page.tags if t == "label"}
    controls = {a["id"] for t, a in page.tags if t in ("input", "select") and a.get("id")}
    assert {"facility", "number", "minutes"} <= labels
    assert labels <= controls
    assert any(t == "meta" and a.get("name") == "viewport" for t, a in page.tags)
    for t, a in page.tags:
        for attr in ("src", "href"):
            url = a.get(attr)
            if t in ("script", "link", "img") and url:
                assert url.startswith("/"), url  # served by us, never a CDN
    options = [a.get("value") for t, a in page.tags if t == "option"]
    assert {"tx-state-prison", "al-county-jail", "ak-regional-jail"} <= set(options)
    assert 'id="result"' in r.text
    assert "$" not in r.text.split('id="result"')[1].split("</section>")[0]


async def test_submitted_form_renders_the_quote(client: httpx.AsyncClient) -> None:
    r = await client.get("/", params={"facility": "tx-state-prison", "number": "512-555-0100",
                                      "minutes": "15"})
    assert r.status_code == 200
    text = r.text
    assert "Cost of a 15-minute call to +15125550100" in text
    assert "Within the state" in text
    assert "$0.06 per minute" in text  # the cap in force, for comparison
    assert 'data-product="advance_connect"' in text
    assert "$0.90" in text
    assert 'value="512-555-0100"' in text  # the form keeps what was typed
    assert re.search(r'<option value="tx-state-prison"[^>]*selected', text)
    assert 'max="20"' in text


async def test_spanish_page(client: httpx.AsyncClient) -> None:
    r = await client.get("/", params={"facility": "al-county-jail", "number": "5125550100",
                                      "minutes": "10", "lang": "es"})
    assert r.status_code == 200
    assert '<html lang="es">' in r.text
    assert "Costo de una llamada de 10 minutos" in r.text
    assert "Entre estados" in r.text
    assert "Ver el costo" in r.text
    assert "Federal Universal Service Fund recovery: $0.55" in r.text  # fee line, itemized
    # The switch back to English keeps the form values.
    assert re.search(r'href="/\?facility=al-county-jail&amp;number=5125550100&amp;minutes=10'
                     r'&amp;lang=en"', r.text)


async def test_browser_language_is_used_without_lang_parameter(client: httpx.AsyncClient) -> None:
    r = await client.get("/", headers={"Accept-Language": "es-MX,es;q=0.9"})
    assert '<html lang="es">' in r.text
    assert r.headers["content-language"] == "es"


async def test_errors_are_shown_next_to_their_fields(client: httpx.AsyncClient) -> None:
    r = await client.get("/", params={"facility": "tx-state-prison", "number": "12",
                                      "minutes": "99"})
    assert r.status_code == 200
    assert 'role="alert"' in r.text
    assert 'id="minutes-error"' in r.text
    assert "from 1 to 20" in r.text
    assert 'aria-invalid="true"' in r.text
    # The number is checked once the minutes are right.
    r = await client.get("/", params={"facility": "tx-state-prison", "number": "12",
                                      "minutes": "5"})
    assert 'id="number-error"' in r.text
    assert 'id="minutes-error"' not in r.text
    r = await client.get("/", params={"facility": "atlantis", "number": "5125550100",
                                      "minutes": "5"})
    assert 'id="facility-error"' in r.text


async def test_fragment_is_only_the_result(client: httpx.AsyncClient) -> None:
    r = await client.get("/", params={"facility": "tx-state-prison", "number": "5125550100",
                                      "minutes": "2", "fragment": "result"})
    assert r.status_code == 200
    assert "<html" not in r.text
    assert "Cost of a 2-minute call" in r.text


async def test_hostile_input_is_escaped(client: httpx.AsyncClient) -> None:
    r = await client.get("/", params={"facility": "<script>x</script>",
                                      "number": '"><img src=x>', "minutes": "5"})
    assert r.status_code == 200
    assert "<script>x</script>" not in r.text
    assert '"><img' not in r.text


async def test_static_assets_are_served(client: httpx.AsyncClient) -> None:
    css = await client.get("/static/calculator.css")
    js = await client.get("/static/calculator.js")
    assert css.status_code == 200 and "text/css" in css.headers["content-type"]
    assert js.status_code == 200 and "javascript" in js.headers["content-type"]
    assert "fetch(" in js.text
