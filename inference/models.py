"""What is stored about a generation: the request, its progress and its outcome.

A ``GenerationJob`` row is written by ``inference.services.generation_submit``, moved
to running and then to a final status by the ``inference.generate`` task, and reaped
to failed by ``generation_reap_stale`` when its worker died mid-way. The tokens
themselves travel over the token stream (``inference.stream``); the row keeps the
final text and the timings the dashboard reads.
"""

from __future__ import annotations

import uuid

from django.db import models


class GenerationJob(models.Model):
    class Status(models.TextChoices):
        QUEUED = "queued"
        RUNNING = "running"
        DONE = "done"
        FAILED = "failed"
        CANCELLED = "cancelled"

    FINAL = (Status.DONE, Status.FAILED, Status.CANCELLED)

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    messages = models.JSONField()  # chat format: [{"role": ..., "content": ...}]
    temperature = models.FloatField()
    top_p = models.FloatField()
    max_new_tokens = models.PositiveIntegerField()
    stop = models.JSONField(default=list, blank=True)
    seed = models.BigIntegerField(null=True, blank=True)
    metadata = models.JSONField(default=dict, blank=True)  # caller's context (message id, ...)

    status = models.CharField(max_length=16, choices=Status.choices, default=Status.QUEUED, db_index=True)
    model = models.CharField(max_length=200, blank=True)
    worker = models.CharField(max_length=200, blank=True)  # hostname:pid that ran it
    text = models.TextField(blank=True)  # the visible answer (reasoning excluded)
    reasoning_text = models.TextField(blank=True)  # what a reasoning model wrote inside <think>…</think>
    prompt_tokens = models.PositiveIntegerField(null=True, blank=True)
    completion_tokens = models.PositiveIntegerField(null=True, blank=True)
    queue_ms = models.FloatField(null=True, blank=True)
    ttft_ms = models.FloatField(null=True, blank=True)
    total_ms = models.FloatField(null=True, blank=True)
    tokens_per_s = models.FloatField(null=True, blank=True)
    finish_reason = models.CharField(max_length=32, blank=True)  # stop | length | cancelled | timeout | error
    error_code = models.CharField(max_length=64, blank=True)
    error = models.TextField(blank=True)
    expert_counts = models.JSONField(null=True, blank=True)  # MoE: {layer: [tokens per expert]}

    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-created_at"]
        indexes = [models.Index(fields=["status", "started_at"], name="inference_job_status_started")]

    def __str__(self) -> str:
        return f"generation {self.id} ({self.status})"

    @property
    def is_final(self) -> bool:
        return self.status in self.FINAL
