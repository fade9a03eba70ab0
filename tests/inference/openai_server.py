"""A small OpenAI-compatible chat-completions server over a Kefu generator, for tests.

``POST /v1/chat/completions`` with ``stream: true`` answers server-sent ``data:``
chunks (role, content deltas, finish_reason, usage) and ``data: [DONE]``, as vLLM and
OpenAI do; a wrong model name is a 404 and a wrong key a 401, with OpenAI's error body.
Runs on a loopback port in a thread (stdlib ``ThreadingHTTPServer``); closing the
connection mid-stream cancels the generation.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from inference.params import GenerationRequest, SamplingParams


class OpenAICompatibleServer:
    def __init__(self, generator, *, model: str, api_key: str = ""):
        self.generator, self.model, self.api_key = generator, model, api_key
        self.cancelled: list[str] = []  # request ids whose client went away
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.0"  # the body ends when the connection closes, as a stream should

            def log_message(self, *args) -> None:
                pass

            def do_POST(self) -> None:  # noqa: N802 - http.server's naming
                server.handle(self)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"

    def __enter__(self) -> OpenAICompatibleServer:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    def handle(self, http) -> None:
        if http.path != "/v1/chat/completions":
            return self.error(http, 404, f"no route {http.path}")
        if self.api_key and http.headers.get("Authorization") != f"Bearer {self.api_key}":
            return self.error(http, 401, "Incorrect API key provided")
        body = json.loads(http.rfile.read(int(http.headers.get("Content-Length", 0))))
        if body.get("model") != self.model:
            return self.error(http, 404, f"The model `{body.get('model')}` does not exist.")
        request = GenerationRequest(
            f"srv-{uuid.uuid4().hex}", tuple(body["messages"]),
            SamplingParams(temperature=body.get("temperature", 1.0), top_p=body.get("top_p", 1.0),
                           max_new_tokens=body.get("max_tokens", 16), stop=tuple(body.get("stop") or ()),
                           seed=body.get("seed")))
        handle = self.generator.submit(request)
        http.send_response(200)
        http.send_header("Content-Type", "text/event-stream")
        http.end_headers()
        created, chunk_id = int(time.time()), f"chatcmpl-{uuid.uuid4().hex[:12]}"

        def send(delta: dict, finish_reason=None, usage=None) -> None:
            chunk = {"id": chunk_id, "object": "chat.completion.chunk", "created": created, "model": self.model,
                     "choices": [{"index": 0, "delta": delta, "finish_reason": finish_reason}] if usage is None else [],
                     **({"usage": usage} if usage else {})}
            http.wfile.write(f"data: {json.dumps(chunk)}\n\n".encode())
            http.wfile.flush()

        try:
            send({"role": "assistant", "content": ""})
            for text in handle:
                send({"content": text})
            output = handle.result(timeout=120)
            send({}, finish_reason={"length": "length"}.get(output.finish_reason, "stop"))
            send({}, usage={"prompt_tokens": output.prompt_tokens, "completion_tokens": output.completion_tokens,
                            "total_tokens": output.prompt_tokens + output.completion_tokens})
            http.wfile.write(b"data: [DONE]\n\n")
        except (BrokenPipeError, ConnectionResetError):
            handle.cancel()
            self.cancelled.append(request.request_id)

    @staticmethod
    def error(http, status: int, message: str) -> None:
        payload = json.dumps({"error": {"message": message, "type": "invalid_request_error", "code": status}}).encode()
        http.send_response(status)
        http.send_header("Content-Type", "application/json")
        http.send_header("Content-Length", str(len(payload)))
        http.end_headers()
        http.wfile.write(payload)
