"""What a message asks for: a video, a command, an answer, or just chat.

Every message is exactly one of INTENTS. Only "video" may ever lead to a paid task, so the
rules lean towards not spending: a command counts when it is the whole message (give or take
polite words: "help", "有哪些模型?", "ok thanks"); small talk, questions that ask for nothing
to be made, keyboard mash and empty messages are "chat"; a model choice with nothing to
depict is "prefer". Beyond that, a message is a video only with evidence (a word that asks,
a model, a setting, a picture) or a description that shows something (`scene_weight`); a
few words without a word that asks are a video that waits for a yes (`unsure_request`). The phrases live in
bot/catalog/intents.toml. This module is stateless:
"好的" is "confirm" here; the core decides what a confirm means (and that without an open
question it is chat).
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

from bot.text import HAN
from bot.understand.lexicon import B_END, B_START, INTENTS_PATH
from bot.understand.normalize import fold
from bot.understand.scanner import Scanner

INTENTS = ("video", "help", "models", "jobs", "cancel", "prefer", "confirm", "decline", "chat")
#: commands in the order they are tried (intents.toml [commands])
COMMANDS = ("help", "usage", "models", "jobs", "cancel", "prefer", "decline", "confirm")
#: commands that are a topic of another intent: "usage" is what the person spent, a "jobs" question
_INTENT_OF = {"usage": "jobs"}
#: the commands that still win when a picture came with the message ("help" + a photo)
COMMANDS_WITH_IMAGES = frozenset({"help", "usage", "models", "jobs", "cancel", "prefer"})

# Platform mentions ("@_user_1" in Feishu text, "<@123>" on Discord) and a leading slash.
# A typed "@name" ends at a space or a punctuation mark ("@视频助手：生成…" is a name, then the
# request); an "@" inside a word is an address ("bob@example.com"), not a mention.
MENTION = re.compile(
    r"<@[!&]?\d+>|@(?<![\w.]@)(?:_user_\d+|[^\s,，.。:：;；!！?？、…~～()（）\[\]【】<>\"“”'‘’]+)"
)
_LATIN_WORD = re.compile(r"[a-z]+")
_NOT_A_WORD = re.compile(r"[\W_]+")  # anything but letters and digits of any script
#: no command is longer than this (in words-only characters): longer messages skip the command table
_LONGEST_COMMAND = 48
_VOWELS = frozenset("aeiouy")
_KEYBOARD_ROWS = ("qwertyuiop", "asdfghjkl", "zxcvbnm")
#: no vowel at all, five consonants in a row, a letter three times running, a q without its u
_UNPRONOUNCEABLE = re.compile(r"^[^aeiouy]+$|[bcdfghjklmnpqrstvwxz]{5}|(.)\1\1|q(?!u).")
#: three or more neighbouring keys of one keyboard row ("asdf", "qwe")
_KEYBOARD_RUNS = frozenset(
    row[i:j] for row in _KEYBOARD_ROWS for i in range(len(row)) for j in range(i + 3, len(row) + 1)
)
_OTHER_SCRIPT = re.compile(r"[^\W\d_\u0000-\u024f]")
_SHORT_QUESTION = 12
_MAX_POLITE = 6
_POLITE_TAIL = 24
#: a link is not a description (a picture link is taken as a picture before this)
_LINK_ENDINGS = frozenset(
    {"com", "cn", "net", "org", "io", "ai", "co", "dev", "app", "me", "tv", "html", "htm"}
)
#: scene_weight below which a bare description is chat ("你", "辛苦"), and at which it is sure
#: enough to start without asking ("a red fox", "小狗在草地上奔跑")
SOME_SCENE = 5
SURE_SCENE = 10
_SHORT_COMMON = frozenset(
    {"a", "i", "an", "to", "of", "in", "on", "at", "by", "is", "it", "my", "me", "we", "up"}
)


@dataclass(frozen=True)
class IntentTables:
    """intents.toml, compiled."""

    commands: Scanner  # one kind per command, in priority order
    polite_start: re.Pattern[str]
    polite_end: Scanner  # a polite word that ends the text
    polite_last: frozenset[str] | None  # the characters a polite word can end with (None: any)
    chat: re.Pattern[str]
    only_small_talk: re.Pattern[str]
    greeting: re.Pattern[str]  # small talk or a polite word at the start, with its punctuation
    generate: re.Pattern[str]  # words about making something, "video" and "视频" included
    asks: re.Pattern[str]  # of those, the ones that ask for it ("make", "生成")
    refusals: re.Pattern[str]  # "don't make …", "不要生成 …"
    reports: re.Pattern[str]  # "生成了 …", "I made …"
    about_making: re.Pattern[str]  # "要多久?", "how much does …"
    making_talk: Scanner  # any of the three: one search rules them out for most messages
    question_start: re.Pattern[str]
    question_only_start: re.Pattern[str]  # no imperative begins so ("do …", "have him …" do)
    question_end: re.Pattern[str]
    question_words: re.Pattern[str]
    choices: tuple[tuple[int, re.Pattern[str]], ...]
    not_depicting: frozenset[str]
    not_depicting_zh: re.Pattern[str]
    talk: Scanner  # words of people talking to each other ([talk] markers)
    video_request: re.Pattern[str]  # "a video of a …", "一个…的视频" ([talk])
    opener: re.Pattern[str]  # "I want", "我想要": wanting that opens a request ([talk] openers)
    picture_words: re.Pattern[str]  # "these", "这张": a caption pointing at its picture ([talk])
    picture_words_many: re.Pattern[str]  # "that one": ... at one of several ([talk])
    caption_talk: re.Pattern[str]  # "look at this", "你们看看": talk in a caption ([talk])
    caption_asks: re.Pattern[str]  # "让…", "把…": a caption that asks ([talk])
    not_now: Scanner  # "回头", "next time", "remind me", "就好了" ([not_now])
    not_now_near: re.Pattern[str]  # what every one of them contains ([not_now] anchors)
    not_now_end: tuple[str, ...]  # "… later" ([not_now] ends)


def _alt(patterns: list[str]) -> str:
    return "(?:" + "|".join(f"(?:{p})" for p in patterns) + ")"


def _words(patterns: list[str]) -> str:
    """An alternation whose latin phrases match whole words only; longer phrases are tried
    first, so "早上好" is not read as "早" and a rest."""
    return f"{B_START}{_alt(_longest_first(patterns))}{B_END}"


def _longest_first(patterns: list[str]) -> list[str]:
    return sorted(patterns, key=len, reverse=True)


_LOOKAROUND_AT_END = re.compile(r"\(\?<?[=!][^()]*\)$")


def _last_chars(patterns: list[str]) -> frozenset[str] | None:
    """The characters the phrases can end with ("um+" ends with "m"), or None when one of them
    does not end with a plain character (then any may)."""
    last: set[str] = set()
    for pattern in patterns:
        tail = _LOOKAROUND_AT_END.sub("", pattern).rstrip("+")  # "给我(?![妈爸])" ends with 我
        if not tail or not (tail[-1].isalnum() and (len(tail) < 2 or tail[-2] != "\\")):
            return None
        last.add(tail[-1])
    return frozenset(last)


def _phrases(groups: dict[str, list[str]], end: str = "") -> Scanner:
    """The same search as `_words` over each group in turn, dispatched on the first character
    (bot.understand.scanner): a large alternation searched by `re` tries every phrase at
    every position, and these are searched in every message."""
    return Scanner([(name, _longest_first(p)) for name, p in groups.items()], B_START, B_END + end)


@cache
def load_intents(path: Path = INTENTS_PATH) -> IntentTables:
    """Load and compile intents.toml (once per process)."""
    data: dict[str, Any] = tomllib.loads(path.read_text(encoding="utf-8"))
    polite = _words(list(data["polite"]["phrases"]))
    chat = _words(list(data["chat"]["phrases"]))
    commands = data["commands"]
    if set(commands) != set(COMMANDS):
        raise ValueError(f"intents.toml: [commands] must list exactly {COMMANDS}")
    q = data["question"]
    made = data["generate"]
    refusals = _words(list(made["refusals"]))
    reports = _words(list(made["reports"]))
    about_making = _words(list(made["about_making"]))
    return IntentTables(
        commands=Scanner([(name, list(commands[name])) for name in COMMANDS], "", ""),
        # one polite word at either end ("ok thanks", "请帮助一下吧"), stripped a word at a time
        polite_start=re.compile(rf"{polite}\s*"),
        polite_end=_phrases({"polite": list(data["polite"]["phrases"])}, end="$"),
        polite_last=_last_chars(list(data["polite"]["phrases"])),
        chat=re.compile(chat),
        # atomic words, possessive repetition: linear however the phrases overlap ("哈哈哈…")
        only_small_talk=re.compile(rf"(?:(?>{chat}|{polite})\s*)++"),
        greeting=re.compile(rf"(?:{chat}|{polite})[\s,，.。!！~～:：]*"),
        generate=re.compile(_words(list(data["generate"]["words"]))),
        asks=re.compile(_words(list(made["asks"]))),
        refusals=re.compile(refusals),
        reports=re.compile(reports),
        about_making=re.compile(about_making),
        making_talk=_phrases({k: list(made[k]) for k in ("refusals", "reports", "about_making")}),
        question_start=re.compile(q["start"]),
        question_only_start=re.compile(q["start_only_questions"]),
        question_end=re.compile(q["end"]),
        question_words=re.compile(q["words"]),
        choices=tuple((int(k), re.compile(_words(list(v)))) for k, v in data["choice"].items()),
        not_depicting=frozenset(data["scene"]["not_depicting"]),
        not_depicting_zh=re.compile(_alt(list(data["scene"]["not_depicting_zh"]))),
        talk=_phrases({"talk": list(data["talk"]["markers"])}),
        video_request=re.compile(_words(list(data["talk"]["video_request"]))),
        opener=re.compile(_alt(list(data["talk"]["openers"]))),
        picture_words=re.compile(_words(list(data["talk"]["picture_words"]))),
        picture_words_many=re.compile(_words(list(data["talk"]["picture_words_many"]))),
        caption_talk=re.compile(_words(list(data["talk"]["caption_markers"]))),
        caption_asks=re.compile(str(data["talk"]["caption_asks"])),
        not_now=_phrases({"not_now": list(data["not_now"]["phrases"])}),
        not_now_near=re.compile(
            "|".join(re.escape(a) for a in _longest_first(list(data["not_now"]["anchors"])))
        ),
        not_now_end=tuple(data["not_now"]["ends"]),
    )


def core_text(folded: str) -> str:
    """The words of a folded message: no mentions, leading slash, punctuation, symbols or
    emoji; single spaces."""
    if "@" in folded:  # every mention has one: most messages skip that pass
        folded = MENTION.sub(" ", folded)
    return " ".join(_NOT_A_WORD.sub(" ", folded).split())


def _unwrapped(text: str, tables: IntentTables) -> list[str]:
    """`text`, then `text` with polite words taken off its ends one at a time ("算了吧" ->
    "算了" -> "算"): every stage, since a polite word can also end a command."""
    stages = [text]
    for _ in range(_MAX_POLITE):
        current = stages[-1]
        start = tables.polite_start.match(current)
        if start is not None and start.end():
            current = current[start.end() :]
        # a polite word is short: look for one only near the end, not from every position, and
        # only when the text ends with a character one can end with
        last = tables.polite_last
        end = (
            tables.polite_end.first(current, max(0, len(current) - _POLITE_TAIL))
            if current and (last is None or current[-1] in last)
            else None
        )
        if end is not None:
            current = current[: end[1]]
        current = current.strip()
        if current == stages[-1]:
            break
        stages.append(current)
    return stages


def strip_polite(text: str, tables: IntentTables) -> str:
    """`text` without the polite words at its ends ("好的谢谢" -> "好的")."""
    return _unwrapped(text, tables)[-1]


def command_of(text: str, tables: IntentTables | None = None) -> str | None:
    """The command a whole message is (already through `core_text`), or None."""
    tables = tables or load_intents()
    if len(text) > _LONGEST_COMMAND:
        return None
    found = [kind for c in _unwrapped(text, tables) if (kind := tables.commands.whole(c))]
    return min(found, key=COMMANDS.index) if found else None


def choice_of(text: str, tables: IntentTables | None = None) -> int | None:
    """Which alternative an answer picks ("用第二个" -> 1), or None."""
    tables = tables or load_intents()
    for index, pattern in tables.choices:
        if pattern.search(text):
            return index
    return None


def is_small_talk(text: str, tables: IntentTables | None = None) -> bool:
    """True when nothing but greetings, thanks, praise and polite words is left."""
    tables = tables or load_intents()
    return tables.only_small_talk.fullmatch(text.strip()) is not None


#: what may follow a greeting ("你好, …", "hi! …")
_GREETING_MARKS = " \t\n,，.。!！~～:："


def without_greeting(prompt: str | None, tables: IntentTables | None = None) -> str | None:
    """The prompt without small talk in front of the description ("你好, 一只猫在跳舞")."""
    return without_greeting_folded(prompt, tables)[0]


def without_greeting_folded(prompt: str | None, tables: IntentTables | None = None) -> tuple[str | None, str]:
    """`without_greeting`, and the prompt it answers `fold`ed (the caller needs it too: one
    fold fewer a message)."""
    if not prompt:
        return prompt, ""
    tables = tables or load_intents()
    folded = fold(prompt)  # one character for one: an index in it is an index in `prompt`
    m = tables.greeting.match(folded)
    if m is None or m.end() == 0 or not any(ch.isalnum() for ch in prompt[m.end() :]):
        return prompt, folded
    word = m[0].rstrip(_GREETING_MARKS)
    if len(word) == 1 and len(word) == m.end():
        return prompt, folded  # one character with nothing after it starts a word: "早上拍的日出"
    return without_greeting_folded(prompt[m.end() :].strip(), tables)


def _gibberish_word(word: str) -> bool:
    if len(word) < 3:
        return word not in _SHORT_COMMON and len(word) == 2 and _VOWELS.isdisjoint(word)
    return _UNPRONOUNCEABLE.search(word) is not None or word in _KEYBOARD_RUNS


def is_gibberish(text: str) -> bool:
    """Keyboard mash ("asdkjh qwe zzxq"): latin words only, most of them unpronounceable."""
    if _OTHER_SCRIPT.search(text):
        return False  # Chinese (and other scripts) are not judged here
    words = _LATIN_WORD.findall(text)
    if not words:
        return not any(ch.isalnum() for ch in text) or text.replace(" ", "").isdigit()
    bad = sum(1 for w in words if _gibberish_word(w))
    return bad * 2 > len(words)


def scene_weight(prompt: str, tables: IntentTables | None = None, *, content: str | None = None) -> int:
    """How much a description shows: 2 per Chinese character, 5 per latin word that can show
    something. Links and the [scene] words that show nothing by themselves weigh nothing.
    `content`: `core_text(fold(prompt))` when the caller has it."""
    tables = tables or load_intents()
    unlinked = without_links(prompt)
    core = content if content is not None and unlinked is prompt else core_text(fold(unlinked))
    # words about making a video ("生成", "视频") show nothing by themselves either
    text = tables.generate.sub(" ", core)
    han = len(HAN.findall(tables.not_depicting_zh.sub("", text)))
    words = sum(1 for w in _LATIN_WORD.findall(text) if w not in tables.not_depicting)
    return 2 * han + 5 * words


def without_links(text: str) -> str:
    """`text` without its links ("https://…", "www.…", "example.com/page")."""
    if "." not in text:
        return text
    return " ".join(w for w in text.split() if not _is_link(w))


def _is_link(word: str) -> bool:
    """ "https://…", "www.…", "example.com/page": one whitespace-free word (no regex: linear)."""
    low = word.lower()
    if "://" in low or low.startswith("www."):
        return True
    host = low.split("/", 1)[0].split("?", 1)[0].rstrip(".,;:!)")
    return "." in host and host.rsplit(".", 1)[1] in _LINK_ENDINGS


def unsure_request(scene: int, *, evidence: bool, talk: bool = False) -> bool:
    """A video request with nothing that asks for it (`evidence`) and only a short description
    ("a cat", "一只猫", "hungry"; `scene` its weight) or words of talk (`talk`: "the hands look
    weird again lol"): it waits for the requester's yes before anything is spent."""
    return not evidence and (scene < SURE_SCENE or talk)


def not_now(core: str, tables: IntentTables | None = None) -> bool:
    """Whether a message (through `core_text`) puts the making off, wishes for it or gives it
    to someone else to do ("回头再生成", "next time", "remind me to make…", "要是能…就好了",
    "… later"): a word that asks in it is not a request now ([not_now] in intents.toml)."""
    tables = tables or load_intents()
    if _ends_with_word(core, tables.not_now_end):
        return True
    # whole words only for the latin ones ("then i ll", not "then i llama"): the scanner, on a hit
    return tables.not_now_near.search(core) is not None and tables.not_now.first(core) is not None


def _ends_with_word(text: str, endings: tuple[str, ...]) -> bool:
    """Whether `text` ends with one of `endings`, a whole word when it is latin ("… later", not
    "translater")."""
    if not text.endswith(endings):
        return False
    ending = next(e for e in endings if text.endswith(e))
    before = text[-len(ending) - 1 : -len(ending)]
    return not (ending[0].isascii() and before.isascii() and before.isalnum())


def unsure_caption(core: str, *, asks: bool, question_mark: bool, talk: bool, later: bool = False) -> bool:
    """Words sent with a picture that ask for nothing (`core`: through `core_text`): a question
    ("what does it mean?", "好看吗"), thanks or greetings alone ("thanks!"), words of talk
    (`talk`: "my cat btw", "这是我昨天做的") or a look ("look at this"). The picture then waits
    for a yes before anything is spent; a caption that asks ("make her wave", "动起来", "让她笑")
    or describes ("镜头慢慢推近"), or none at all, is a request."""
    tables = load_intents()
    if later:  # put off, refused, talked about: "先别生成，让我想想"
        return True
    if asks or not core or tables.caption_asks.search(core):
        return False
    return (
        talk
        or question_mark
        or tables.caption_talk.search(core) is not None
        or _asks_a_question(core, tables, start=tables.question_only_start)
        or is_small_talk(core, tables)
    )


def without_picture_words(core: str, tables: IntentTables | None = None, *, many: bool = False) -> str:
    """A caption (through `core_text`) without the words that point at its picture ("these
    two", "这张"; with `many` pictures also "that one"): they are no talk."""
    tables = tables or load_intents()
    if many:
        core = tables.picture_words_many.sub(" ", core)
    return " ".join(tables.picture_words.sub(" ", core).split())


def asks_for_a_new_video(core: str, tables: IntentTables | None = None) -> bool:
    """Whether a message (through `core_text`) asks for a new video by name: "a video of a
    cat", "一个小狗奔跑的视频" ([talk] video_request)."""
    tables = tables or load_intents()
    return tables.video_request.search(core) is not None


def is_opener(core: str, tables: IntentTables | None = None) -> bool:
    """Whether words (through `core_text`) start with wanting that opens a request: "I want",
    "我想要", "给我来个"."""
    tables = tables or load_intents()
    return tables.opener.match(core) is not None


def sounds_like_talk(core: str, tables: IntentTables | None = None) -> bool:
    """Whether a message (through `core_text`) has words of people talking to each other
    ("我觉得…", "lol", "tomorrow"): see [talk] in intents.toml."""
    tables = tables or load_intents()
    return tables.talk.first(core) is not None


def is_idle_question(text: str, tables: IntentTables | None = None) -> bool:
    """A question that asks for nothing to be made ("how are you", "今天天气怎么样")."""
    tables = tables or load_intents()
    # a Chinese question word inside a longer description ("一只猫在想什么, 镜头慢慢推近") is
    # part of the picture, not a question to the bot
    return _asks_a_question(text, tables) and not tables.asks.search(text)


def _asks_a_question(text: str, tables: IntentTables, start: re.Pattern[str] | None = None) -> bool:
    """Whether `text` is put as a question; `start`: the openings that make one (a caption's
    leave out those an imperative shares: "do a slow zoom", "have him wave")."""
    short = len(text) <= _SHORT_QUESTION
    return bool(
        (start or tables.question_start).search(text)
        or tables.question_end.search(text)
        or (short and tables.question_words.search(text))
    )


def talks_about_making(text: str, tables: IntentTables | None = None, *, question_mark: bool = False) -> bool:
    """Talk about making a video that asks for none (`text` through `core_text`): a refusal
    ("don't make a video of a cat", "不要生成小狗的视频") or a report ("我昨天生成了一段视频",
    "I made a video of my dog") with no ask left outside it, or a question about the making
    itself ("生成视频要多久?", "how long does Kling take to make one?")."""
    tables = tables or load_intents()
    if tables.making_talk.first(text) is None:
        return False
    about = tables.about_making.search(text)
    if about is not None and (question_mark or about.end() == len(text) or _asks_a_question(text, tables)):
        return True
    rest = tables.reports.sub(" ", tables.refusals.sub(" ", text))
    return rest != text and not tables.asks.search(rest)


def classify(
    folded: str,
    *,
    images: int,
    prompt: str | None,
    sets_preference: bool,
    unknown_model: str | None,
    question_mark: bool,
    evidence: bool,
    scene: int,
    core: str | None = None,
    content: str | None = None,
) -> str:
    """The intent of one message (see the module docstring for the order of the rules).
    `evidence`: a word that asks (`asks_in_words`), a model or a setting; `scene`: the
    prompt's `scene_weight`; `core`: `core_text(folded)` and `content`:
    `core_text(fold(prompt))` when the caller has them."""
    tables = load_intents()
    text = core_text(folded) if core is None else core
    if not text:
        return "video" if images else "chat"
    command = command_of(text, tables)
    if command is not None and (not images or command in COMMANDS_WITH_IMAGES):
        return _INTENT_OF.get(command, command)
    if images:
        # with a picture, talk about making ("早上拍的照片", "不要生成") asks first instead
        # (parser): the picture may still be meant
        return "video"
    if talks_about_making(text, tables, question_mark=question_mark):
        return "chat"  # "don't make …", "I made …", "how long does it take?": nothing to spend on
    if content is None:  # folded: Traditional small talk too
        content = core_text(fold(prompt)) if prompt else ""
    if not content or is_small_talk(content, tables):
        # "以后都用可灵" saves a preference; "用最便宜的" or "10秒" alone depicts nothing
        return "prefer" if sets_preference or unknown_model else "chat"
    if is_idle_question(content, tables):
        return "chat"  # what is left to depict is itself a question: "sora怎么样", "how much for a video?"
    if not tables.asks.search(text) and (question_mark or _asks_a_question(text, tables)):
        return "chat"
    if scene == 0 or (not evidence and (is_gibberish(content) or scene < SOME_SCENE)):
        return "chat"  # "sorry", "it failed", "谢谢你", a link alone: nothing asks for a video
    return "video"


def asks_in_words(text: str, *, tables: IntentTables | None = None, core: str | None = None) -> bool:
    """Whether a message asks for a video in so many words: a word that asks ("make", "生成"),
    not inside a link. `core`: `core_text(text)` when the caller has it."""
    tables = tables or load_intents()
    unlinked = without_links(text)
    words = core if core is not None and unlinked is text else core_text(unlinked)
    return tables.asks.search(words) is not None
