"""The chat API (JSON, async): every 4xx is decided here with a JSON error body, then one service call.

- ``POST messages`` → 202 with the reply's id, the conversation id and the stream URL;
- ``GET messages/<id>/stream`` → SSE (see :mod:`chat.sse`);
- ``POST messages/<id>/feedback``, ``POST conversations/<id>/handoff``,
  ``GET conversations/<id>`` (history), ``GET conversations/<id>/events`` (SSE: staff replies, live);
- ``GET schema`` → the OpenAPI document.

The widget key travels in the ``X-Kefu-Key`` header; the page's ``Origin`` must be one of
the key's allowed origins (required on writes, checked whenever a browser sends it), and
CORS preflights are answered for origins some enabled key allows.
"""

from __future__ import annotations

import logging
import uuid

from asgiref.sync import sync_to_async
from django.conf import settings
from django.http import HttpResponse, JsonResponse, StreamingHttpResponse
from django.urls import reverse
from django.utils.translation import gettext as _
from django.views.decorators.csrf import csrf_exempt

from chat import live, selectors, services, sse, stream_limits
from chat import metrics as chat_metrics
from chat.api import (
    KEY_HEADER,
    ApiError,
    Caller,
    client_ip,
    error_response,
    json_body,
    optional_string,
    preflight_response,
    request_origin,
    unavailable_error,
    unavailable_errors,
    with_cors,
)
from chat.db_slots import db_call
from chat.models import Feedback, Message
from chat.openapi import openapi_document
from chat.pipeline import guard

log = logging.getLogger(__name__)


# What a widget may send; anything else (sampling parameters, a system prompt) is refused with a 400.
MESSAGE_FIELDS = frozenset({"text", "conversation_id", "visitor_id", "offered_by"})
FEEDBACK_FIELDS = frozenset({"rating", "comment"})


def caller_check(request, *, origin_required: bool) -> Caller:
    """The widget key from the header, enabled, and the Origin allowed for it."""
    origin = request_origin(request)
    key = selectors.widget_key_get(public_key=request.headers.get(KEY_HEADER, "").strip())
    if not request.headers.get(KEY_HEADER):
        raise ApiError(401, "missing_key", f"send the widget's public key in the {KEY_HEADER} header")
    if key is None:
        raise ApiError(403, "unknown_key", "this widget key does not exist or is disabled")
    if not origin and origin_required:
        raise ApiError(403, "origin_required", "the Origin header is required")
    if origin and not selectors.origin_allowed(widget_key=key, origin=origin):
        raise ApiError(403, "origin_not_allowed", f"{origin} is not an allowed origin for this widget key")
    return Caller(key, origin, client_ip(request))


def conversation_of(caller: Caller, public_id: str):
    conversation = selectors.conversation_get(public_id=public_id, widget_key=caller.widget_key)
    if conversation is None:
        raise ApiError(404, "conversation_not_found", _("No such conversation for this widget key."))
    return conversation


def rate_check(caller: Caller, conversation_id: str = "") -> None:
    """The key's and the client's budgets (before the body is read), or the conversation's (after)."""
    if conversation_id:
        limit, window_s = settings.KEFU_CHAT_RATE_LIMITS["conversation"]
        decision = guard.rate_limit_hit("conversation", conversation_id, limit=limit, window_s=window_s)
    else:
        decision = guard.request_rate_check(widget_key=caller.widget_key.public_key, ip=caller.ip, conversation=None)
    rate_refuse(decision, what=_("messages"))


def rate_refuse(decision: guard.RateDecision, *, what: str) -> None:
    if not decision.allowed:
        raise rate_limited(what, decision.scope, decision.retry_after_s)


def rate_limited(what: str, scope: str, retry_after_s: int) -> ApiError:
    """The 429 of a spent budget; its message in the caller's language (Accept-Language, which the widget sets)."""
    message = _("Too many %(what)s (%(scope)s): please wait %(seconds)s seconds and try again.") % {
        "what": what, "scope": scope, "seconds": retry_after_s}
    return ApiError(429, "rate_limited", message, headers={"Retry-After": str(retry_after_s)})


