"""Bearer token parsing and role checks, without HTTP."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from api.auth import TokenRegistry
from api.errors import Forbidden, Unauthorized


def registry() -> TokenRegistry:
    return TokenRegistry([
        SimpleNamespace(token="admin-token-1", role="admin", facilities=[]),
        SimpleNamespace(token="tx-facility-token", role="facility",
                        facilities=["tx-state-prison"]),
    ])


@pytest.mark.parametrize("header", [None, "", "Bearer", "Bearer   ", "Basic YWRtaW4=",
                                    "Bearer admin-token-2", "bearer admin-token-1x"])
def test_missing_or_wrong_token_is_unauthorized(header: str | None) -> None:
    with pytest.raises(Unauthorized):
        registry().authenticate(header)


def test_scheme_is_case_insensitive_and_roles_are_kept() -> None:
    p = registry().authenticate("bearer admin-token-1")
    assert p.role == "admin"
    f = registry().authenticate("Bearer tx-facility-token")
    assert f.role == "facility"
    assert f.may_see_facility("tx-state-prison")
    assert not f.may_see_facility("al-county-jail")
    with pytest.raises(Forbidden):
        f.require_facility("al-county-jail")
    with pytest.raises(Forbidden):
        f.require("admin", "finance")
    p.require_facility("al-county-jail")  # admin sees all


def test_unknown_role_in_config_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown role"):
        TokenRegistry([SimpleNamespace(token="abcdefgh", role="root", facilities=[])])
