"""The chat admin: widget keys, profiles (editable system prompt) and conversations are manageable."""

import pytest


@pytest.mark.parametrize("model", ["widgetkey", "chatprofile", "conversation", "message", "feedback",
                                   "cachedanswer"])
def test_every_chat_changelist_renders(admin_client, model):
    assert admin_client.get(f"/admin/chat/{model}/").status_code == 200


def test_a_bases_system_prompt_is_edited_in_the_admin(admin_client, db):
    from chat.models import ChatProfile
    from kb.models import KnowledgeBase

    kb = KnowledgeBase.objects.create(name="Acme", slug="acme")
    response = admin_client.post("/admin/chat/chatprofile/add/", {
        "knowledge_base": kb.pk, "system_prompt": "You answer for Acme.", "answer_mode": "extractive",
        "sensitive_words": "", "relevance_floor": ""})
    assert response.status_code == 302
    profile = ChatProfile.objects.get(knowledge_base=kb)
    assert profile.system_prompt == "You answer for Acme." and profile.answer_mode == "extractive"
