"""Bearer-token authentication and role checks for the admin API.

Roles: ``admin`` may do everything; ``finance`` moves and reads money;
``facility`` manages screening data (people, blocked/allowed/privileged
numbers) and reads calls of its own facilities only.
"""

from __future__ import annotations

import hmac
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Final

from api.errors import Forbidden, Unauthorized

ROLES: Final = frozenset({"admin", "finance", "facility"})


@dataclass(frozen=True)
class Principal:
    """Who is calling: a role and, for the facility role, which facilities."""

    name: str
    role: str
    facilities: frozenset[str]

    def require(self, *roles: str) -> None:
        if self.role not in roles:
            allowed = ", ".join(sorted(roles))
            raise Forbidden(f"the {self.role} role may not do this (needs {allowed})")

    def may_see_facility(self, facility: str) -> bool:
        return self.role != "facility" or facility in self.facilities

    def require_facility(self, facility: str, *, field: str = "facility") -> None:
        if not self.may_see_facility(facility):
            raise Forbidden(f"this token may not act for facility {facility!r}", field=field)


class TokenRegistry:
    """Maps bearer tokens to principals, comparing in constant time."""

    def __init__(self, entries: Iterable[Any]) -> None:
        self._entries: list[tuple[bytes, Principal]] = []
        for i, entry in enumerate(entries):
            token = str(entry.token)
            role = str(entry.role)
            if role not in ROLES:
                raise ValueError(f"admin token #{i + 1}: unknown role {role!r}")
            if not token:
                raise ValueError(f"admin token #{i + 1}: empty token")
            facilities = frozenset(getattr(entry, "facilities", None) or ())
            name = str(getattr(entry, "name", None) or f"{role}-token-{i + 1}")
            self._entries.append((token.encode(), Principal(name, role, facilities)))

    def authenticate(self, authorization: str | None) -> Principal:
        if not authorization:
            raise Unauthorized("an Authorization: Bearer <token> header is required")
        scheme, _, credentials = authorization.partition(" ")
        if scheme.lower() != "bearer" or not credentials.strip():
            raise Unauthorized("the Authorization header must be 'Bearer <token>'")
        given = credentials.strip().encode("utf-8", "surrogateescape")
        found: Principal | None = None
        # Compare against every token so that timing does not reveal which matched.
        for token, principal in self._entries:
            if hmac.compare_digest(token, given):
                found = principal
        if found is None:
            raise Unauthorized("unknown bearer token")
        return found
