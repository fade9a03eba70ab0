"""``python manage.py generate "prompt"``: stream one answer from the configured generator to the terminal.

By default the generator runs in this process (the same engine the worker runs). With
``--queue`` the prompt goes the way a chat message goes: ``generation_submit`` (a job on
the ``inference`` queue in service mode, a thread of this process in embedded mode) and
the job's token stream is followed until ``done`` or ``error``.
"""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError


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
        from django.conf import settings

        from inference.params import InvalidGenerationRequest, chat_messages, sampling_params

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
        import uuid

        from inference.params import GenerationRequest
        from inference.runtime import GeneratorUnavailable, get_generator

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
        return describe(output.as_event_data())

    def via_queue(self, messages, params) -> str:
        from inference.services import generation_submit
        from inference.stream import START, open_stream

        job_id = generation_submit(messages=list(messages), params=params)
        stream, after = open_stream(job_id), START
        while True:
            for event in stream.read(after, block_ms=1000):
                after = event.id
                if event.kind == "token":
                    self.stdout.write(event.data["text"], ending="")
                    self.stdout.flush()
                elif event.kind == "error":
                    raise CommandError(f"{event.data['code']}: {event.data['message']}")
                else:
                    self.stdout.write("")
                    return describe(event.data) + f", job {job_id}"


def describe(data: dict) -> str:
    return (f"[{data['finish_reason']}: {data['prompt_tokens']} prompt + {data['completion_tokens']} new tokens, "
            f"TTFT {data['ttft_ms']:.0f} ms, {data['tokens_per_s']:.1f} tok/s]")
