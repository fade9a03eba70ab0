"""The web process's bound on database connections for the chat API (chat/db_slots.py)."""

from __future__ import annotations

import threading

import pytest
from django.db import OperationalError, connection


def test_a_thread_waits_for_a_free_slot_and_gives_up_with_an_operational_error(settings):
    # given one slot, held by another thread
    from chat.db_slots import db_slot

    settings.KEFU_WEB_DB_CONNECTIONS, settings.KEFU_WEB_DB_WAIT_S = 1, 0.2
    held, release = threading.Event(), threading.Event()

    def holder():
        with db_slot():
            held.set()
            release.wait(5)

    thread = threading.Thread(target=holder)
    thread.start()
    held.wait(5)
    # when this thread asks for one, then it gives up after the wait; once the holder leaves, it gets it
    with pytest.raises(OperationalError, match="1 database connections of this web process stayed busy"), db_slot():
        pass
    release.set()
    thread.join(5)
    with db_slot():
        pass


@pytest.mark.django_db(transaction=True)
def test_the_connection_is_closed_when_the_slot_is_given_back(settings):
    # given a thread that queried the database inside a slot (autocommit, as a request's thread)
    from chat.db_slots import with_db_slot
    from chat.models import Message

    settings.KEFU_WEB_DB_CONNECTIONS = 2
    # when the gated call returns
    with_db_slot(Message.objects.count)()
    # then its connection is closed (CONN_MAX_AGE is 0), so an idle stream holds none
    assert connection.connection is None


@pytest.mark.django_db
def test_a_connection_inside_a_transaction_is_left_open(settings):
    # given a test transaction around the call (as Django's TestCase and the test client have)
    from chat.db_slots import with_db_slot
    from chat.models import Message

    with_db_slot(Message.objects.count)()
    # then the connection is still usable
    assert connection.connection is not None and Message.objects.count() == 0
