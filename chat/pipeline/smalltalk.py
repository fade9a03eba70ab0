"""Small talk and requests outside any knowledge base, recognised without a model.

A base that answers extractively never shows generator output, so small talk gets Kefu's own
short replies: greetings (hello in a few European languages too), thanks, goodbyes, "can you help me?" /
"I have a question" (an invitation to ask, not a request for a person) and "who are you?" are recognised by the patterns
below (English and Chinese) and answered from :mod:`chat.pipeline.replies` in the customer's
language. Tasks no support bot should take on — translating, writing poems, stories, cover letters or speeches, jokes,
code, homework — are recognised too, in every answer mode, and get the scope message with the
offer of a person. Anything else the intent stage calls chit-chat is searched like a question (and refused when
nothing fits): a canned reply that does not fit is worse than an honest answer or "I don't know".
"""

from __future__ import annotations

import re

GREETING, THANKS, ACKNOWLEDGE, GOODBYE, IDENTITY = "greeting", "thanks", "acknowledge", "goodbye", "identity"
HELP = "help"  # "can you help me?", "I have a question": an offer to ask, not a request for a person

# Each pattern must cover the whole message (bar punctuation, emoji and a few filler words): "hi, can I
# get a permit for a shed?" is a question with a greeting in front, not small talk.
FILLER = r"(?:\s*(?:there|again|everyone|all|team|kefu|bot|so much|a lot|very much|for (?:your|the) help|guys|friend)\b)*"
SMALLTALK = {
    GREETING: re.compile(
        r"^(?:hi|hello|hey|hiya|howdy|good (?:morning|afternoon|evening|day)|greetings|yo"
        # hello in the languages a European customer may open with (the reply is in English)
        r"|hej|hejsan|hej hej|hallå|tjena|god morgon|god dag|hallo|guten tag|moin|servus|hola|buenos d[ií]as"
        r"|bonjour|salut|ciao|buongiorno|hei|ol[aá]|bom dia|dzie[nń] dobry|cze[sś][cć])" + FILLER
        + r"(?:[\s,!.]*(?:how are you(?: doing)?|how's it going|nice to meet you))?$"
        r"|^(?:how are you(?: doing)?|how's it going|nice to meet you|is (?:anyone|anybody|someone) (?:there|here))$"
        r"|^(?:你好|您好|嗨|哈喽|早上好|下午好|晚上好|在吗|在不在|你好呀|你们好|有人吗|有人在吗)(?:啊|呀)?$"),
    THANKS: re.compile(
        r"^(?:(?:ok(?:ay)?|great|perfect|cool|awesome|nice)[\s,!.]*)?(?:thanks|thank you|thx|ty|cheers|much appreciated"
        r"|that(?:'s| is| was) (?:very |really )?helpful|that helps|you(?:'re| are) (?:very |really )?helpful)"
        + FILLER + r"$"
        r"|^(?:谢谢|多谢|感谢|谢啦|非常感谢|太感谢了|好的谢谢|好的，谢谢)(?:你|您|了)?(?:的帮助)?$"),
    ACKNOWLEDGE: re.compile(
        r"^(?:ok(?:ay)?|ok cool|cool|great|alright|all right|got it|i see|understood|fine|sure|good|perfect|nice)$"
        r"|^(?:好的|好|明白了|知道了|了解|嗯|行|可以)(?:了|啦)?$"),
    GOODBYE: re.compile(
        r"^(?:bye|goodbye|bye bye|see you(?: later| soon)?|have a (?:nice|good|great) (?:day|evening|weekend)"
        r"|that's all|that is all|good night)" + FILLER + r"$"
        r"|^(?:再见|拜拜|回头见|没有了|没事了|好的再见|晚安)(?:啦|了)?$"),
    HELP: re.compile(
        r"^(?:(?:hi|hello|hey|hej|good (?:morning|afternoon|evening))" + FILLER + r"[\s,!.]*)?"
        r"(?:(?:can|could|would|will) you (?:please )?help(?: me| us)?(?: out)?"
        r"|(?:i|we) (?:need|want|would like|could use) (?:some |a little )?help(?: please)?"
        r"|help(?: me)?(?: please)?|please help(?: me)?"
        r"|(?:i|we) have (?:a|one|some|a few|a couple of) (?:questions?|things? to ask)"
        r"|(?:can|could|may) (?:i|we) ask (?:you )?(?:something|a question|a few questions|some questions))"
        r"(?: with (?:something|a question|a few things|some things))?(?: please)?$"
        r"|^(?:你好|您好)?(?:能|可以|能不能|可不可以)?(?:帮帮|帮)我(?:一下)?(?:吗|嘛)?$|^(?:我|我们)(?:需要|想要|要)帮助$"
        r"|^(?:我|我们)有(?:个|一个|几个)?问题(?:想问|要问|想咨询)?$|^(?:请问)?(?:可以|能)问(?:个|一个|几个)?问题吗$"),
    IDENTITY: re.compile(
        r"^(?:who|what) are you$|^are you (?:a |an )?(?:bot|robot|human|real person|real|ai|machine|person)$"
        r"|^what(?:'s| is) your name$|^who am i (?:talking|speaking|chatting) (?:to|with)$"
        r"|^(?:你是谁|你是机器人吗|你是真人吗|你叫什么(?:名字)?|你是什么)$"),
}
# Tasks for a general assistant, not for a company's support desk.
TASK_REQUEST = re.compile(
    r"\btranslat(?:e|ion)\b.{0,40}\b(?:into|to|in)\s+[a-z]+"
    r"|\b(?:write|compose|make up|tell)\b.{0,20}\b(?:poem|haiku|song|lyrics|story|essay|joke|limerick|rap)\b"
    r"|\b(?:poem|haiku|joke|limerick)\s+(?:about|on)\b"
    r"|\b(?:write|give me|show me)\b.{0,25}\b(?:code|script|program|function|regex|sql)\b"
    r"|\b(?:write|draft|compose)\b.{0,25}\b(?:cover letter|cv|r[eé]sum[eé]|job application|speech|toast|eulogy"
    r"|tweet|blog post|love letter|wedding vows)\b(?!-)"
    r"|\b(?:python|javascript|java|c\+\+|sql|html)\s+(?:code|script|function|program)\b"
    r"|\b(?:solve|do)\b.{0,15}\b(?:homework|equation|math problem)\b"
    r"|翻译成|翻成|译成|写(?:一)?(?:首|篇|个|封|份)?(?:诗|歌|故事|文章|作文|笑话|代码|程序|求职信|简历|演讲稿|情书)|讲(?:一)?个笑话|编(?:一)?个故事",
    re.IGNORECASE)


def normalised(text: str) -> str:
    """Lower-cased, without the punctuation, emoji and spaces around the words."""
    return re.sub(r"[^\w\s'’+]+", " ", text.lower()).replace("’", "'").strip()


def smalltalk_kind(text: str) -> str | None:
    """greeting | thanks | acknowledge | goodbye | help | identity, or None when the message is more than small
    talk."""
    words = " ".join(normalised(text).split())
    compact = words.replace(" ", "")
    for kind, pattern in SMALLTALK.items():
        if pattern.search(words) or pattern.search(compact):
            return kind
    return None


def is_task_request(text: str) -> bool:
    """True for a request to translate, write a poem or a story, tell a joke, write code, do homework."""
    return bool(TASK_REQUEST.search(text))
