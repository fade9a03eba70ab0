"""The Celery app: ``celery -A kefu worker -Q ingest`` / ``-Q inference -P threads``.

Configuration comes from Django settings (``CELERY_*``); queues, routes and the
long-task settings (late acks, prefetch 1, reject on worker loss, visibility
timeout) are declared in :mod:`kefu.settings.base`. Settings are loaded here on
purpose, so a bad environment stops the worker with one line, not a traceback.
"""

import os
import sys

from celery import Celery, signals

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "kefu.settings")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from django.conf import settings  # noqa: E402

from kefu.config import ConfigError  # noqa: E402

try:
    settings.INSTALLED_APPS  # noqa: B018 - force the settings to load now
except ConfigError as exc:
    sys.stderr.write(f"kefu: configuration error: {exc}\n")
    sys.exit(2)

app = Celery("kefu")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


@signals.worker_init.connect
def check_configuration(**_: object) -> None:
    """Refuse to start a worker whose database, Redis or model settings are wrong."""
    # lazy: preflight imports the apps, whose tasks import this module
    from kefu.preflight import exit_on_failure

    exit_on_failure("worker")
