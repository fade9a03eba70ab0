"""The continuous-batching engine of the transformers backend: one per process.

``submit()`` (any thread) tokenizes the request with the model's chat template and
queues it; one engine thread runs the loop:

1. :meth:`BatchingEngine.admit` — waiting requests (up to ``max_batch`` rows) are
   prefilled together (left-padded) and join the running batch; their first token is emitted;
2. :meth:`BatchingEngine.drop_stopped` — cancelled and timed-out rows leave before
   the next step, so a cancel takes effect within one step;
3. :meth:`BatchingEngine.step` — one batched decode step, one token per row,
   streamed to each request's handle;
4. finished rows (EOS, stop sequence, max_new_tokens) are evicted.

A request that arrives while others decode joins at the next step; each request
streams its own tokens through its :class:`~inference.handle.GenerationHandle`.
Model functions live in :mod:`inference.backends.transformers_backend`; MoE expert
counts come from :mod:`inference.moe` hooks.
"""

from __future__ import annotations

import collections
import logging
import threading
import time
from dataclasses import dataclass, field

from inference.backends import transformers_backend as tb
from inference.config import EngineConfig
from inference.detokenize import IncrementalDecoder, TextAssembler
from inference.handle import GenerationHandle, GenerationOutput
from inference.moe import ExpertLoadWindow, attach_expert_counter
from inference.params import GenerationRequest
from kefu.compute import compute_thread

log = logging.getLogger(__name__)


@dataclass
class Row:
    """One sequence in the running batch (engine-thread state)."""

    handle: GenerationHandle
    prompt_ids: list[int]
    assembler: TextAssembler
    decoder: IncrementalDecoder
    generator: object  # torch.Generator or None
    deadline: float  # time.monotonic() after which the request times out
    generated: list[int] = field(default_factory=list)
    finish_reason: str = ""

    @property
    def key(self) -> str:
        return self.handle.request.request_id


@dataclass
class Pending:
    handle: GenerationHandle
    prompt_ids: list[int]
    prefix_len: int = 0  # leading tokens shared with other chats (the system message), 0 = not cached


@dataclass
class ChunkedPrefill:
    """A prompt prefilled one chunk per engine pass while the others decode: one longer than the prefill
    budget, or one with a cacheable prefix (which starts after the cached prefix, or snapshots it)."""

    row: Row
    batch: tb.DecodeBatch | None = None  # its own one-row cache, filled so far
    done: int = 0  # prompt tokens already in that cache
    snapshot_at: int = 0  # > done: stop the first chunk here and keep a copy of the cache as a prefix entry


class PrefixCache:
    """Keys/values of recently seen prompt prefixes (token tuple → per-layer tensors), least recently used out."""

    def __init__(self, entries: int):
        self.entries = entries
        self.items: collections.OrderedDict[tuple[int, ...], tuple] = collections.OrderedDict()
        self.queries = 0  # lookups
        self.hits = 0  # lookups that found their prefix

    def get(self, key: tuple[int, ...]):
        self.queries += 1
        snapshot = self.items.get(key)
        if snapshot is not None:
            self.items.move_to_end(key)
            self.hits += 1
        return snapshot

    def put(self, key: tuple[int, ...], snapshot: tuple) -> None:
        self.items[key] = snapshot
        self.items.move_to_end(key)
        while len(self.items) > self.entries:
            self.items.popitem(last=False)