def question_refused(checked: guard.GuardResult, raw: str) -> ApiError:
    """A question the guard refused: its reason in the caller's language (the English is the guard's own)."""
    if checked.code == "text_too_long":
        message = _("the question is %(length)s characters long; the limit is %(limit)s") % {
            "length": len(guard.normalize_question(raw)), "limit": settings.KEFU_CHAT_MAX_QUESTION_CHARS}
    else:
        message = {"invalid_text": _("text must be a string"),
                   "empty_text": _("the question is empty")}.get(checked.code, checked.message)
    return ApiError(400, checked.code, message)


def read_rate_check(request) -> None:
    """A GET of the chat API counts against its client's per-minute reads."""
    rate_refuse(stream_limits.read_rate_check(ip=client_ip(request)), what=_("requests"))


def post_message_sync(request) -> JsonResponse:
    caller = caller_check(request, origin_required=True)
    rate_check(caller)  # counted before the body is read or its text normalized: a flood costs little
    body = json_body(request, fields=MESSAGE_FIELDS)
    checked = guard.question_check(body.get("text"))
    if not checked.ok:
        raise question_refused(checked, body.get("text"))
    conversation_id = optional_string(body, "conversation_id", max_length=32)
    visitor_id = optional_string(body, "visitor_id", max_length=64)
    conversation = conversation_of(caller, conversation_id) if conversation_id else None
    if conversation is not None and conversation.status == conversation.Status.CLOSED:
        raise ApiError(409, "conversation_closed", _("This conversation is closed; please start a new one."))
    if conversation_id:
        rate_check(caller, conversation_id)
    taken_from = offer_taken(body, conversation, checked.text)
    started = services.message_answer(widget_key=caller.widget_key, conversation=conversation,
                                      text=checked.text, visitor_id=visitor_id, taken_from=taken_from)
    return with_cors(JsonResponse(started_body(request, started), status=202), caller.origin)


def offer_taken(body: dict, conversation, question: str):
    """The refusal named by ``offered_by`` (a question the customer took from its suggestions), checked: it must
    be a refusal of this conversation that offered this very question."""
    offered_by = optional_string(body, "offered_by", max_length=36)
    if not offered_by:
        return None
    refusal = selectors.offering_refusal(conversation=conversation, message_id=offered_by, question=question) \
        if conversation is not None else None
    if refusal is None:
        raise ApiError(400, "invalid_offered_by",
                       _("offered_by must name a reply of this conversation that offered this question."))
    return refusal


def started_body(request, started) -> dict:
    """The 202's body; a reply that is final already (cached, direct, refused…) comes whole in ``done``, the
    payload its stream's one event would carry — the widget then needs no stream request."""
    body = {
        "message_id": started.message_id, "conversation_id": started.conversation_id,
        "outcome": started.outcome,
        "stream_url": request.build_absolute_uri(reverse("chat:message-stream", args=[started.message_id])),
    }
    if started.reply is not None:
        body["done"] = sse.done_payload(started.reply)
    return body


async def api_call(request, handler, *args):
    """Answer a CORS preflight, or run a sync handler off the event loop, ApiError → its JSON response."""
    if request.method == "OPTIONS":
        origin = request_origin(request)
        allowed = bool(origin) and await db_call(selectors.origin_allowed_by_any_key)(origin=origin)
        return preflight_response(origin, allowed)

    def run(request, *args):
        try:
            return handler(request, *args)
        except ApiError as error:
            chat_metrics.rejected_count(code=error.code)
            return error_response(error, origin=allowed_origin_for_error(request))
        except unavailable_errors() as exc:
            # Redis, the broker or the database went away mid-request: a JSON 503 the widget can retry.
            log.warning("%s %s: a backing service is unavailable: %s", request.method, request.path, exc)
            return error_response(unavailable_error())

    return await db_call(run)(request, *args)


def allowed_origin_for_error(request) -> str:
    # Errors are readable by the page only when its origin is allowed by some key (so a widget can show them).
    origin = request_origin(request)
    return origin if origin and selectors.origin_allowed_by_any_key(origin=origin) else ""


def method_is(request, *methods: str) -> None:
    if request.method not in (*methods, "OPTIONS"):
        raise ApiError(405, "method_not_allowed", f"use {' or '.join(methods)}")


