"""What a message asks for: a video, a command, an answer, or just chat.

Every message is exactly one of INTENTS. Only "video" may ever lead to a paid task, so the
rules lean towards not spending: a command counts when it is the whole message (give or take
polite words: "help", "有哪些模型?", "ok thanks"); small talk, questions that ask for nothing
to be made, keyboard mash and empty messages are "chat"; a model choice with nothing to
depict is "prefer". The phrases live in bot/catalog/intents.toml. This module is stateless:
"好的" is "confirm" here; the core decides what a confirm means (and that without an open
question it is chat).
"""

from __future__ import annotations

import re
import tomllib
import unicodedata
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

from bot.understand.lexicon import B_END, B_START, INTENTS_PATH
from bot.understand.normalize import fold

INTENTS = ("video", "help", "models", "jobs", "cancel", "prefer", "confirm", "decline", "chat")
#: commands in the order they are tried (intents.toml [commands])
COMMANDS = ("help", "models", "jobs", "cancel", "prefer", "decline", "confirm")
#: the commands that still win when a picture came with the message ("help" + a photo)
COMMANDS_WITH_IMAGES = frozenset({"help", "models", "jobs", "cancel", "prefer"})

# Platform mentions ("@_user_1" in Feishu text, "<@123>" on Discord) and a leading slash.
_MENTION = re.compile(r"@_user_\d+|<@[!&]?\d+>|@\S+")
_LATIN_WORD = re.compile(r"[a-z]+")
_VOWELS = frozenset("aeiouy")
_KEYBOARD_ROWS = ("qwertyuiop", "asdfghjkl", "zxcvbnm")
_CONSONANT_RUN = re.compile(r"[bcdfghjklmnpqrstvwxz]{5,}")
_SHORT_QUESTION = 12
_MAX_POLITE = 6
_SHORT_COMMON = frozenset({"a", "i", "an", "to", "of", "in", "on", "at", "by", "is", "it", "my", "me", "we", "up"})


@dataclass(frozen=True)
class IntentTables:
    """intents.toml, compiled."""

    commands: tuple[tuple[str, re.Pattern[str]], ...]
    polite_edges: re.Pattern[str]
    chat: re.Pattern[str]
    greeting: re.Pattern[str]  # small talk or a polite word at the start, with its punctuation
    generate: re.Pattern[str]
    question_start: re.Pattern[str]
    question_end: re.Pattern[str]
    question_words: re.Pattern[str]
    choices: tuple[tuple[int, re.Pattern[str]], ...]


def _alt(patterns: list[str]) -> str:
    return "(?:" + "|".join(f"(?:{p})" for p in patterns) + ")"


def _words(patterns: list[str]) -> str:
    """An alternation whose latin phrases match whole words only; longer phrases are tried
    first, so "早上好" is not read as "早" and a rest."""
    return f"{B_START}{_alt(sorted(patterns, key=len, reverse=True))}{B_END}"


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
    return IntentTables(
        commands=tuple((name, re.compile(_alt(list(commands[name])))) for name in COMMANDS),
        # one polite word at either end ("ok thanks", "请帮助一下吧"), stripped a word at a time
        polite_edges=re.compile(rf"^{polite}\s*|\s*{polite}$"),
        chat=re.compile(chat),
        greeting=re.compile(rf"(?:{chat}|{polite})[\s,，.。!！~～:：]*"),
        generate=re.compile(_words(list(data["generate"]["words"]))),
        question_start=re.compile(q["start"]),
        question_end=re.compile(q["end"]),
        question_words=re.compile(q["words"]),
        choices=tuple((int(k), re.compile(_words(list(v)))) for k, v in data["choice"].items()),
    )


def core_text(folded: str) -> str:
    """The words of a folded message: no mentions, leading slash, punctuation, symbols or
    emoji; single spaces."""
    text = _MENTION.sub(" ", folded)
    kept = [ch if unicodedata.category(ch)[0] in "LN" else " " for ch in text]
    return " ".join("".join(kept).split())


