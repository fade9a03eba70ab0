"""Project-level Celery tasks: a ping that tells which worker and queue answered.

Used by the service-mode round-trip test and by operators
(``celery -A kefu call kefu.ping --queue inference``) to check a queue is served.
"""

import os
import socket

from kefu.celery import app


@app.task(name="kefu.ping", bind=True, ignore_result=False, acks_late=True, time_limit=30)
def ping(self, payload: str) -> dict:
    """Echo ``payload`` with the worker's host, pid and the queue the message came from."""
    delivery = self.request.delivery_info or {}
    return {
        "payload": payload,
        "hostname": self.request.hostname or socket.gethostname(),
        "pid": os.getpid(),
        "queue": delivery.get("routing_key"),
    }