@csrf_exempt
async def messages(request):
    def handler(request):
        method_is(request, "POST")
        return post_message_sync(request)

    return await api_call(request, handler)


def stream_prepare(request, message_id):
    if request.method != "GET":
        raise ApiError(405, "method_not_allowed", "use GET")
    read_rate_check(request)
    message = selectors.message_get(message_id=message_id)
    if message is None or message.role != Message.Role.ASSISTANT:
        raise ApiError(404, "message_not_found", "no such message")
    origin = request_origin(request)
    key = message.conversation.widget_key
    if origin and (key is None or not selectors.origin_allowed(widget_key=key, origin=origin)):
        raise ApiError(403, "origin_not_allowed", f"{origin} is not an allowed origin for this conversation")
    last_event_id = request.headers.get("Last-Event-ID") or request.GET.get("last_event_id") or None
    return message, origin, last_event_id, sse.already_delivered(message, last_event_id)


@csrf_exempt
async def message_stream(request, message_id):
    if request.method == "OPTIONS":
        return await api_call(request, None, message_id)
    try:
        message, origin, last_event_id, delivered = await db_call(stream_prepare)(
            request, message_id)
    except ApiError as error:
        return await refused(request, error)
    except unavailable_errors() as exc:
        log.warning("stream of message %s: a backing service is unavailable: %s", message_id, exc)
        return error_response(unavailable_error())
    if delivered:
        # 204 tells EventSource the stream is over and not to reconnect.
        return with_cors(HttpResponse(status=204), origin)
    return await sse_response(request, lambda: sse.message_events(message, last_event_id=last_event_id),
                              origin=origin)


async def refused(request, error: ApiError):
    """A stream request's 4xx, counted, readable by an allowed origin."""
    chat_metrics.rejected_count(code=error.code)
    return error_response(error, origin=await db_call(allowed_origin_for_error)(request))


async def sse_response(request, events_of, *, origin: str, conversation: str | None = None):
    """The stream's response, if its client (and, for a live stream, its conversation) may open one more."""
    taken = await sync_to_async(stream_limits.stream_slot_take, thread_sensitive=False)(
        ip=client_ip(request), conversation=conversation)
    if isinstance(taken, stream_limits.StreamRefusal):
        chat_metrics.rate_limited_count(scope=taken.scope)
        return await refused(request, ApiError(
            429, "too_many_streams", _("Too many open streams (%(scope)s: at most %(limit)s); close one and retry.")
            % {"scope": taken.scope, "limit": taken.limit}, headers={"Retry-After": "5"}))
    response = StreamingHttpResponse(slot_released_after(events_of(), taken), content_type="text/event-stream")
    response["Cache-Control"] = "no-cache"
    response["X-Accel-Buffering"] = "no"
    return with_cors(response, origin)


async def slot_released_after(events, slot):
    """The stream's events; its slot is given back however it ends (finished, or the client went away)."""
    try:
        async for chunk in events:
            yield chunk
    finally:
        await sync_to_async(stream_limits.stream_slot_release, thread_sensitive=False)(slot)


def live_prepare(request, conversation_id):
    """The conversation of a live stream, its CORS origin and the message id to resume after."""
    if request.method != "GET":
        raise ApiError(405, "method_not_allowed", "use GET")
    read_rate_check(request)
    conversation = selectors.conversation_get(public_id=conversation_id)
    if conversation is None:
        raise ApiError(404, "conversation_not_found", "no such conversation")
    origin = request_origin(request)
    key = conversation.widget_key
    if origin and (key is None or not selectors.origin_allowed(widget_key=key, origin=origin)):
        raise ApiError(403, "origin_not_allowed", f"{origin} is not an allowed origin for this conversation")
    after = request.headers.get("Last-Event-ID") or request.GET.get("after") or None
    if after is not None:
        try:
            after = str(uuid.UUID(after))
        except ValueError:
            raise ApiError(400, "invalid_event_id", "Last-Event-ID / after must be a message id") from None
    return conversation, origin, after


