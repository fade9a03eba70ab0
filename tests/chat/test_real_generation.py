"""One answer end to end with the real inference app: generation_submit → the in-process engine
(SmolLM2-135M on the CPU, embedded mode) → token stream → SSE relay → finalised message."""

from __future__ import annotations

import json

import pytest
from asgiref.sync import async_to_sync

pytestmark = [pytest.mark.slow]


@pytest.fixture
def engine_data_dir(settings, chat_data_dir, project_root):
    """Keep the per-test data dir, but reuse the project's converted model files."""
    models = project_root / "data" / "models"
    if models.is_dir():
        chat_data_dir.mkdir(parents=True, exist_ok=True)
        (chat_data_dir / "models").symlink_to(models, target_is_directory=True)
    settings.REDIS_URL = None
    settings.KEFU_MODE = "embedded"
    settings.KEFU_CHAT_ANSWER_TOKENS = 24
    return chat_data_dir


def test_a_knowledge_question_is_generated_by_the_real_engine_and_streamed(engine_data_dir, transactional_db,
                                                                          embedder):
    from chat import services
    from chat.models import Message, WidgetKey
    from chat.sse import message_events
    from kefu.background import drain
    from tests.chat.conftest import build_support_kb

    kb = build_support_kb("Real engine")
    key = WidgetKey.objects.create(knowledge_base=kb, allowed_origins=["https://shop.example.com"])
    # when a knowledge question is asked
    started = services.message_answer(widget_key=key, conversation=None,
                                      text="Do I need a permit before drilling for a ground source heat pump?")
    message = Message.objects.select_related("conversation__knowledge_base").get(pk=started.message_id)
    assert message.outcome == "pending" and message.inference_job_id

    async def read():
        return "".join([chunk async for chunk in message_events(message, grace_s=0)])

    body = async_to_sync(read)()
    drain(timeout=600)
    # then tokens arrived, then done, and the stored message has the engine's figures
    kinds = [line[7:] for line in body.splitlines() if line.startswith("event: ")]
    assert kinds[0] == "token" and kinds[-1] == "done", body[-500:]
    done = json.loads(body.strip().splitlines()[-1][6:])
    message.refresh_from_db()
    # (answered, or — when the small model only says it does not know — Kefu's own refusal)
    assert message.outcome == "answered" or message.reason == "model_dont_know", (message.outcome, message.text)
    assert message.text == done["answer"] and message.text
    assert message.completion_tokens and message.prompt_tokens
    assert {"pipeline_ms", "ttft_ms", "first_token_ms", "total_ms"} <= set(message.timings)
