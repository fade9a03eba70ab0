"""Top-level URL map: health, admin, and each app's own URLs under its prefix."""

from django.contrib import admin
from django.urls import include, path
from django.views.generic import RedirectView, TemplateView

from analytics.views import prometheus_metrics
from chat import pages as chat_pages
from chat import views as chat_views
from kefu import health

urlpatterns = [
    path("", TemplateView.as_view(template_name="home.html"), name="home"),
    path("healthz", health.healthz, name="healthz"),
    path("readyz", health.readyz, name="readyz"),
    path("metrics", prometheus_metrics, name="metrics"),
    # One staff sign-in: the admin's own page sends to it (keeping ?next=), so /admin/ bookmarks still sign in.
    path("admin/login/", RedirectView.as_view(pattern_name="analytics:login", query_string=True)),
    path("admin/", admin.site.urls),
    path("i18n/", include("django.conf.urls.i18n")),  # set_language: the language switcher posts here
    path("api/v1/chat/", include("chat.urls")),
    # DESIGN.md's addresses for the API schema and the widget demo page (same views as under the chat prefix).
    path("api/v1/schema", chat_views.schema, name="api-schema"),
    path("chat/demo/", chat_pages.demo, name="chat-demo"),
    path("chat/demo/zh/", chat_pages.demo_zh, name="chat-demo-zh"),
    path("kb/", include("kb.urls")),  # kb: knowledge bases, uploads, FAQ editor, try-a-query (staff)
    path("staff/", include("analytics.urls")),  # analytics: staff dashboard, knowledge gaps, hand-off inbox
]