@csrf_exempt
async def conversation_events(request, conversation_id):
    """SSE: staff replies of a handed-off conversation as they are sent (see :mod:`chat.live`)."""
    if request.method == "OPTIONS":
        return await api_call(request, None, conversation_id)
    try:
        conversation, origin, after = await db_call(live_prepare)(request, conversation_id)
    except ApiError as error:
        return await refused(request, error)
    return await sse_response(request, lambda: live.conversation_events(
        conversation, after_id=after, sse_event=sse.sse_event, message_json=lambda m: message_json(request, m)),
        origin=origin, conversation=conversation.public_id)


@csrf_exempt
async def message_feedback(request, message_id):
    def handler(request, message_id):
        method_is(request, "POST")
        caller = caller_check(request, origin_required=True)
        body = json_body(request, fields=FEEDBACK_FIELDS)
        rating = body.get("rating")
        if rating not in Feedback.Rating.values:
            raise ApiError(400, "invalid_rating", _('The rating must be "up" or "down".'))
        comment = optional_string(body, "comment", max_length=2000)
        message = selectors.message_get(message_id=message_id)
        if (message is None or message.role != Message.Role.ASSISTANT
                or message.conversation.knowledge_base_id != caller.widget_key.knowledge_base_id):
            raise ApiError(404, "message_not_found", "no such message for this widget key")
        if not message.is_final:
            raise ApiError(409, "message_pending", _("The answer is not finished yet."))
        feedback = services.feedback_record(message=message, rating=rating, comment=guard.normalize_question(comment))
        return with_cors(JsonResponse({"message_id": str(message.pk), "rating": feedback.rating,
                                       "comment": feedback.comment}), caller.origin)

    return await api_call(request, handler, message_id)


@csrf_exempt
async def conversation_handoff(request, conversation_id):
    """Rate-limited per IP and conversation (``KEFU_HANDOFF_RATE_LIMITS``), 409 on a closed conversation, and
    idempotent once handed off: a repeat gets the existing notice's id and stores nothing."""

    def handler(request, conversation_id):
        method_is(request, "POST")
        caller = caller_check(request, origin_required=True)
        for scope, ident in (("ip", caller.ip), ("conversation", conversation_id[:32])):
            limit, window_s = settings.KEFU_HANDOFF_RATE_LIMITS[scope]
            decision = guard.rate_limit_hit(f"handoff-{scope}", ident, limit=limit, window_s=window_s)
            if not decision.allowed:
                raise rate_limited(_("hand-off requests"), scope, decision.retry_after_s)
        conversation = conversation_of(caller, conversation_id)
        if conversation.status == conversation.Status.CLOSED:
            raise ApiError(409, "conversation_closed", _("This conversation is closed; please start a new one."))
        started = services.handoff_request(conversation=conversation)
        return with_cors(JsonResponse(started_body(request, started), status=202), caller.origin)

    return await api_call(request, handler, conversation_id)


@csrf_exempt
async def conversation_detail(request, conversation_id):
    def handler(request, conversation_id):
        method_is(request, "GET")
        caller = caller_check(request, origin_required=False)
        read_rate_check(request)
        conversation = conversation_of(caller, conversation_id)
        rows = [services.message_reconcile(message=m) if m.outcome == Message.Outcome.PENDING else m
                for m in selectors.conversation_messages(conversation=conversation)]
        return with_cors(JsonResponse({
            "conversation_id": conversation.public_id, "status": conversation.status,
            "messages": [message_json(request, m) for m in rows],
        }), caller.origin)

    return await api_call(request, handler, conversation_id)


def message_json(request, message: Message) -> dict:
    feedback = getattr(message, "feedback", None)  # reverse one-to-one: absent → AttributeError → None
    body = {"id": str(message.pk), "role": message.role, "text": message.text, "outcome": message.outcome,
            "created_at": message.created_at.isoformat()}
    if message.role == Message.Role.ASSISTANT:
        body.update(citations=message.citations, suggestions=message.offered_questions,
                    feedback=feedback.rating if feedback else None,
                    stream_url=request.build_absolute_uri(reverse("chat:message-stream", args=[message.pk])))
    return body


async def schema(request):
    return JsonResponse(openapi_document(request.build_absolute_uri("/")))
