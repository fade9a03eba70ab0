"""Knowledge-base tables: bases, uploaded documents, their chunks, FAQ entries, index versions.

Chunks and FAQ entries keep their embeddings in the database (float32 bytes), so any
process on any node can rebuild an index version without re-embedding and without a
shared disk; the index files under ``KEFU_DATA_DIR`` are a local cache of derived data.
"""

from __future__ import annotations

from django.conf import settings
from django.db import models


def default_dense_weight() -> float:
    return settings.KEFU_KB_DENSE_WEIGHT


def default_rrf_k() -> int:
    return settings.KEFU_KB_RRF_K


def default_embedding_model() -> str:
    return settings.KEFU_EMBEDDING_MODEL


class KnowledgeBase(models.Model):
    name = models.CharField(max_length=200)
    slug = models.SlugField(max_length=100, unique=True)
    # Comma-separated language codes ("en", "zh"); only used to pick tokenisers and show the admin.
    languages = models.CharField(max_length=50, default="en")
    chunk_size = models.PositiveIntegerField(default=200, help_text="tokens of the embedding model")
    chunk_overlap = models.PositiveIntegerField(default=30, help_text="tokens repeated between chunks")
    top_k = models.PositiveIntegerField(default=5)
    # A FAQ hit at or above this cosine similarity may be answered directly, without generation.
    direct_answer_threshold = models.FloatField(default=0.85)
    # Weight of the dense retriever in weighted RRF (BM25 gets 1 - this); tuned on the base's own FAQ pairs.
    fusion_dense_weight = models.FloatField(default=default_dense_weight)
    # RRF's k for this base (small k trusts the top ranks more); tuned with the weight.
    fusion_rrf_k = models.PositiveIntegerField(default=default_rrf_k)
    # How the two lists are fused: weighted RRF, or a convex combination of min-max-normalised scores
    # (the weight is then the dense share). Tuned with the weight (kb.evaluation.fusion_weight_tune).
    fusion_method = models.CharField(max_length=10, choices=[("rrf", "weighted RRF"),
                                                             ("minmax", "min-max score combination")],
                                     default="rrf")
    # The embedding model the stored vectors come from (kb.embedding names): a bundled or registered model,
    # or tuned:<slug>:<hash12>. It changes only together with a new index version (kb.indexing).
    embedding_model = models.CharField(max_length=200, default=default_embedding_model)
    active_index = models.ForeignKey(
        "IndexVersion", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    # Per-base scoping of the staff roles (kefu.roles): none — every role member reaches this base; some —
    # only members of one of these groups (and superusers) see it on /kb/ and /staff/.
    staff_groups = models.ManyToManyField("auth.Group", blank=True, related_name="scoped_bases",
                                          help_text="leave empty for every staff role; else only these groups")
    # Counts the staff's glossary corrections (GlossaryEdit): part of the key a process keeps the corrected
    # glossary under, so a correction is searched with at once on every node, without a new index version.
    glossary_revision = models.PositiveIntegerField(default=0)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class Document(models.Model):
    class Status(models.TextChoices):
        QUEUED = "queued"
        PARSING = "parsing"
        EMBEDDING = "embedding"
        INDEXING = "indexing"
        READY = "ready"
        FAILED = "failed"

    ACTIVE_STATUSES = (Status.QUEUED, Status.PARSING, Status.EMBEDDING, Status.INDEXING)

    knowledge_base = models.ForeignKey(KnowledgeBase, on_delete=models.CASCADE, related_name="documents")
    title = models.CharField(max_length=300)
    # An id from outside (an FAQ row id, an evaluation label); blank for ordinary uploads.
    external_id = models.CharField(max_length=200, blank=True, default="")
    file = models.FileField(upload_to="kb/%Y/%m/", blank=True)
    filename = models.CharField(max_length=300, blank=True, default="")
    file_type = models.CharField(max_length=20, blank=True, default="")
    content_hash = models.CharField(max_length=64)
    size_bytes = models.PositiveBigIntegerField(default=0)
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.QUEUED)
    stage = models.CharField(max_length=100, blank=True, default="")
    progress = models.PositiveSmallIntegerField(default=0)
    error_message = models.TextField(blank=True, default="")
    page_count = models.PositiveIntegerField(default=0)
    chunk_count = models.PositiveIntegerField(default=0)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.UniqueConstraint(fields=["knowledge_base", "content_hash"], name="kb_document_unique_hash")
        ]

    def __str__(self) -> str:
        return self.title