class BatchingEngine:
    """Continuous batching over one model: thread-safe ``submit()``; the decode loop runs on the
    process's compute thread (:mod:`kefu.compute`), beside the other torch work of the process."""

    def __init__(self, loaded, config: EngineConfig):
        self.loaded = loaded
        self.model, self.tokenizer, self.device = loaded.model, loaded.tokenizer, loaded.device
        self.config = config
        self.eos_ids = tb.eos_token_ids(self.model, self.tokenizer)
        self.pad_token_id = self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else 0
        self.max_positions = int(getattr(self.model.config, "max_position_embeddings", 0) or 1 << 30)
        self.expert_counter = attach_expert_counter(self.model)
        self.expert_window = ExpertLoadWindow()
        self.waiting: collections.deque[Pending] = collections.deque()
        self.rows: list[Row] = []
        self.batch: tb.DecodeBatch | None = None
        self.chunked: ChunkedPrefill | None = None  # a long prompt being prefilled chunk by chunk
        self.prefixes = PrefixCache(config.prefix_cache_entries)
        self.wakeup = threading.Condition()  # guards ``waiting``
        self.stopping = threading.Event()
        self.stopped = threading.Event()
        self.started = False
        self.steps = 0  # decode steps run (tests and metrics)
        self.listeners: list = []  # callables(event: str, **fields) — metrics hooks

    # --- public, any thread ---
    def start(self) -> BatchingEngine:
        if not self.started:
            self.started = True
            compute_thread().add_loop(self.run_pass)
        return self

    def stop(self, timeout: float = 10.0) -> None:
        self.stopping.set()
        if self.started:
            compute_thread().wake()
            if compute_thread().on_thread():
                self.run_pass()
            self.stopped.wait(timeout)
        if self.expert_counter is not None:
            self.expert_counter.detach()  # the model may outlive this engine (tests, reloads)

    def describe(self) -> str:
        return f"{self.loaded.spec.name} on {self.device} ({self.loaded.dtype}), batch ≤ {self.config.max_batch}"

    def submit(self, request: GenerationRequest) -> GenerationHandle:
        """Queue a request; its tokens arrive on the returned handle."""
        handle = GenerationHandle(request)
        if request.submitted_at:
            # queue time counts from when the job was stored, not from when the worker picked it up
            handle.timings.submitted -= max(0.0, time.time() - request.submitted_at)
        try:
            prompt_ids = tb.encode_chat(self.tokenizer, request.messages)
        except Exception as exc:  # noqa: BLE001 - a template error belongs to this request only
            handle.fail(f"the chat template failed: {exc}")
            return handle
        if len(prompt_ids) + request.params.max_new_tokens > self.max_positions:
            handle.fail(f"prompt of {len(prompt_ids)} tokens + max_new_tokens={request.params.max_new_tokens} "
                        f"exceeds the model's {self.max_positions} positions")
            return handle
        if self.stopping.is_set():
            handle.fail("the engine is stopped")
            return handle
        prefix_len = (tb.system_prefix_length(self.tokenizer, request.messages, prompt_ids)
                      if self.config.prefix_cache_entries > 0 else 0)
        with self.wakeup:
            self.waiting.append(Pending(handle, prompt_ids, prefix_len))
        compute_thread().wake()
        self.notify("queued")
        return handle

    def counts(self) -> tuple[int, int]:
        """(running, waiting) requests right now (one being prefilled in chunks counts as running)."""
        return len(self.rows) + (self.chunked is not None), len(self.waiting)

    # --- on the compute thread ---
    def run_pass(self) -> bool:
        """One pass of the engine loop; False when it had nothing to do (the compute thread then idles)."""
        import torch  # lazy: the web process imports the engine module (inference.runtime) without torch

        if self.stopping.is_set():
            if not self.stopped.is_set():
                compute_thread().remove_loop(self.run_pass)
                self.shutdown()
                self.stopped.set()
            return False
        with torch.inference_mode():
            try:
                return self.run_once()
            except Exception as exc:  # noqa: BLE001 - fail the batch, keep the engine alive
                log.exception("decode step failed; failing %d running request(s)", len(self.rows))
                self.fail_rows(self.rows, f"{type(exc).__name__}: {exc}")
                return True

    def run_once(self) -> bool:
        """Admit, drop, step; True when there was work."""
        self.admit()
        self.drop_stopped()
        if self.rows:
            self.step()
        return bool(self.rows or self.chunked is not None or self.waiting)

    def admit(self) -> None:
        """Prefill waiting requests into free rows; each emits its first token.

        Prompts share one pass up to ``prefill_token_budget`` tokens. A longer prompt arriving while
        others decode is prefilled ``budget`` tokens per pass (chunked prefill), with a decode step of
        the running rows after each chunk, so it does not stall their streams for its whole prefill.
        """
        if self.chunked is not None:
            self.advance_chunked()
            return
        admitted: list[Pending] = []
        budget = self.config.prefill_token_budget
        with self.wakeup:
            while self.waiting and len(self.rows) + len(admitted) < self.config.max_batch:
                pending = self.waiting[0]
                if pending.handle.cancelled:
                    self.waiting.popleft()
                    pending.handle.fail("cancelled before it started", finish_reason="cancelled")
                    continue
                if pending.prefix_len:  # prefilled alone, after its cached prefix (this pass, or the next)
                    if not admitted:
                        self.chunked = self.prefill_after_prefix(self.waiting.popleft())
                    break
                if len(pending.prompt_ids) > budget and (admitted or self.rows):
                    if not admitted:  # something is decoding: prefill this one in chunks
                        self.chunked = ChunkedPrefill(self.new_row(self.waiting.popleft()))
                    break  # else the next pass takes it, after one decode step of the running rows
                admitted.append(self.waiting.popleft())
                budget -= len(pending.prompt_ids)
        if admitted:
            self.prefill_rows(admitted)
        elif self.chunked is not None:
            self.advance_chunked()

    def prefill_rows(self, admitted: list[Pending]) -> None:
        rows = [self.new_row(pending) for pending in admitted]
        prompts = [pending.prompt_ids for pending in admitted]
        if self.expert_counter:
            self.expert_counter.set_owners(tb.token_owners(prompts, [row.key for row in rows]))
        try:
            logits, joining = tb.prefill(self.model, prompts, self.device, self.pad_token_id)  # (P, V)
        except Exception as exc:  # noqa: BLE001 - these prompts failed, the running batch goes on
            log.exception("prefill failed for %d request(s)", len(rows))
            for row in rows:
                self.finish(row, "error", error=f"{type(exc).__name__}: {exc}")
            return
        self.join(rows, logits, joining)

    def prefill_after_prefix(self, pending: Pending) -> ChunkedPrefill:
        """Start from the cached keys/values of the prompt's prefix, or prefill and keep them on a miss."""
        row = self.new_row(pending)
        snapshot = self.prefixes.get(tuple(pending.prompt_ids[:pending.prefix_len]))
        self.notify("prefix_cache", hit=snapshot is not None, tokens=pending.prefix_len)
        if snapshot is None:
            return ChunkedPrefill(row, snapshot_at=pending.prefix_len)
        return ChunkedPrefill(row, tb.batch_from_snapshot(snapshot, self.device), done=pending.prefix_len)

    def advance_chunked(self) -> None:
        """Prefill the next chunk of the long prompt; after the last one it joins the running batch."""
        chunk, budget = self.chunked, self.config.prefill_token_budget
        row = chunk.row
        if row.handle.cancelled or time.monotonic() > row.deadline:
            self.chunked = None
            self.finish(row, "cancelled" if row.handle.cancelled else "timeout")
            return
        end = chunk.snapshot_at if chunk.snapshot_at > chunk.done else len(row.prompt_ids)
        remaining = end - chunk.done
        size = -(-remaining // -(-remaining // budget))  # even chunks of ≤ budget: 300 at 256 → 150 + 150
        tokens = row.prompt_ids[chunk.done:chunk.done + size]
        if self.expert_counter:
            self.expert_counter.set_owners([row.key] * len(tokens))
        try:
            logits, chunk.batch = tb.prefill_chunk(self.model, chunk.batch, tokens, self.device)  # (1, V)
        except Exception as exc:  # noqa: BLE001 - this prompt failed, the running batch goes on
            log.exception("chunked prefill failed for %s", row.key)
            self.chunked = None
            self.finish(row, "error", error=f"{type(exc).__name__}: {exc}")
            return
        chunk.done += len(tokens)
        if chunk.done == chunk.snapshot_at:
            self.prefixes.put(tuple(row.prompt_ids[:chunk.done]), tb.cache_snapshot(chunk.batch))
        if chunk.done >= len(row.prompt_ids):
            self.chunked = None
            self.join([row], logits, chunk.batch)

    def join(self, rows: list[Row], logits, joining: tb.DecodeBatch) -> None:
        """Prefilled rows sample their first token and join the running batch (unless already finished)."""
        firsts = tb.sample(logits, [row.handle.request.params for row in rows], [row.generator for row in rows])
        tb.set_next_tokens(joining, firsts, self.device)
        now = time.monotonic()
        keep = []
        for index, (row, first) in enumerate(zip(rows, firsts, strict=True)):
            row.handle.timings.first_token = now
            self.notify("first_token", ttft_s=now - row.handle.timings.submitted)
            if self.accept_token(row, first):
                self.finish(row, row.finish_reason)
            else:
                keep.append(index)
        self.batch = tb.merge(self.batch, tb.evict(joining, keep))
        self.rows.extend(rows[index] for index in keep)

    def new_row(self, pending: Pending) -> Row:
        handle, params = pending.handle, pending.handle.request.params
        handle.timings.started = time.monotonic()
        return Row(handle=handle, prompt_ids=pending.prompt_ids,
                   assembler=TextAssembler(params.stop, starts_in_reasoning=tb.prompt_opens_reasoning(
                       self.tokenizer, pending.prompt_ids)),
                   decoder=IncrementalDecoder(self.tokenizer),
                   generator=tb.make_generator(params.seed, self.device),
                   deadline=handle.timings.submitted + self.config.timeout_s)

    def drop_stopped(self) -> None:
        """Rows cancelled by their consumer or past their deadline leave before the next step."""
        now = time.monotonic()
        for row in self.rows:
            if row.handle.cancelled:
                row.finish_reason = "cancelled"
            elif now > row.deadline:
                row.finish_reason = "timeout"
        self.evict_finished()

    def step(self) -> None:
        """One batched decode step: a token for every row, streamed; finished rows leave."""
        if self.expert_counter:
            self.expert_counter.set_owners([row.key for row in self.rows])
        started = time.monotonic()
        logits = tb.decode_step(self.model, self.batch, self.device)  # B, V
        tokens = tb.sample(logits, [row.handle.request.params for row in self.rows],
                           [row.generator for row in self.rows])
        tb.set_next_tokens(self.batch, tokens, self.device)
        self.steps += 1
        for row, token in zip(self.rows, tokens, strict=True):
            self.accept_token(row, token)
        self.notify("step", batch_size=len(self.rows), seconds=time.monotonic() - started)
        self.evict_finished()

    def accept_token(self, row: Row, token: int) -> bool:
        """Record a generated token, stream its text; True when the row is finished."""
        row.generated.append(token)
        if token in self.eos_ids:
            row.finish_reason = "stop"
            return True
        row.handle.emit(row.assembler.feed(row.decoder.add(token)))
        if row.assembler.stopped:
            row.finish_reason = "stop"
        elif len(row.generated) >= row.handle.request.params.max_new_tokens:
            row.finish_reason = "length"
        return bool(row.finish_reason)

    def evict_finished(self) -> None:
        keep = [index for index, row in enumerate(self.rows) if not row.finish_reason]
        if len(keep) == len(self.rows):
            return
        finished = [row for row in self.rows if row.finish_reason]
        self.batch = tb.evict(self.batch, keep) if self.batch is not None else None
        self.rows = [self.rows[index] for index in keep]
        for row in finished:
            self.finish(row, row.finish_reason)

    def finish(self, row: Row, reason: str, *, error: str = "") -> None:
        """Flush held-back text and hand the outcome to the request's handle."""
        handle = row.handle
        if reason in ("stop", "length"):
            handle.emit(row.assembler.flush())
        elif reason == "timeout":
            error = error or f"generation exceeded {self.config.timeout_s:.0f} s"
        handle.timings.finished = time.monotonic()
        expert_counts = self.expert_counter.pop(row.key) if self.expert_counter else None
        self.expert_window.add(expert_counts)
        output = GenerationOutput(
            text=row.assembler.text, finish_reason=reason, reasoning_text=row.assembler.reasoning.strip(),
            prompt_tokens=len(row.prompt_ids), completion_tokens=len(row.generated),
            token_ids=tuple(row.generated), expert_counts=expert_counts, error=error,
            **handle.timings.output_fields(len(row.generated)),
        )
        handle.finish(output)
        self.notify("finished", output=output)

    def fail_rows(self, rows: list[Row], message: str) -> None:
        for row in list(rows):
            self.finish(row, "error", error=message)
        self.rows, self.batch = [], None

    def shutdown(self) -> None:
        self.fail_rows(self.rows, "the engine stopped")
        if self.chunked is not None:
            self.finish(self.chunked.row, "error", error="the engine stopped")
            self.chunked = None
        with self.wakeup:
            waiting, self.waiting = list(self.waiting), collections.deque()
        for pending in waiting:
            pending.handle.fail("the engine stopped")

    def notify(self, event: str, **fields) -> None:
        for listener in self.listeners:
            try:
                listener(event, engine=self, **fields)
            except Exception:  # noqa: BLE001 - metrics must never break generation
                log.exception("engine listener failed on %s", event)
