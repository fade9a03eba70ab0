"""Chat tables: widget keys, per-base chat profiles, conversations, messages, feedback, the answer cache.

A customer's question is one ``user`` message; the reply the widget streams is one
``assistant`` message linked to it. Both carry the outcome, so every question is
stored with what happened to it (answered, cached, direct, handed off, refused,
failed) — including while it is still ``pending`` on the generator.
"""

from __future__ import annotations

import secrets
import uuid

from django.db import models


def new_public_key() -> str:
    return "pk_" + secrets.token_urlsafe(18)


def new_conversation_id() -> str:
    # 128 random bits: a conversation is reachable by its id alone, so it must not be guessable.
    return secrets.token_urlsafe(16)


class WidgetKey(models.Model):
    """The public key a company's web page embeds; it names a base and the origins allowed to use it."""

    public_key = models.CharField(max_length=64, unique=True, default=new_public_key)
    name = models.CharField(max_length=200, blank=True, default="")
    knowledge_base = models.ForeignKey("kb.KnowledgeBase", on_delete=models.CASCADE, related_name="widget_keys")
    # Exact origins ("https://shop.example.com"); a page on any other origin is refused.
    allowed_origins = models.JSONField(default=list, blank=True)
    enabled = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.name or self.public_key} → {self.knowledge_base_id}"


class ChatProfile(models.Model):
    """How one knowledge base answers customers (the kb app owns the base; chat owns this)."""

    class AnswerMode(models.TextChoices):
        GENERATIVE = "generative"
        EXTRACTIVE = "extractive"

    knowledge_base = models.OneToOneField("kb.KnowledgeBase", on_delete=models.CASCADE, related_name="chat_profile")
    # Blank: the default prompt in chat.pipeline.prompt.
    system_prompt = models.TextField(blank=True, default="")
    answer_mode = models.CharField(max_length=20, choices=AnswerMode.choices, default=AnswerMode.GENERATIVE)
    # One word or phrase per line, any language; matched case-insensitively.
    sensitive_words = models.TextField(blank=True, default="")
    # Passages whose dense cosine with the question is below this are not used; none left → "I don't know".
    relevance_floor = models.FloatField(null=True, blank=True, help_text="blank: KEFU_CHAT_RELEVANCE_FLOOR")
    updated_at = models.DateTimeField(auto_now=True)

    def __str__(self) -> str:
        return f"chat profile of {self.knowledge_base_id}"

    @property
    def sensitive_word_list(self) -> list[str]:
        return [line.strip() for line in self.sensitive_words.splitlines() if line.strip()]


class Conversation(models.Model):
    class Status(models.TextChoices):
        OPEN = "open"
        HANDED_OFF = "handed_off"
        CLOSED = "closed"

    public_id = models.CharField(max_length=32, unique=True, default=new_conversation_id)
    knowledge_base = models.ForeignKey("kb.KnowledgeBase", on_delete=models.CASCADE, related_name="conversations")
    widget_key = models.ForeignKey(WidgetKey, null=True, blank=True, on_delete=models.SET_NULL,
                                   related_name="conversations")
    visitor_id = models.CharField(max_length=64, blank=True, default="")
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.OPEN, db_index=True)
    handed_off_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-updated_at"]

    def __str__(self) -> str:
        return f"conversation {self.public_id} ({self.status})"


