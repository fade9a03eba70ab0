"""Every periodic task in the beat schedule names a registered task on a declared queue."""

import pytest
from django.conf import settings


@pytest.mark.parametrize("entry", sorted(settings.CELERY_BEAT_SCHEDULE))
def test_beat_entries_name_registered_tasks_on_declared_queues(entry):
    # given the project's Celery app with every app's tasks imported
    from kefu.celery import app

    app.loader.import_default_modules()
    scheduled = settings.CELERY_BEAT_SCHEDULE[entry]
    # then the task exists and its queue is one the workers consume
    assert scheduled["task"] in app.tasks, f"{entry}: no task named {scheduled['task']!r}"
    assert scheduled["options"]["queue"] in {queue.name for queue in settings.CELERY_TASK_QUEUES}
    assert scheduled["schedule"] > 0


def test_the_schedule_reaps_generations_reclaims_documents_and_rolls_up():
    tasks = {entry["task"] for entry in settings.CELERY_BEAT_SCHEDULE.values()}
    assert {"inference.reap_stale", "kb.reclaim_stale_documents", "analytics.rollup"} <= tasks
