"""Chat URLs, mounted at ``/api/v1/chat/`` by kefu/urls.py."""

from django.urls import path

from chat import pages, views

app_name = "chat"

urlpatterns = [
    path("messages", views.messages, name="messages"),
    path("messages/<str:message_id>/stream", views.message_stream, name="message-stream"),
    path("messages/<str:message_id>/feedback", views.message_feedback, name="message-feedback"),
    path("conversations/<str:conversation_id>", views.conversation_detail, name="conversation"),
    path("conversations/<str:conversation_id>/handoff", views.conversation_handoff, name="conversation-handoff"),
    path("conversations/<str:conversation_id>/events", views.conversation_events, name="conversation-events"),
    path("schema", views.schema, name="schema"),
    path("demo/", pages.demo, name="demo"),
    path("demo/zh/", pages.demo_zh, name="demo-zh"),
]