class Message(models.Model):
    class Role(models.TextChoices):
        USER = "user"
        ASSISTANT = "assistant"

    class Outcome(models.TextChoices):
        PENDING = "pending"
        ANSWERED = "answered"
        CACHED = "cached"
        DIRECT = "direct"
        HANDED_OFF = "handed_off"
        REFUSED = "refused"
        FAILED = "failed"

    FINAL_OUTCOMES = (Outcome.ANSWERED, Outcome.CACHED, Outcome.DIRECT, Outcome.HANDED_OFF, Outcome.REFUSED,
                      Outcome.FAILED)

    # A UUID, not a counter: the stream URL is reachable by the message id alone.
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    conversation = models.ForeignKey(Conversation, on_delete=models.CASCADE, related_name="messages")
    role = models.CharField(max_length=16, choices=Role.choices)
    # The assistant message answering a user message.
    reply_to = models.OneToOneField("self", null=True, blank=True, on_delete=models.CASCADE, related_name="reply")
    text = models.TextField(blank=True, default="")
    normalized_text = models.TextField(blank=True, default="")  # user messages: the cache key
    outcome = models.CharField(max_length=16, choices=Outcome.choices, default=Outcome.PENDING, db_index=True)
    # Why a refusal / failure / hand-off happened: sensitive_word, out_of_scope, no_relevant_passage, ...
    reason = models.CharField(max_length=64, blank=True, default="")
    intent = models.CharField(max_length=20, blank=True, default="")
    intent_confidence = models.FloatField(null=True, blank=True)
    standalone_query = models.TextField(blank=True, default="")  # follow-ups rewritten for retrieval
    citations = models.JSONField(default=list, blank=True)
    # Milliseconds: pipeline (guard → decide), queue, ttft, total (POST to the last token).
    timings = models.JSONField(default=dict, blank=True)
    prompt_tokens = models.PositiveIntegerField(null=True, blank=True)
    completion_tokens = models.PositiveIntegerField(null=True, blank=True)
    inference_job_id = models.CharField(max_length=64, blank=True, default="", db_index=True)
    # Context the finaliser needs to map [n] citations back to sources (generation only).
    passages = models.JSONField(default=list, blank=True)
    index_version = models.PositiveIntegerField(null=True, blank=True)
    # A cached answer: the assistant message whose answer was served again.
    served_from = models.ForeignKey("self", null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    error_code = models.CharField(max_length=64, blank=True, default="")
    # Assistant messages: the calibrated probability that the base answers the question (None: not scored).
    answerability = models.FloatField(null=True, blank=True)
    # Assistant messages: with an "I don't know", the base's FAQ questions closest to what was asked, offered
    # instead (chat.pipeline.decide.related_questions); the widget shows them as buttons. A generation holds
    # them while pending, for the case that the model cannot answer; the finaliser drops them otherwise.
    suggestions = models.JSONField(default=list, blank=True)
    # User messages: asked by taking a question that this refusal offered (a widget's suggestion button) — the
    # customer's own label for the question that was refused: staff confirm it on the feedback page.
    taken_from = models.ForeignKey("self", null=True, blank=True, on_delete=models.SET_NULL, related_name="taken_by")
    # Assistant messages: the conversation's earlier turns were part of the generation prompt, so the
    # answer may depend on them and is never served to anybody else from the answer cache.
    history_in_prompt = models.BooleanField(default=False)
    # User messages: the ISO 639-1 code of the language the question was written in
    # (chat.pipeline.language; blank for rows stored before it was detected).
    language = models.CharField(max_length=8, blank=True, default="")
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    completed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["created_at"]
        indexes = [models.Index(fields=["conversation", "created_at"], name="chat_msg_conv_created")]

    def __str__(self) -> str:
        return f"{self.role} {self.id} ({self.outcome})"

    @property
    def offered_questions(self) -> list[str]:
        """The questions offered to the customer: only ever with a refusal (a pending generation holds its own)."""
        return list(self.suggestions) if self.outcome == self.Outcome.REFUSED else []

    @property
    def is_final(self) -> bool:
        return self.outcome in self.FINAL_OUTCOMES


class Feedback(models.Model):
    class Rating(models.TextChoices):
        UP = "up"
        DOWN = "down"

    message = models.OneToOneField(Message, on_delete=models.CASCADE, related_name="feedback")
    rating = models.CharField(max_length=8, choices=Rating.choices)
    comment = models.TextField(blank=True, default="")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        # The staff's down-rated list reads the newest ratings of a window first (PostgreSQL otherwise
        # hash-joins the whole message table to sort them: 1.4 s → 19 ms at 1M messages).
        indexes = [models.Index(fields=["rating", "updated_at"], name="chat_feedback_rating_updated")]

    def __str__(self) -> str:
        return f"{self.rating} on {self.message_id}"


class CachedAnswer(models.Model):
    """A successful answer that may be served again, for one base at one index version."""

    knowledge_base = models.ForeignKey("kb.KnowledgeBase", on_delete=models.CASCADE, related_name="cached_answers")
    index_version = models.PositiveIntegerField()  # the IndexVersion id the answer was built on
    normalized_question = models.TextField()
    question_key = models.CharField(max_length=64)  # sha256 of the normalised question, for the exact lookup
    embedding = models.BinaryField()  # float32, L2-normalised question embedding
    answer = models.TextField()
    citations = models.JSONField(default=list, blank=True)
    source_message = models.ForeignKey(Message, on_delete=models.CASCADE, related_name="cache_entries")
    hits = models.PositiveIntegerField(default=0)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.UniqueConstraint(fields=["knowledge_base", "index_version", "question_key"],
                                    name="chat_cache_unique_question")
        ]

    def __str__(self) -> str:
        return self.normalized_question[:80]
