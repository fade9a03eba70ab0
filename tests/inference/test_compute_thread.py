"""The engine and the embedder share the process's compute thread (see kefu.compute)."""

from __future__ import annotations

import threading

import pytest


@pytest.mark.django_db
def test_engine_forward_passes_and_embeddings_all_run_on_the_process_compute_thread(smollm, make_engine):
    # given the process's engine over the bundled model, and the embedder
    from inference.params import GenerationRequest, SamplingParams
    from kb.embedding import embed_texts, get_embedder

    seen: set[str] = set()

    def record(module, args):
        seen.add(threading.current_thread().name)

    hooks = [smollm.model.register_forward_pre_hook(record),
             get_embedder()[0].auto_model.register_forward_pre_hook(record)]
    try:
        engine = make_engine(smollm)
        # when a request is generated and texts are embedded, from this (test) thread
        output = engine.submit(GenerationRequest("compute-1", ({"role": "user", "content": "Hi"},),
                                                 SamplingParams(temperature=0.0, max_new_tokens=3))).result(60)
        embed_texts(["where is the office?", "opening hours"])
    finally:
        for hook in hooks:
            hook.remove()
    # then every forward pass ran on the compute thread, none on the calling thread
    assert output.completion_tokens >= 1
    assert seen == {"kefu-compute"}
