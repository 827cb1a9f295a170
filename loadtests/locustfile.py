"""Mixed HTTP load on one node: families quoting, finance staff depositing, operators
reading CDRs and metrics.

Run headless against a node on loopback for a fixed time, e.g.:

    ics serve &            # or: ics api
    locust -f loadtests/locustfile.py --headless -u 50 -r 10 --run-time 30s \\
        --host http://127.0.0.1:8080 --only-summary

Deposits go only to the demo load-test account (``ac-14155550100``, $100,000
seeded) with a fresh idempotency key each, so the demo families' balances are
never touched. ``ICS_ADMIN_TOKEN`` overrides the demo admin token.
"""

from __future__ import annotations

import os
import random
import uuid

from locust import HttpUser, between, task

ADMIN_TOKEN = os.environ.get("ICS_ADMIN_TOKEN", "demo-admin-token")
LOAD_ACCOUNT = os.environ.get("ICS_LOAD_ACCOUNT", "ac-14155550100")

FACILITIES = {"tx-state-prison": 20, "al-county-jail": 15, "ak-regional-jail": 15}
#: Numbers as families type them: local, out of state, with and without punctuation,
#: international.
NUMBERS = [
    "5125550100", "(512) 555-0142", "+1 512 555 0177", "13105550100", "+12125550100",
    "907-269-0100", "2055550100", "+14155550100", "011 52 55 1234 5678", "+44 20 7946 0958",
]


def _quote_params() -> dict[str, str]:
    """A quote as a family asks for it: a facility, a number, and a length it allows."""
    facility, limit = random.choice(list(FACILITIES.items()))
    return {"facility": facility, "number": random.choice(NUMBERS),
            "minutes": str(random.randint(1, limit))}


class Family(HttpUser):
    """Checks what calls cost, mostly through the JSON API, sometimes the page."""

    weight = 8
    wait_time = between(0.05, 0.3)

    @task(10)
    def quote(self) -> None:
        params = _quote_params()
        with self.client.get("/v1/quote", params=params, name="/v1/quote",
                             catch_response=True) as r:
            if r.status_code != 200 or not r.json().get("quotes"):
                r.failure(f"quote failed: {r.status_code} {r.text[:200]}")

    @task(2)
    def page(self) -> None:
        params = {**_quote_params(), "lang": random.choice(["en", "es"])}
        with self.client.get("/", params=params, name="/ (quote page)",
                             catch_response=True) as r:
            if r.status_code != 200 or 'class="product"' not in r.text:
                r.failure(f"page did not show a quote: {r.status_code}")


class AdminUser(HttpUser):
    """A user of the admin API: every request carries the admin token."""

    abstract = True

    def on_start(self) -> None:
        self.client.headers["Authorization"] = f"Bearer {ADMIN_TOKEN}"


class FinanceStaff(AdminUser):
    """Takes deposits (each with its own idempotency key) and checks balances."""

    weight = 1
    wait_time = between(0.2, 1.0)

    @task(3)
    def deposit(self) -> None:
        body = {"amount": f"{random.randint(5, 50)}.00", "method": "card",
                "idempotency_key": uuid.uuid4().hex}
        with self.client.post(f"/v1/accounts/{LOAD_ACCOUNT}/deposits", json=body,
                              name="/v1/accounts/[id]/deposits", catch_response=True) as r:
            if r.status_code != 201:
                r.failure(f"deposit failed: {r.status_code} {r.text[:200]}")

    @task(1)
    def balance(self) -> None:
        # Since "now" keeps the entry list short however many deposits were taken.
        self.client.get(f"/v1/accounts/{LOAD_ACCOUNT}", name="/v1/accounts/[id]",
                        params={"since": "2100-01-01T00:00:00Z"})


class Operator(AdminUser):
    """Watches the node: recent CDRs, a CSV export, metrics and readiness."""

    weight = 1
    wait_time = between(0.5, 2.0)

    @task(3)
    def recent_cdrs(self) -> None:
        self.client.get("/v1/cdrs", params={"limit": "100"}, name="/v1/cdrs")

    @task(1)
    def export_cdrs(self) -> None:
        self.client.get("/v1/cdrs.csv", params={"facility": "tx-state-prison",
                                                "limit": "500"}, name="/v1/cdrs.csv")

    @task(2)
    def metrics(self) -> None:
        self.client.get("/metrics")

    @task(1)
    def ready(self) -> None:
        self.client.get("/readyz")
