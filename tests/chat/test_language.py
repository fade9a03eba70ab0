"""The customer's language: detected once per question (script first, then lingua), stored on the message,
and followed by every text Kefu writes itself — replies from the pipeline and the chat API's notices."""

from __future__ import annotations

import json

import pytest

from chat import services
from chat.models import Message
from chat.pipeline import replies
from chat.pipeline.language import detect_language, reply_language

ORIGIN = "https://shop.example.com"


@pytest.mark.parametrize("text, language", [
    ("退货", "zh"),  # two characters: the script decides, no model is asked
    ("好", "zh"),
    ("营业时间？", "zh"),
    ("WiFi密码是多少", "zh"),  # mixed with Latin letters, still Chinese
    ("こんにちは、営業時間は？", "ja"),  # kana next to Han characters: Japanese, not Chinese
    ("영업시간이 어떻게 되나요?", "ko"),
    ("How long does it take to get a building permit?", "en"),
    ("Wie lange dauert es, eine Baugenehmigung zu bekommen?", "de"),
    ("Combien de temps faut-il pour obtenir un permis de construire ?", "fr"),
    ("¿Cuánto tiempo se tarda en obtener un permiso de construcción?", "es"),
    ("Hur lång tid tar det att få bygglov för en altan?", "sv"),
    ("Сколько времени занимает получение разрешения на строительство?", "ru"),
    ("ok thanks", "en"),  # too short to tell: the default
    ("", "en"),
    ("😀🎉", "en"),
])
def test_the_language_of_a_question(text, language):
    assert detect_language(text) == language


@pytest.mark.parametrize("text, language", [("退货", "zh"), ("Hello there, how are you?", "en"),
                                            ("Wie lange dauert es, eine Baugenehmigung zu bekommen?", "en"),
                                            ("こんにちは、営業時間は？", "en")])
def test_kefus_own_words_are_chinese_or_english(text, language):
    # Kefu writes its own replies in Chinese and English; any other language gets English
    assert reply_language(text) == language == replies.language_of(text)


@pytest.mark.parametrize("kind", sorted(replies.REPLIES))
def test_every_reply_kefu_writes_follows_a_chinese_question(kind):
    # given a two-character Chinese question / when Kefu writes any of its own replies / then it is the Chinese one
    assert replies.reply(kind, question="人工") == replies.REPLIES[kind]["zh"]
    assert replies.reply(kind, question="I want to talk to someone") == replies.REPLIES[kind]["en"]


def ask(widget_key, text, conversation=None) -> Message:
    started = services.message_answer(widget_key=widget_key, conversation=conversation, text=text)
    return Message.objects.select_related("reply_to").get(pk=started.message_id)


def test_each_question_is_stored_with_its_language(widget_key, fake_generator):
    # when customers ask in Chinese, English and German in one conversation
    chinese = ask(widget_key, "你们几点开门？")
    english = ask(widget_key, "What are your opening hours?", chinese.conversation)
    german = ask(widget_key, "Wann haben Sie geöffnet, auch am Wochenende?", chinese.conversation)
    # then each question carries its own language, and the replies carry none
    assert [m.reply_to.language for m in (chinese, english, german)] == ["zh", "en", "de"]
    assert chinese.language == english.language == ""


def test_a_hand_off_notice_follows_the_customers_last_question(widget_key, fake_generator):
    # given a conversation in Chinese
    first = ask(widget_key, "你们几点开门？")
    # when the customer asks for a person
    notice = Message.objects.get(pk=services.handoff_request(conversation=first.conversation).message_id)
    # then the notice is Kefu's Chinese hand-off text
    assert notice.outcome == "handed_off" and notice.text == replies.REPLIES["handoff"]["zh"]


def post_question(client, widget_key, text, language):
    return client.post("/api/v1/chat/messages", data=json.dumps({"text": text}), content_type="application/json",
                       HTTP_X_KEFU_KEY=widget_key.public_key, HTTP_ORIGIN=ORIGIN, HTTP_ACCEPT_LANGUAGE=language)


def test_the_apis_rate_limit_notice_follows_the_widgets_language(client, widget_key, settings, fake_generator):
    # given a client over its budget
    settings.KEFU_CHAT_RATE_LIMITS = {"key": (100, 60), "ip": (1, 60), "conversation": (100, 60)}
    assert post_question(client, widget_key, "你们几点开门？", "zh-CN").status_code == 202
    # when the widget (which sends Accept-Language in its own language) asks again, in Chinese and in English
    chinese = post_question(client, widget_key, "你们几点开门？", "zh-CN,zh;q=0.9")
    english = post_question(client, widget_key, "When are you open?", "en")
    # then both are refused with the same code, each notice in the widget's language
    assert chinese.status_code == english.status_code == 429
    assert chinese.json()["error"]["code"] == english.json()["error"]["code"] == "rate_limited"
    assert "请等待" in chinese.json()["error"]["message"] and "秒后再试" in chinese.json()["error"]["message"]
    assert "please wait" in english.json()["error"]["message"]


@pytest.mark.parametrize("text, code, chinese", [
    ("   ", "empty_text", "问题为空"),
    ("退" * 2001, "text_too_long", "问题长度为 2001 个字符，上限为 2000 个"),
])
def test_the_apis_refusals_follow_the_widgets_language(client, widget_key, text, code, chinese):
    response = post_question(client, widget_key, text, "zh-CN")
    assert response.status_code == 400 and response.json()["error"] == {"code": code, "message": chinese}
