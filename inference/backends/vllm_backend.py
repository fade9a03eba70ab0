"""Backend ``vllm`` (GPU only, optional): vLLM's in-process ``AsyncLLM``.

Install with ``pip install -e .[vllm]`` on a CUDA machine and set
``KEFU_MODEL_BACKEND=vllm`` with ``KEFU_MODEL`` a local Hugging Face directory. vLLM
then does the batching (paged attention, continuous batching) and this module only
adapts it to Kefu's handles: an asyncio loop in one thread owns the engine; each
``submit`` schedules a coroutine there that streams ``RequestOutputKind.DELTA``
outputs into the request's handle, and a cancelled handle is aborted in vLLM.
Not tested on this project's CPU machines (vllm needs a GPU); kept deliberately small.
"""

from __future__ import annotations

import asyncio
import threading
import time

from inference.config import EngineConfig
from inference.detokenize import TextAssembler
from inference.handle import GenerationHandle, GenerationOutput
from inference.params import GenerationRequest

CANCEL_POLL_S = 0.05


class VllmBackend:
    def __init__(self, config: EngineConfig):
        try:
            # lazy: vllm is installed on GPU hosts only (the vllm extra)
            from vllm.engine.arg_utils import AsyncEngineArgs
            from vllm.v1.engine.async_llm import AsyncLLM  # lazy: as above
        except ImportError as exc:
            raise RuntimeError("KEFU_MODEL_BACKEND=vllm needs vllm: pip install -e '.[vllm]' on a GPU machine") from exc
        from transformers import AutoTokenizer  # lazy: transformers loads only where a model loads

        self.config = config
        self.tokenizer = AutoTokenizer.from_pretrained(config.model)
        dtype = "auto" if config.dtype == "auto" else config.dtype
        args = AsyncEngineArgs(model=config.model, dtype=dtype, max_num_seqs=config.max_batch,
                               quantization=None if config.quantization in ("", "none", "auto") else config.quantization)
        self.loop = asyncio.new_event_loop()
        threading.Thread(target=self.loop.run_forever, name="kefu-vllm", daemon=True).start()
        self.engine = asyncio.run_coroutine_threadsafe(self.create(AsyncLLM, args), self.loop).result()

    @staticmethod
    async def create(engine_class, args):
        return engine_class.from_engine_args(args)

    def describe(self) -> str:
        return f"{self.config.model} on vLLM, batch ≤ {self.config.max_batch}"

    def stop(self) -> None:
        self.engine.shutdown()
        self.loop.call_soon_threadsafe(self.loop.stop)

    def submit(self, request: GenerationRequest) -> GenerationHandle:
        handle = GenerationHandle(request)
        asyncio.run_coroutine_threadsafe(self.generate(handle), self.loop)
        return handle

    async def generate(self, handle: GenerationHandle) -> None:
        from vllm import SamplingParams  # lazy: vllm, as above
        from vllm.sampling_params import RequestOutputKind  # lazy: vllm, as above

        request, params = handle.request, handle.request.params
        prompt = self.tokenizer.apply_chat_template(list(request.messages), add_generation_prompt=True, tokenize=False)
        sampling = SamplingParams(temperature=params.temperature, top_p=params.top_p, max_tokens=params.max_new_tokens,
                                  stop=list(params.stop) or None, seed=params.seed,
                                  output_kind=RequestOutputKind.DELTA)
        assembler, raw, tokens, prompt_tokens, reason = TextAssembler(params.stop), "", 0, 0, "stop"
        handle.timings.started = time.monotonic()
        watcher = asyncio.create_task(self.abort_when_cancelled(handle))
        try:
            async for output in self.engine.generate(prompt, sampling, request_id=request.request_id):
                completion = output.outputs[0]
                prompt_tokens = len(output.prompt_token_ids or ())
                tokens += len(completion.token_ids)
                if handle.timings.first_token is None and completion.token_ids:
                    handle.timings.first_token = time.monotonic()
                raw += completion.text
                handle.emit(assembler.feed(raw))
                if output.finished:
                    reason = {"length": "length", "abort": "cancelled"}.get(completion.finish_reason, "stop")
        except Exception as exc:  # noqa: BLE001 - this request fails, the engine goes on
            handle.fail(f"{type(exc).__name__}: {exc}")
            return
        finally:
            watcher.cancel()
        if handle.cancelled:
            reason = "cancelled"
        if reason != "cancelled":
            handle.emit(assembler.flush())
        handle.timings.finished = time.monotonic()
        handle.finish(GenerationOutput(text=assembler.text, finish_reason=reason,
                                       reasoning_text=assembler.reasoning.strip(), prompt_tokens=prompt_tokens,
                                       completion_tokens=tokens, **handle.timings.output_fields(tokens)))

    async def abort_when_cancelled(self, handle: GenerationHandle) -> None:
        while not handle.cancelled:
            await asyncio.sleep(CANCEL_POLL_S)
        await self.engine.abort(handle.request.request_id)
