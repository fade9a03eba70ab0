"""``/healthz`` (the process answers) and ``/readyz`` (it can serve a customer).

Readiness covers the database, Redis when configured, the embedding model loaded in
this process, and a generator that is ready: the in-process engine in embedded
mode, or a live inference worker's heartbeat in service mode.
"""

from django.conf import settings
from django.http import JsonResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

from kefu import preflight


@never_cache
@require_GET
def healthz(request):
    return JsonResponse({"status": "ok", "mode": settings.KEFU_MODE})


@never_cache
@require_GET
def readyz(request):
    from inference.selectors import generator_status
    from kb.embedding import embedder_status

    components = [
        preflight.check_database(),
        preflight.check_redis(),
        embedder_status(),
        generator_status(),
    ]
    ready = all(component.ok for component in components)
    body = {
        "status": "ready" if ready else "not_ready",
        "mode": settings.KEFU_MODE,
        "components": {component.name: component.as_dict() for component in components},
    }
    return JsonResponse(body, status=200 if ready else 503)