class Chunk(models.Model):
    document = models.ForeignKey(Document, on_delete=models.CASCADE, related_name="chunks")
    ordinal = models.PositiveIntegerField()
    text = models.TextField()
    # " > "-joined headings above the chunk ("Installation > Upgrading").
    heading_path = models.CharField(max_length=1000, blank=True, default="")
    page = models.PositiveIntegerField(null=True, blank=True)
    token_count = models.PositiveIntegerField(default=0)
    embedding = models.BinaryField()  # float32, L2-normalised, dimension of the embedding model

    class Meta:
        ordering = ["document_id", "ordinal"]
        constraints = [models.UniqueConstraint(fields=["document", "ordinal"], name="kb_chunk_unique_ordinal")]

    def __str__(self) -> str:
        return f"{self.document_id}#{self.ordinal}"


class GlossaryEdit(models.Model):
    """A staff correction of the glossary a base mines from its own texts (kb.retrieval.glossary): a term explained
    the staff's way (a term of their own, or a mined explanation replaced), or a mined term not explained at all."""

    class Kind(models.TextChoices):
        EXPLAIN = "explain", "explain"
        IGNORE = "ignore", "do not explain"

    knowledge_base = models.ForeignKey(KnowledgeBase, on_delete=models.CASCADE, related_name="glossary_edits")
    term = models.CharField(max_length=48)
    term_key = models.CharField(max_length=48)  # the term case-folded: one correction per term, whatever its case
    kind = models.CharField(max_length=10, choices=Kind.choices)
    explanation = models.CharField(max_length=120, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["term_key"]
        constraints = [models.UniqueConstraint(fields=["knowledge_base", "term_key"], name="glossary_edit_once")]

    def __str__(self) -> str:
        return f"{self.term}: {self.explanation or self.kind}"


class FaqEntry(models.Model):
    knowledge_base = models.ForeignKey(KnowledgeBase, on_delete=models.CASCADE, related_name="faq_entries")
    question = models.TextField()
    alternatives = models.JSONField(default=list, blank=True, help_text="other phrasings of the question")
    answer = models.TextField()
    external_id = models.CharField(max_length=200, blank=True, default="")
    source_document = models.ForeignKey(
        Document, null=True, blank=True, on_delete=models.SET_NULL, related_name="faq_entries"
    )
    # One float32 row per phrasing (question first, then alternatives), L2-normalised.
    embeddings = models.BinaryField(default=b"")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["id"]
        verbose_name_plural = "FAQ entries"

    def __str__(self) -> str:
        return self.question[:80]

    @property
    def phrasings(self) -> list[str]:
        return [self.question, *[a for a in self.alternatives if a]]


class IndexVersion(models.Model):
    class Status(models.TextChoices):
        BUILDING = "building"
        READY = "ready"
        FAILED = "failed"
        HELD = "held"  # built, but the regression gate kept it from serving (kb.regression_gate)

    knowledge_base = models.ForeignKey(KnowledgeBase, on_delete=models.CASCADE, related_name="index_versions")
    number = models.PositiveIntegerField()
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.BUILDING)
    chunk_count = models.PositiveIntegerField(default=0)
    faq_count = models.PositiveIntegerField(default=0)
    dense_kind = models.CharField(max_length=20, blank=True, default="")
    # The model the version's vectors came from, and the sha256 of its files (kb.embedding.model_hash).
    embedding_model = models.CharField(max_length=200, blank=True, default="")
    embedding_hash = models.CharField(max_length=64, blank=True, default="")
    error_message = models.TextField(blank=True, default="")
    # Where the version's rows live (kb.search_backends): "local" files under KEFU_DATA_DIR, or "milvus".
    # Searches use the active version's backend, so a base keeps serving while it is moved (kb_reindex).
    backend = models.CharField(max_length=20, default="local")
    build_seconds = models.FloatField(default=0)
    # The regression gate's comparison with the version it would replace (kb.regression_gate.GateReport).
    gate = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["knowledge_base_id", "-number"]
        constraints = [
            models.UniqueConstraint(fields=["knowledge_base", "number"], name="kb_index_unique_number")
        ]

    def __str__(self) -> str:
        return f"{self.knowledge_base_id} v{self.number} ({self.status})"