def _unwrapped(text: str, tables: IntentTables) -> list[str]:
    """`text`, then `text` with polite words taken off its ends one at a time ("算了吧" ->
    "算了" -> "算"): every stage, since a polite word can also end a command."""
    stages = [text]
    for _ in range(_MAX_POLITE):
        stripped = tables.polite_edges.sub("", stages[-1]).strip()
        if stripped == stages[-1]:
            break
        stages.append(stripped)
    return stages


def strip_polite(text: str, tables: IntentTables) -> str:
    """`text` without the polite words at its ends ("好的谢谢" -> "好的")."""
    return _unwrapped(text, tables)[-1]


def command_of(text: str, tables: IntentTables | None = None) -> str | None:
    """The command a whole message is (already through `core_text`), or None."""
    tables = tables or load_intents()
    candidates = [c for c in _unwrapped(text, tables) if c]
    for name, pattern in tables.commands:
        if any(pattern.fullmatch(c) for c in candidates):
            return name
    return None


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
    rest = tables.chat.sub(" ", text)
    rest = strip_polite(" ".join(rest.split()), tables)
    return not any(ch.isalnum() for ch in rest)


def without_greeting(prompt: str | None, tables: IntentTables | None = None) -> str | None:
    """The prompt without small talk in front of the description ("你好, 一只猫在跳舞")."""
    if not prompt:
        return prompt
    tables = tables or load_intents()
    folded = fold(prompt)  # one character for one: an index in it is an index in `prompt`
    m = tables.greeting.match(folded)
    if m is None or m.end() == 0 or not any(ch.isalnum() for ch in prompt[m.end():]):
        return prompt
    return without_greeting(prompt[m.end():].strip(), tables)


def _gibberish_word(word: str) -> bool:
    if len(word) < 3:
        return word not in _SHORT_COMMON and len(word) == 2 and not (set(word) & _VOWELS)
    if not set(word) & _VOWELS:
        return True
    if _CONSONANT_RUN.search(word) or re.search(r"(.)\1\1", word):
        return True
    if re.search(r"q(?!u)", word[:-1]):
        return True
    return len(word) >= 3 and any(word in row for row in _KEYBOARD_ROWS)


def is_gibberish(text: str) -> bool:
    """Keyboard mash ("asdkjh qwe zzxq"): latin words only, most of them unpronounceable."""
    if any(unicodedata.category(ch) == "Lo" for ch in text):
        return False  # Chinese (and other scripts) are not judged here
    words = _LATIN_WORD.findall(text)
    if not words:
        return not any(ch.isalnum() for ch in text) or text.replace(" ", "").isdigit()
    bad = sum(1 for w in words if _gibberish_word(w))
    return bad * 2 > len(words)


def is_idle_question(text: str, tables: IntentTables | None = None) -> bool:
    """A question that asks for nothing to be made ("how are you", "今天天气怎么样")."""
    tables = tables or load_intents()
    # a Chinese question word inside a longer description ("一只猫在想什么, 镜头慢慢推近") is
    # part of the picture, not a question to the bot
    short = len(text) <= _SHORT_QUESTION
    asks = bool(tables.question_start.search(text) or tables.question_end.search(text)
                or (short and tables.question_words.search(text)))
    return asks and not tables.generate.search(text)


def classify(
    folded: str, *, images: int, prompt: str | None, names_model: bool, sets_preference: bool,
    has_parameters: bool, unknown_model: str | None, question_mark: bool,
) -> str:
    """The intent of one message (see the module docstring for the order of the rules)."""
    tables = load_intents()
    text = core_text(folded)
    if not text:
        return "video" if images else "chat"
    command = command_of(text, tables)
    if command is not None and (not images or command in COMMANDS_WITH_IMAGES):
        return command
    if images:
        return "video"
    content = core_text(prompt.lower()) if prompt else ""
    if not content or is_small_talk(content, tables):
        # "以后都用可灵" saves a preference; "用最便宜的" or "10秒" alone depicts nothing
        return "prefer" if sets_preference or unknown_model else "chat"
    if is_idle_question(content, tables):
        return "chat"  # what is left to depict is itself a question: "sora怎么样", "how much for a video?"
    if (question_mark or is_idle_question(text, tables)) and not tables.generate.search(text):
        return "chat"
    if not names_model and not has_parameters and not unknown_model and is_gibberish(content):
        return "chat"
    return "video"
