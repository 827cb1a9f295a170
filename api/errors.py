"""HTTP errors: one base that carries its status, code and offending field."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field


class ErrorBody(BaseModel):
    """The JSON body of every 4xx and 5xx answer."""

    error: str = Field(description="Stable machine-readable code, e.g. 'invalid_parameter'.")
    message: str = Field(description="What went wrong, for a person.")
    field: str | None = Field(
        default=None, description="The request parameter or body field at fault, if any."
    )


class ApiError(Exception):
    """An error that the HTTP boundary turns into a JSON answer, never a 500."""

    status: int = 400
    code: str = "bad_request"

    def __init__(self, message: str, *, field: str | None = None,
                 status: int | None = None, code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.field = field
        if status is not None:
            self.status = status
        if code is not None:
            self.code = code

    def body(self) -> dict[str, Any]:
        return ErrorBody(error=self.code, message=self.message, field=self.field).model_dump()


class InvalidParameter(ApiError):
    status = 422
    code = "invalid_parameter"


class NotFound(ApiError):
    status = 404
    code = "not_found"


class Unauthorized(ApiError):
    status = 401
    code = "unauthorized"


class Forbidden(ApiError):
    status = 403
    code = "forbidden"


class Conflict(ApiError):
    status = 409
    code = "conflict"


class Unavailable(ApiError):
    status = 503
    code = "unavailable"


def responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI ``responses`` entries for the given error statuses."""
    text = {
        400: "Malformed request",
        401: "Missing or unknown bearer token",
        403: "The token's role or facilities do not allow this",
        404: "No such resource",
        409: "The request conflicts with the resource's state",
        422: "A parameter or body field is invalid (named in `field`)",
        503: "A backing service is not available",
    }
    # Any operation can meet a malformed request (bad JSON, bad encoding).
    wanted = sorted({400, *statuses})
    return {s: {"model": ErrorBody, "description": text.get(s, "Error")} for s in wanted}
