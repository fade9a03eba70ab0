"""Django admin for the kb tables (read-mostly: uploads and edits belong on the kb pages)."""

from django.contrib import admin

from kb.models import Chunk, Document, FaqEntry, IndexVersion, KnowledgeBase, TuningRun


@admin.register(KnowledgeBase)
class KnowledgeBaseAdmin(admin.ModelAdmin):
    list_display = ("name", "slug", "languages", "chunk_size", "top_k", "fusion_dense_weight", "embedding_model",
                    "active_index")
    prepopulated_fields = {"slug": ("name",)}
    # The model changes only with a new index version (its vectors are re-embedded): kb_tune / kb.indexing.
    readonly_fields = ("active_index", "embedding_model")
    filter_horizontal = ("staff_groups",)  # per-base scoping of the staff roles (kefu.roles)


@admin.register(Document)
class DocumentAdmin(admin.ModelAdmin):
    list_display = ("title", "knowledge_base", "file_type", "status", "progress", "chunk_count", "created_at")
    list_filter = ("status", "file_type", "knowledge_base")
    search_fields = ("title", "filename", "external_id")
    readonly_fields = ("content_hash", "status", "stage", "progress", "error_message", "page_count", "chunk_count")


@admin.register(Chunk)
class ChunkAdmin(admin.ModelAdmin):
    list_display = ("document", "ordinal", "heading_path", "page", "token_count")
    search_fields = ("text",)
    exclude = ("embedding",)
    readonly_fields = ("document", "ordinal", "text", "heading_path", "page", "token_count")


@admin.register(FaqEntry)
class FaqEntryAdmin(admin.ModelAdmin):
    list_display = ("question", "knowledge_base", "source_document")
    list_filter = ("knowledge_base",)
    search_fields = ("question", "answer")
    exclude = ("embeddings",)


@admin.register(IndexVersion)
class IndexVersionAdmin(admin.ModelAdmin):
    list_display = ("knowledge_base", "number", "status", "chunk_count", "faq_count", "dense_kind",
                    "embedding_model", "build_seconds", "created_at")
    list_filter = ("status", "knowledge_base")
    readonly_fields = [f.name for f in IndexVersion._meta.fields]


@admin.register(TuningRun)
class TuningRunAdmin(admin.ModelAdmin):
    list_display = ("knowledge_base", "status", "method", "pair_count", "gain", "adopted", "seconds", "created_at")
    list_filter = ("status", "adopted", "knowledge_base")
    readonly_fields = [f.name for f in TuningRun._meta.fields]
