"""Celery glue for analytics: the periodic rollup (beat entry ``analytics-rollup`` in settings).

No route matches ``analytics.*``, so it runs on the ``default`` queue (served by the ingest worker).
"""

from __future__ import annotations

from analytics.rollups import rollup_refresh
from kefu.celery import app


@app.task(name="analytics.rollup", acks_late=True, ignore_result=True,
          time_limit=1800, soft_time_limit=1700)
def rollup() -> int:
    """Recompute the hours that went stale since the last run; returns how many ranges."""
    return len(rollup_refresh())
