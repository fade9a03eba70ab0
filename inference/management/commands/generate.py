"""``python manage.py generate "prompt"``: stream one answer from the configured generator to the terminal.

By default the generator runs in this process (the same engine the worker runs). With
``--queue`` the prompt goes the way a chat message goes: ``generation_submit`` (a job on
the ``inference`` queue in service mode, a thread of this process in embedded mode) and
the job's token stream is followed until ``done`` or ``error``.
"""

from __future__ import annotations

import uuid

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from inference.outcomes import GenerationDone, GenerationError
from inference.params import GenerationRequest, InvalidGenerationRequest, chat_messages, sampling_params
from inference.runtime import GeneratorUnavailable, get_generator
from inference.services import generation_stream, generation_submit
from inference.stream import START


class Command(BaseCommand):
    help = "Stream a generated answer for PROMPT to the terminal."

    def add_arguments(self, parser) -> None:
        parser.add_argument("prompt")
        parser.add_argument("--system", default="", help="an optional system message")
        parser.add_argument("--max-new-tokens", type=int, default=256)
        parser.add_argument("--temperature", type=float, default=0.0)
        parser.add_argument("--top-p", type=float, default=1.0)
        parser.add_argument("--stop", action="append", default=[], help="a stop sequence (repeatable)")
        parser.add_argument("--queue", action="store_true", help="submit a job and follow its token stream")

    def handle(self, *args, **options) -> None:
        messages = ([{"role": "system", "content": options["system"]}] if options["system"] else []) + [
            {"role": "user", "content": options["prompt"]}]
        raw = {"temperature": options["temperature"], "top_p": options["top_p"],
               "max_new_tokens": options["max_new_tokens"], "stop": options["stop"]}
        try:
            params = sampling_params(raw, max_new_tokens_cap=settings.KEFU_MAX_NEW_TOKENS)
            messages = chat_messages(messages)
        except InvalidGenerationRequest as exc:
            raise CommandError(str(exc)) from exc
        summary = self.via_queue(messages, params) if options["queue"] else self.in_process(messages, params)
        self.stderr.write(summary)

    def in_process(self, messages, params) -> str:
        try:
            generator = get_generator()
        except GeneratorUnavailable as exc:
            raise CommandError(str(exc)) from exc
        handle = generator.submit(GenerationRequest(f"cli-{uuid.uuid4().hex}", messages, params))
        for text in handle:
            self.stdout.write(text, ending="")
            self.stdout.flush()
        self.stdout.write("")
        output = handle.result()
        if output.finish_reason == "error":
            raise CommandError(output.error)
        return describe(output.as_done())

    def via_queue(self, messages, params) -> str:
        job_id = generation_submit(messages=list(messages), params=params)
        stream, after = generation_stream(job_id), START
        while True:
            for event in stream.read(after, block_ms=1000):
                after = event.id
                if event.kind == "token":
                    self.stdout.write(event.data["text"], ending="")
                    self.stdout.flush()
                elif isinstance(event.outcome, GenerationError):
                    raise CommandError(f"{event.outcome.code}: {event.outcome.message}")
                else:
                    self.stdout.write("")
                    return describe(event.outcome) + f", job {job_id}"


def describe(done: GenerationDone) -> str:
    return (f"[{done.finish_reason}: {done.prompt_tokens} prompt + {done.completion_tokens} new tokens, "
            f"TTFT {done.ttft_ms:.0f} ms, {done.tokens_per_s:.1f} tok/s]")
