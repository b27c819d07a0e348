"""A small HTTP client of the query service's REST API (GET only, stdlib only).

Numbers that are not integers are parsed as ``Decimal`` straight from the JSON text, so
a money amount (``"3458.28"`` or, from an older service, ``3458.28``) is never rounded
through a float on its way into a table; plots convert to float themselves.

Usage::

    client = Client("http://127.0.0.1:8000", token=None)
    answer = client.get("/v1/kpis/revenue", by="host")
    answer.call     # 'GET /v1/kpis/revenue?by=host' (what the report names)
    answer.body     # the decoded JSON
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from dataclasses import dataclass
from decimal import Decimal
from typing import Any
from urllib.parse import urlencode, urlsplit


class ReportError(Exception):
    """Something the user must fix; the message is shown as it is."""


class ServiceUnreachable(ReportError):
    """No HTTP answer at all (refused, timed out, unknown host)."""


class EndpointError(ReportError):
    """The service answered with an error status; the message is the API's own."""


@dataclass(frozen=True)
class Answer:
    call: str  # method + path + query string, as the report names it
    body: dict[str, Any]


def check_base_url(base_url: str) -> str:
    parts = urlsplit(base_url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ReportError(f"--base-url must be an http(s):// URL, got {base_url!r}")
    return base_url.rstrip("/")


class Client:
    def __init__(self, base_url: str, token: str | None = None, timeout: float = 30.0) -> None:
        self.base_url = check_base_url(base_url)
        self.token = token
        self.timeout = timeout

    def get(self, path: str, **params: Any) -> Answer:
        # "," and ":" stay readable (group_by lists, timestamps): both are legal in a query
        query = urlencode({k: v for k, v in params.items() if v is not None}, safe=",:")
        call = f"GET {path}" + (f"?{query}" if query else "")
        url = self.base_url + path + (f"?{query}" if query else "")
        headers = {"Accept": "application/json", "User-Agent": "questlog-report"}
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        request = urllib.request.Request(url, headers=headers, method="GET")  # noqa: S310
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:  # noqa: S310
                raw = response.read()
        except urllib.error.HTTPError as exc:
            raise EndpointError(f"{call} answered {exc.code}: {_api_message(exc)}") from None
        except (urllib.error.URLError, TimeoutError, ConnectionError) as exc:
            reason = getattr(exc, "reason", exc)
            raise ServiceUnreachable(
                f"the query service at {self.base_url} is unreachable ({reason}); "
                "start it (make run) or pass --base-url"
            ) from None
        try:
            body = json.loads(raw, parse_float=Decimal)
        except ValueError:
            raise EndpointError(f"{call} did not answer JSON: {raw[:200]!r}") from None
        if not isinstance(body, dict):
            raise EndpointError(f"{call} answered {type(body).__name__}, not a JSON object")
        return Answer(call, body)


def _api_message(exc: urllib.error.HTTPError) -> str:
    """The API's ``{"error": {"message", "details"}}`` when there is one, else the body."""
    raw = exc.read()
    try:
        error = json.loads(raw)["error"]
        message = str(error["message"])
        details = error.get("details") or {}
        return message + (f" {json.dumps(details, sort_keys=True)}" if details else "")
    except (ValueError, KeyError, TypeError):
        text = raw.decode("utf-8", "replace").strip()
        return text[:300] or (exc.reason or "no body")