class TuningRun(models.Model):
    """One tuning job of a base's embedder (kb.tuning): its progress, then what it measured and decided."""

    class Status(models.TextChoices):
        QUEUED = "queued"
        RUNNING = "running"
        DONE = "done"
        FAILED = "failed"

    ACTIVE_STATUSES = (Status.QUEUED, Status.RUNNING)

    knowledge_base = models.ForeignKey(KnowledgeBase, on_delete=models.CASCADE, related_name="tuning_runs")
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.QUEUED)
    stage = models.CharField(max_length=100, blank=True, default="queued")
    progress = models.PositiveSmallIntegerField(default=0)
    method = models.CharField(max_length=10, blank=True, default="")  # "full" or "lora"
    base_model = models.CharField(max_length=200, blank=True, default="")  # the model it started from
    tuned_model = models.CharField(max_length=200, blank=True, default="")  # the artifact, when adopted
    pair_count = models.PositiveIntegerField(default=0)
    # Held-out nDCG@10 of question → answer retrieval per fold: [{"fold", "train", "test", "before", "after"}].
    folds = models.JSONField(default=list, blank=True)
    gain = models.FloatField(null=True, blank=True)  # mean held-out nDCG@10 gain over the folds
    adopted = models.BooleanField(default=False)
    reason = models.TextField(blank=True, default="")  # why adopted or not, in words
    seconds = models.FloatField(default=0)
    error_message = models.TextField(blank=True, default="")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)  # the heartbeat: a running job saves progress often

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"{self.knowledge_base_id} tuning {self.pk} ({self.status})"


class EvalCase(models.Model):
    """A question the base must keep answering from the right source: the regression gate's stored cases.

    Staff confirm them: the questions of a knowledge gap turned into an FAQ entry, down-rated questions
    whose right source a staff member named, and refused questions whose offered question the customer took. (The held-out fold of the base's own FAQ
    pairs joins them at evaluation time; it is not stored.)
    """

    class Origin(models.TextChoices):
        GAP = "gap", "confirmed through a knowledge gap"
        FEEDBACK = "feedback", "a resolved thumbs-down"
        STAFF = "staff", "added by staff"
        OFFER = "offer", "a question the customer took from a refusal's offer, confirmed by staff"

    knowledge_base = models.ForeignKey(KnowledgeBase, on_delete=models.CASCADE, related_name="eval_cases")
    question = models.TextField()
    # The expected source: an FAQ entry or a document (one of the two).
    faq_entry = models.ForeignKey(FaqEntry, null=True, blank=True, on_delete=models.CASCADE, related_name="+")
    document = models.ForeignKey(Document, null=True, blank=True, on_delete=models.CASCADE, related_name="+")
    origin = models.CharField(max_length=20, choices=Origin.choices, default=Origin.STAFF)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["id"]
        constraints = [
            models.UniqueConstraint(fields=["knowledge_base", "question"], name="kb_evalcase_unique_question"),
            models.CheckConstraint(condition=models.Q(faq_entry__isnull=False) | models.Q(document__isnull=False),
                                   name="kb_evalcase_has_source"),
        ]

    def __str__(self) -> str:
        return self.question[:80]
