"""Reader bookkeeping: who is reading a generating message, and cancelling it when nobody is.

Readers are counted in the cache (one key per message). The last reader to leave a message still
generating schedules a cancel after a short grace period (a reloading page reconnects within it);
the cancel goes ahead only if no reader came back and the message is still pending.
"""

from __future__ import annotations

import logging
import threading

from django.core.cache import cache
from django.db import close_old_connections

from chat import generation
from chat.api import redis_unavailable_errors
from chat.models import Message

log = logging.getLogger(__name__)
CANCEL_GRACE_S = 3.0


def readers_key(message_id) -> str:
    return f"chat:readers:{message_id}"


def reader_join(message_id) -> None:
    key = readers_key(message_id)
    if not cache.add(key, 1, timeout=3600):
        try:
            cache.incr(key)
        except ValueError:
            cache.add(key, 1, timeout=3600)


def reader_leave(message_id) -> int:
    try:
        return cache.decr(readers_key(message_id))
    except ValueError:
        return 0
    except redis_unavailable_errors() as exc:  # Redis went away: the count is lost with it
        log.warning("reader count of message %s not decremented: %s", message_id, exc)
        return 1


def cancel_if_unread(message_id) -> bool:
    """Cancel the message's generation when nobody reads it and it is still pending."""
    if (cache.get(readers_key(message_id)) or 0) > 0:
        return False
    message = Message.objects.filter(pk=message_id, outcome=Message.Outcome.PENDING).first()
    if message is None or not message.inference_job_id:
        return False
    log.info("no reader left for message %s: cancelling job %s", message_id, message.inference_job_id)
    return generation.generation_stop(job_id=message.inference_job_id)


def cancel_in_thread(message_id) -> None:
    """The timer thread's body: its own database connection, closed afterwards."""
    close_old_connections()
    try:
        cancel_if_unread(message_id)
    except Exception:
        log.exception("cancelling the generation of message %s failed", message_id)
    finally:
        close_old_connections()


def schedule_cancel(message_id, grace_s: float) -> None:
    if grace_s <= 0:
        cancel_if_unread(message_id)
        return
    timer = threading.Timer(grace_s, cancel_in_thread, args=(message_id,))
    timer.daemon = True
    timer.start()
