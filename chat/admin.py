"""Django admin for the chat app: widget keys and their origins, per-base chat profiles
(system prompt, answer mode, sensitive words), and read-mostly conversations."""

from django.contrib import admin

from chat.models import CachedAnswer, ChatProfile, Conversation, Feedback, Message, WidgetKey


@admin.register(WidgetKey)
class WidgetKeyAdmin(admin.ModelAdmin):
    list_display = ("public_key", "name", "knowledge_base", "enabled", "created_at")
    list_filter = ("enabled", "knowledge_base")
    readonly_fields = ("public_key", "created_at")


@admin.register(ChatProfile)
class ChatProfileAdmin(admin.ModelAdmin):
    list_display = ("knowledge_base", "answer_mode", "relevance_floor", "updated_at")
    list_filter = ("answer_mode",)


class MessageInline(admin.TabularInline):
    model = Message
    fields = ("role", "text", "outcome", "reason", "intent", "intent_confidence", "created_at")
    readonly_fields = fields
    extra = 0
    can_delete = False
    show_change_link = True


@admin.register(Conversation)
class ConversationAdmin(admin.ModelAdmin):
    list_display = ("public_id", "knowledge_base", "status", "created_at", "updated_at")
    list_filter = ("status", "knowledge_base")
    search_fields = ("public_id", "visitor_id")
    readonly_fields = ("public_id", "created_at", "updated_at", "handed_off_at")
    inlines = [MessageInline]


@admin.register(Message)
class MessageAdmin(admin.ModelAdmin):
    list_display = ("id", "role", "outcome", "reason", "intent", "created_at")
    list_filter = ("role", "outcome", "intent")
    search_fields = ("text",)
    readonly_fields = [field.name for field in Message._meta.fields]


@admin.register(Feedback)
class FeedbackAdmin(admin.ModelAdmin):
    list_display = ("message", "rating", "comment", "created_at")
    list_filter = ("rating",)


@admin.register(CachedAnswer)
class CachedAnswerAdmin(admin.ModelAdmin):
    list_display = ("normalized_question", "knowledge_base", "index_version", "hits", "created_at")
    readonly_fields = ("embedding",)
