"""Staff pages, mounted at ``/staff/`` by kefu/urls.py."""

from django.contrib.auth import views as auth_views
from django.urls import path

from analytics import views

app_name = "analytics"

urlpatterns = [
    path("", views.dashboard, name="dashboard"),
    path("feedback/", views.feedback, name="feedback"),
    path("feedback/resolve", views.feedback_resolve, name="feedback-resolve"),
    path("gaps/", views.gaps, name="gaps"),
    path("gaps/faq", views.gap_faq, name="gap-faq"),
    path("questions/", views.questions, name="questions"),
    path("inbox/", views.inbox, name="inbox"),
    path("conversations/<str:conversation_id>/", views.conversation, name="conversation"),
    path("conversations/<str:conversation_id>/reply", views.conversation_reply, name="conversation-reply"),
    path("conversations/<str:conversation_id>/close", views.conversation_close, name="conversation-close"),
    path("login/", views.SignIn.as_view(), name="login"),  # the one staff sign-in (/kb/ and /admin/ too)
    path("logout/", auth_views.LogoutView.as_view(next_page="analytics:login"), name="logout"),
]
