"""HTTP plumbing shared by the chat views: JSON errors, CORS and origin checks, request parsing."""

from __future__ import annotations

import json
from dataclasses import dataclass

import redis
from django.conf import settings
from django.db import InterfaceError, OperationalError
from django.http import HttpResponse, JsonResponse
from kombu.exceptions import OperationalError as BrokerUnavailable

from chat.pipeline.guard import rate_limit_client
from kb.search import SearchBackendUnavailable
from kefu.proxies import client_address

KEY_HEADER = "X-Kefu-Key"
CORS_METHODS = "GET, POST, OPTIONS"
CORS_HEADERS = "Content-Type, X-Kefu-Key, Last-Event-ID"


class ApiError(Exception):
    """A 4xx decided by a view: status, machine code, human message, extra headers."""

    def __init__(self, status: int, code: str, message: str, headers: dict | None = None):
        super().__init__(message)
        self.status, self.code, self.message, self.headers = status, code, message, headers or {}


@dataclass(frozen=True)
class Caller:
    """Who is calling: the widget key (with its base) and the page origin, already checked."""

    widget_key: object
    origin: str
    ip: str


def redis_unavailable_errors() -> tuple[type[BaseException], ...]:
    """Errors meaning Redis (cache, token streams, rate limits) does not answer."""
    return (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError)


def unavailable_errors() -> tuple[type[BaseException], ...]:
    """Errors meaning a backing service (Redis, the Celery broker, the database, Milvus) is down: a 503, not a 500."""

    return (*redis_unavailable_errors(), BrokerUnavailable, OperationalError, InterfaceError, SearchBackendUnavailable)


def unavailable_error() -> ApiError:
    return ApiError(503, "service_unavailable", "the service is briefly unavailable; try again in a few seconds",
                    headers={"Retry-After": "5"})


def error_response(error: ApiError, *, origin: str = "") -> JsonResponse:
    response = JsonResponse({"error": {"code": error.code, "message": error.message}}, status=error.status)
    for name, value in error.headers.items():
        response[name] = value
    return with_cors(response, origin)


def with_cors(response, origin: str):
    """Allow the (already checked) origin to read the response."""
    if origin:
        response["Access-Control-Allow-Origin"] = origin
        response["Vary"] = "Origin"
    return response


def preflight_response(origin: str, allowed: bool):
    response = HttpResponse(status=204 if allowed else 403)
    if allowed:
        with_cors(response, origin)
        response["Access-Control-Allow-Methods"] = CORS_METHODS
        response["Access-Control-Allow-Headers"] = CORS_HEADERS
        response["Access-Control-Max-Age"] = "600"
    return response


def json_body(request, *, fields: frozenset[str]) -> dict:
    """The JSON object of the body, holding no field but ``fields`` (sampling parameters, prompts: 400).

    A body over ``KEFU_CHAT_MAX_BODY_BYTES`` is refused (413) by its Content-Length before it is read, and
    one without a length is read only that far."""
    if request.content_type != "application/json":
        raise ApiError(415, "unsupported_media_type", "send the body as application/json")
    try:
        body = json.loads(body_bytes(request) or b"{}")
    except (ValueError, UnicodeDecodeError) as exc:
        raise ApiError(400, "invalid_json", f"the body is not valid JSON: {exc}") from exc
    if not isinstance(body, dict):
        raise ApiError(400, "invalid_json", "the body must be a JSON object")
    unknown = sorted(set(body) - fields)
    if unknown:
        raise ApiError(400, "unknown_field", f"unknown field(s): {', '.join(unknown)}; "
                       f"the accepted fields are {', '.join(sorted(fields))}")
    return body


def body_bytes(request) -> bytes:
    """The raw body, at most ``KEFU_CHAT_MAX_BODY_BYTES`` of it (else a 413), read once."""
    cap = settings.KEFU_CHAT_MAX_BODY_BYTES
    too_large = ApiError(413, "body_too_large", f"the request body is larger than {cap} bytes")
    try:
        declared = int(request.META.get("CONTENT_LENGTH") or 0)
    except ValueError:
        raise ApiError(400, "invalid_content_length", "Content-Length is not a number") from None
    if declared > cap:
        raise too_large
    raw = request._body if hasattr(request, "_body") else request.read(cap + 1)  # read already: as it was
    if len(raw) > cap:
        raise too_large
    return raw


def optional_string(body: dict, name: str, *, max_length: int) -> str:
    value = body.get(name)
    if value is None:
        return ""
    if not isinstance(value, str) or len(value) > max_length:
        raise ApiError(400, f"invalid_{name}", f"{name} must be a string of at most {max_length} characters")
    return value


def client_ip(request) -> str:
    """The client as rate limits count it: its IPv4 address, or its IPv6 /64 (one host owns a whole /64).

    X-Forwarded-For is read only when the socket peer is a proxy named in KEFU_TRUSTED_PROXIES.
    """
    return rate_limit_client(client_address(request))


def request_origin(request) -> str:
    return request.headers.get("Origin", "").rstrip("/")
