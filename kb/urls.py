"""Staff pages of the kb app, mounted under ``kb/``."""

from django.urls import path

from kb import views

app_name = "kb"

urlpatterns = [
    path("", views.kb_list, name="list"),
    path("<slug:slug>/", views.kb_detail, name="detail"),
    path("<slug:slug>/upload", views.document_upload, name="upload"),
    path("<slug:slug>/progress", views.document_progress, name="progress"),
    path("<slug:slug>/reindex", views.kb_reindex, name="reindex"),
    path("<slug:slug>/versions/<int:pk>/activate", views.index_version_activate, name="version_activate"),
    path("<slug:slug>/documents/<int:pk>/delete", views.document_delete, name="document_delete"),
    path("<slug:slug>/documents/<int:pk>/reindex", views.document_reindex, name="document_reindex"),
    path("<slug:slug>/faq/", views.faq_list, name="faq"),
    path("<slug:slug>/faq/import", views.faq_import, name="faq_import"),
    path("<slug:slug>/faq/<int:pk>/", views.faq_edit, name="faq_edit"),
    path("<slug:slug>/faq/<int:pk>/delete", views.faq_delete, name="faq_delete"),
    path("<slug:slug>/search", views.kb_search, name="search"),
    path("<slug:slug>/tune", views.kb_tune, name="tune"),
    path("<slug:slug>/tuning", views.tuning_progress, name="tuning_progress"),
    path("<slug:slug>/model", views.kb_model, name="model"),
    path("<slug:slug>/glossary", views.kb_glossary, name="glossary"),
]
