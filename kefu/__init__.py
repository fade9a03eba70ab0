"""Kefu project package: settings, URLs, the ASGI entry point and the Celery app.

The Celery app lives in ``kefu.celery`` and is found by ``celery -A kefu``; it is
not imported here so that importing settings never drags Celery in first.
"""
