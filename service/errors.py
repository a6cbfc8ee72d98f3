"""The service's client error: an HTTP status and one message, answered as `{"error": message}`."""

from __future__ import annotations

from collections.abc import Mapping


class ApiError(Exception):
    """A client error: HTTP `status` with `{"error": message}` (and any `headers`, e.g. Retry-After)."""

    def __init__(self, status: int, message: str, headers: Mapping[str, str] | None = None):
        super().__init__(message)
        self.status, self.message, self.headers = status, message, dict(headers or {})
