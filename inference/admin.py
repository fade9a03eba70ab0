"""Django admin for generation jobs: read-mostly, for staff looking into a failed or slow answer."""

from django.contrib import admin

from inference.models import GenerationJob


@admin.register(GenerationJob)
class GenerationJobAdmin(admin.ModelAdmin):
    list_display = ("id", "status", "model", "finish_reason", "completion_tokens", "ttft_ms", "tokens_per_s",
                    "worker", "created_at")
    list_filter = ("status", "finish_reason", "model")
    search_fields = ("id", "text", "error")
    readonly_fields = [field.name for field in GenerationJob._meta.fields]
    ordering = ("-created_at",)
