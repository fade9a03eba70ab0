"""Backend ``openai``: any OpenAI-compatible streaming chat endpoint.

A vLLM or SGLang server, DeepSeek's API, Ollama: ``KEFU_OPENAI_BASE_URL`` (e.g.
``http://127.0.0.1:8001/v1``), ``KEFU_OPENAI_API_KEY`` (sent as a Bearer token when
set) and ``KEFU_MODEL`` (the remote model's name). Each submitted request streams
``POST {base}/chat/completions`` (``stream: true``) over httpx in a thread of its own;
server-sent ``data:`` chunks become text deltas on the request's handle. Batching is
the server's business. Reasoning arrives either as ``delta.reasoning_content``
(vLLM, DeepSeek) or inline as ``<think>…</think>`` (Ollama); both end up in
``reasoning_text``. Cancelling a handle closes the HTTP response, which a vLLM server
takes as an abort.
"""

from __future__ import annotations

import json
import logging
import threading
import time

from inference.config import EngineConfig
from inference.detokenize import TextAssembler
from inference.handle import GenerationHandle, GenerationOutput
from inference.params import GenerationRequest

log = logging.getLogger(__name__)
FINISH_REASONS = {"stop": "stop", "length": "length", "eos": "stop", "abort": "cancelled"}


class OpenAIBackend:
    """Streams chat completions from an OpenAI-compatible server; one thread per request."""

    def __init__(self, config: EngineConfig):
        if not config.openai_base_url:
            raise ValueError("KEFU_MODEL_BACKEND=openai needs KEFU_OPENAI_BASE_URL (e.g. http://127.0.0.1:8001/v1)")
        self.config = config
        self.url = config.openai_base_url.rstrip("/") + "/chat/completions"
        self.headers = {"Authorization": f"Bearer {config.openai_api_key}"} if config.openai_api_key else {}

    def describe(self) -> str:
        return f"{self.config.model} at {self.config.openai_base_url}"

    def stop(self) -> None:
        """Nothing to release: each request owns its connection."""

    def submit(self, request: GenerationRequest) -> GenerationHandle:
        handle = GenerationHandle(request)
        if request.submitted_at:
            handle.timings.submitted -= max(0.0, time.time() - request.submitted_at)
        threading.Thread(target=self.run, args=(handle,), name=f"kefu-openai-{request.request_id[:8]}",
                         daemon=True).start()
        return handle

    def body(self, request: GenerationRequest) -> dict:
        params = request.params
        body = {"model": self.config.model, "messages": list(request.messages), "stream": True,
                "stream_options": {"include_usage": True}, "temperature": params.temperature,
                "top_p": params.top_p, "max_tokens": params.max_new_tokens}
        if params.stop:
            body["stop"] = list(params.stop)
        if params.seed is not None:
            body["seed"] = params.seed
        return body

    def run(self, handle: GenerationHandle) -> None:
        """Stream one request to its end; every way out finishes the handle."""
        try:
            self.stream_completion(handle)
        except Exception as exc:  # noqa: BLE001 - connection errors, bad JSON, ...: this request fails
            log.warning("openai backend request %s failed: %s", handle.request.request_id, exc)
            handle.fail(f"{type(exc).__name__}: {exc}")

    def stream_completion(self, handle: GenerationHandle) -> None:
        import httpx  # imported here: only a process using this backend needs it

        request = handle.request
        state = StreamState(TextAssembler(request.params.stop))
        deadline = handle.timings.submitted + self.config.timeout_s
        timeout = httpx.Timeout(self.config.request_timeout_s, connect=min(10.0, self.config.request_timeout_s))
        handle.timings.started = time.monotonic()
        with httpx.Client(timeout=timeout) as client, \
                client.stream("POST", self.url, json=self.body(request), headers=self.headers) as response:
            if response.status_code != 200:
                handle.fail(f"HTTP {response.status_code} from {self.url}: {error_message(response)}")
                return
            for line in response.iter_lines():
                if handle.cancelled:
                    state.finish_reason = "cancelled"
                    break
                if time.monotonic() > deadline:
                    state.finish_reason = "timeout"
                    break
                if not line.startswith("data:"):
                    continue
                payload = line[5:].strip()
                if payload == "[DONE]":
                    break
                self.apply_chunk(handle, state, json.loads(payload))
        self.finish(handle, state)

    def apply_chunk(self, handle: GenerationHandle, state: StreamState, chunk: dict) -> None:
        if chunk.get("error"):
            raise RuntimeError(str(chunk["error"].get("message", chunk["error"])))
        usage = chunk.get("usage") or {}
        state.prompt_tokens = usage.get("prompt_tokens", state.prompt_tokens)
        state.completion_tokens = usage.get("completion_tokens", state.completion_tokens)
        for choice in chunk.get("choices") or []:
            delta = choice.get("delta") or {}
            if delta.get("reasoning_content"):
                state.reasoning += delta["reasoning_content"]
            if delta.get("content"):
                if handle.timings.first_token is None:
                    handle.timings.first_token = time.monotonic()
                state.chunks += 1
                state.raw += delta["content"]
                handle.emit(state.assembler.feed(state.raw))
            if choice.get("finish_reason"):
                state.finish_reason = FINISH_REASONS.get(choice["finish_reason"], "stop")
        if state.assembler.stopped:
            state.finish_reason = "stop"

    def finish(self, handle: GenerationHandle, state: StreamState) -> None:
        if state.finish_reason in ("stop", "length", ""):
            handle.emit(state.assembler.flush())
        handle.timings.finished = time.monotonic()
        completion_tokens = state.completion_tokens or state.chunks
        reasoning = (state.reasoning + state.assembler.reasoning).strip()
        reason = state.finish_reason or "stop"
        error = f"generation exceeded {self.config.timeout_s:.0f} s" if reason == "timeout" else ""
        handle.finish(GenerationOutput(
            text=state.assembler.text, finish_reason=reason, reasoning_text=reasoning,
            prompt_tokens=state.prompt_tokens, completion_tokens=completion_tokens, error=error,
            **handle.timings.output_fields(completion_tokens),
        ))


class StreamState:
    """What one streamed completion has produced so far."""

    def __init__(self, assembler: TextAssembler):
        self.assembler = assembler
        self.raw = ""
        self.reasoning = ""
        self.chunks = 0
        self.prompt_tokens = 0
        self.completion_tokens = 0
        self.finish_reason = ""


def error_message(response) -> str:
    """The server's error message from an OpenAI-style error body, else its first 200 characters."""
    body = response.read().decode(errors="replace")
    try:
        return str(json.loads(body)["error"]["message"])
    except (ValueError, KeyError, TypeError):
        return body[:200]
