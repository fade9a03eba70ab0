"""``/healthz`` (the process answers) and ``/readyz`` (it can serve a customer).

Readiness covers the database, Redis when configured, the search backend (named with its state
in the details: ``"search_backend": {"backend": "milvus", "state": "up"}``), the embedding model loaded in
this process, and a generator that is ready: the in-process engine in embedded
mode, or a live inference worker's heartbeat in service mode.

Anyone may ask whether the process is ready (``{"status": "ready" | "not_ready"}``, 200 / 503);
the components — database and Redis errors, hosts, worker names and pids — are shown only
to a caller with the metrics bearer token (``KEFU_METRICS_TOKEN``) or a signed-in Django staff user.
"""

from django.conf import settings
from django.db import DatabaseError
from django.http import HttpRequest, JsonResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

from analytics.metrics import bearer_token_matches
from inference.selectors import generator_status
from kb.embedding import embedder_status
from kefu import preflight


@never_cache
@require_GET
def healthz(request):
    return JsonResponse({"status": "ok", "mode": settings.KEFU_MODE})


@never_cache
@require_GET
def readyz(request):
    components = [
        preflight.check_database(),
        preflight.check_redis(),
        preflight.check_search_backend(),
        embedder_status(),
        generator_status(),
    ]
    ready = all(component.ok for component in components)
    body = {"status": "ready" if ready else "not_ready"}
    if may_see_details(request):
        body["mode"] = settings.KEFU_MODE
        body["search_backend"] = search_backend_state(components)
        body["components"] = {component.name: component.as_dict() for component in components}
    return JsonResponse(body, status=200 if ready else 503)


def search_backend_state(components) -> dict:
    """The backend's name and whether it answers, at the top of the details (its host and error are in components)."""
    search = next(c for c in components if c.name == "search_backend")
    return {"backend": search.extra.get("backend", ""), "state": "up" if search.ok else "down"}


def may_see_details(request: HttpRequest) -> bool:
    """The metrics bearer token, or a signed-in active staff user (a database that fails means no)."""
    token = settings.KEFU_METRICS_TOKEN
    if token and bearer_token_matches(request, token):
        return True
    if settings.SESSION_COOKIE_NAME not in request.COOKIES:
        return False  # no session: no query (the database may be the component that is down)
    try:
        user = request.user
        return bool(user.is_authenticated and user.is_active and user.is_staff)
    except DatabaseError:
        return False
