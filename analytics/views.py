"""Analytics HTTP views: the Prometheus scrape endpoint (dashboard pages live beside it)."""

from django.http import HttpResponse, JsonResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

from analytics import metrics


@never_cache
@require_GET
def prometheus_metrics(request):
    if not metrics.may_scrape(request):
        return JsonResponse({"error": "forbidden", "message": "metrics need the bearer token or an allowed network"},
                            status=403)
    return HttpResponse(metrics.exposition(), content_type=metrics.CONTENT_TYPE)
