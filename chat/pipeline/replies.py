"""What Kefu says itself, in English and Chinese: refusals, hand-offs, "I don't know", small talk.

The language follows the question (:func:`chat.pipeline.language.reply_language`: Chinese for
Chinese, English for anything else), so a customer is answered in the language they wrote in.
"""

from __future__ import annotations

import re

from chat.pipeline.language import reply_language

REPLIES = {
    "sensitive_word": {
        "en": "I'm sorry, I can't help with that request. If you need assistance, I can connect you with a member of our team.",
        "zh": "抱歉，我无法处理这个请求。如需帮助，我可以为您转接人工客服。",
    },
    "dont_know": {
        "en": "I'm sorry, I don't know the answer to that. Would you like me to connect you with a member of our team?",
        "zh": "抱歉，我不知道这个问题的答案。需要为您转接人工客服吗？",
    },
    "handoff": {
        "en": "I've passed your conversation to our team. A member of staff will reply here as soon as possible.",
        "zh": "已为您转接人工客服，工作人员会尽快在这里回复您。",
    },
    "scope": {
        "en": "That's not something I can help with here: I answer questions about our products and services "
              "from our knowledge base. Would you like me to connect you with a member of our team?",
        "zh": "这个问题超出了我能帮助的范围：我只能根据我们的知识库回答与我们产品和服务相关的问题。需要为您转接人工客服吗？",
    },
    "greeting": {
        "en": "Hello! How can I help you today?",
        "zh": "您好！请问有什么可以帮您？",
    },
    "thanks": {
        "en": "You're welcome! Is there anything else I can help you with?",
        "zh": "不客气！还有其他可以帮您的吗？",
    },
    "acknowledge": {
        "en": "Is there anything else I can help you with?",
        "zh": "还有其他可以帮您的吗？",
    },
    "goodbye": {
        "en": "Goodbye, and thank you for getting in touch!",
        "zh": "再见，感谢您的咨询！",
    },
    "help": {
        "en": "Of course! What would you like to know? Ask in your own words — I answer from our knowledge base, "
              "and I can connect you with a member of our team if you prefer.",
        "zh": "当然可以！请问您想了解什么？直接描述您的问题即可——我会根据知识库回答，也可以为您转接人工客服。",
    },
    "identity": {
        "en": "I'm the virtual assistant of this site: I answer from our knowledge base, with the sources, "
              "and I can connect you with a member of our team whenever you like.",
        "zh": "我是本站的智能客服助手：我根据我们的知识库回答问题并注明出处，您也可以随时要求转接人工客服。",
    },
    "failed": {
        "en": "Sorry, something went wrong while answering. Please try again, or ask to talk to a person.",
        "zh": "抱歉，回答时出现了问题。请重试，或选择转人工客服。",
    },
}


def language_of(text: str) -> str:
    """The language ("zh" or "en") Kefu's own words take for a customer who wrote ``text``."""
    return reply_language(text)


def reply(kind: str, *, question: str) -> str:
    return REPLIES[kind][language_of(question)]


SUGGESTION_INTRO = {"en": "This may help —", "zh": "以下内容也许能帮到您——"}


def suggestion(*, question: str, faq_question: str, faq_answer: str, n: int) -> str:
    """A FAQ entry offered whole, introduced with its own question, when it is the clear best match but
    not close enough to be answered directly: the customer can see which question it answers."""
    intro = SUGGESTION_INTRO[language_of(question)]
    return f"{intro} **{' '.join(faq_question.split())}**\n\n{faq_answer.strip()} [{n}]"


# A generated answer that only says it does not know: the model followed the prompt's instruction, and
# the customer gets Kefu's own reply (with the offer of a person) instead of the model's wording.
DONT_KNOW = re.compile(
    r"^\W*(i'?m sorry,?\s*)?(i|you)\s+(do\s*n[o']?t|cannot|can'?t)\s+(know|answer|find)"
    r"|^\W*(抱歉，?)?(我)?(不知道|无法回答|没有找到)", re.IGNORECASE)


def says_dont_know(answer: str) -> bool:
    """True when a generated answer opens by saying it does not know (English or Chinese)."""
    return bool(DONT_KNOW.search(answer.strip()))
