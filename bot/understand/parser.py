"""parse(text, images) -> Request.

One pass of the compiled scanner (bot.understand.lexicon) over the normalized text finds
every phrase it knows; the rules below turn those phrases into fields, and what is left,
tidied, is the prompt.

Decisions the tables do not make:

- Task type. No image: text_to_video, whatever the wording (there is nothing to animate).
  One image: an explicit first-frame phrase (首帧, "first frame") or "animate this picture"
  makes it image_to_video; otherwise a reference phrase (参考这张图, "same character",
  "in the style of this picture") makes it reference_image_to_video; otherwise
  image_to_video. Transition wording with one image stays image_to_video: one picture can
  only be a start. Two images: reference_image_to_video when the wording says they are
  references and nothing says start/end; otherwise first_last_frame_to_video (two pictures
  with no wording are read as a start and an end). Three or more: first_last_frame_to_video
  only with start/end or transition wording (the orchestrator uses the first two),
  otherwise reference_image_to_video, the one task that takes several pictures.
- Model. Any specific model named -> preference "save" (DESIGN.md: a named model is used
  and saved). When several are named, the last one after a choosing word (用, "switch to")
  wins, else the first. "best"/"premium" words -> the catalog's [premium] model and
  preference "clear" (the user wants the bot's pick, not a fixed model); "cheapest" words
  -> the [budget] model and no preference change. A model named for a task type it does not
  do becomes a sibling that does ([siblings] in aliases.toml: Vidu Q2 animates a picture as
  Vidu Q2 Pro); with no such sibling the named model stays (model_key) and model_id is its
  closest id ([closest]), so the orchestrator tells the user it cannot do that task. A model
  the catalog knows only by name (Kling 2.1 Master) has model_key set and model_id None.
- Several values for one parameter: the last one counts ("5秒, 不, 10秒"). A range
  ("5-10秒") counts as its upper end.
- Language: "zh" when the message (outside model names) has at least as many Chinese
  characters as Latin words, else "en".
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from bot.text import HAN
from bot.understand.intent import (
    MENTION,
    asks_for_a_new_video,
    asks_in_words,
    choice_of,
    classify,
    command_of,
    core_text,
    is_opener,
    is_small_talk,
    not_now,
    scene_weight,
    sounds_like_talk,
    talks_about_making,
    unsure_caption,
    unsure_request,
    without_greeting_folded,
    without_picture_words,
)
from bot.understand.lexicon import Lexicon, canonical, load_lexicon
from bot.understand.normalize import fold, is_traditional
from bot.understand.numbers import read_number
from bot.understand.prompt import cut
from bot.understand.request import Request

MAX_IMAGES = 1000
_LATIN_WORD = re.compile(r"[a-z]+")
_CHOSEN_BY = frozenset({"model", "unknown_model", "budget", "premium"})

Token = tuple[str, int, int]


def _adjacent(folded: str, end: int, start: int) -> bool:
    return start >= end and not folded[end:start].strip()


def _scan(lx: Lexicon, folded: str) -> list[Token]:
    return lx.scanner.scan(folded)


#: what people quote is theirs, word for word: a sign that says "NO SORA" names no model
_QUOTED = re.compile(
    r"\"[^\"\n]*\"|“[^”\n]*”|「[^」\n]*」|『[^』\n]*』|‘[^’\n]*’|(?<![\w'])'[^'\n]+'(?![\w'])"
)
_QUOTE_MARKS = frozenset("\"“「『‘'")
_MASK = "\x1a"  # matches no phrase: quoted words are never read as models, parameters or commands
#: on/off words of the creative controls -> (Request field, value)
_SWITCHES: dict[str, tuple[str, Any]] = {
    "sound_on": ("sound", True),
    "sound_off": ("sound", False),
    "shot_single": ("shot_type", "single"),
    "shot_multi": ("shot_type", "multi"),
    "extend_on": ("prompt_extend", True),
    "extend_off": ("prompt_extend", False),
}
_DIGITS = re.compile(r"\d+")
#: the words that introduce a negative prompt (the rest of the phrase is its text)
_NEGATIVE_LEAD = re.compile(
    r"(?:画面里|画面中|视频里)?(?:不要|别|不能|不许|避免)出现|避免|negative(?:\s+prompt)?\s*[:：=]|--no\b|反向提示词?\s*[:：=]?"
)
_CLAUSE_EDGES = " \t,，:：;；.。\"'"
#: what a negation can rule out
_NEGATABLE = frozenset({"model", "unknown_model", "aspect", "resolution"})


def _mask_quotes(folded: str) -> str:
    """`folded` with the inside of every quoted span replaced (same length, marks kept)."""
    if _QUOTE_MARKS.isdisjoint(folded):
        return folded
    return _QUOTED.sub(lambda m: m[0][0] + _MASK * (len(m[0]) - 2) + m[0][-1], folded)


def _mention_cuts(
    folded: str, mentions: list[tuple[int, int]]
) -> tuple[list[tuple[int, int]], list[tuple[int, int]]]:
    """(the mentions that leave the prompt whole, the "@" of those that stay as a name): an id
    ("<@42>") goes whole; of a name only the "@" goes: people named are in the picture more
    often than not ("@张三 和 @李四 在海边跳舞", "a birthday video for @Sarah"). The bot's own
    mention is gone before the core sees the text."""
    whole, ats = [], []
    for start, end in mentions:
        if folded[start] != "@":
            whole.append((start, end))
        else:
            ats.append((start, start + 1))
    return whole, ats


def _blanked(text: str, spans: list[tuple[int, int]]) -> str:
    """`text` (the message or its fold) with the spans turned into spaces: same length."""
    chars = list(text)
    for start, end in spans:
        chars[start:end] = " " * (end - start)
    return "".join(chars)


def _negated(tokens: list[Token], folded: str, remove: list[bool]) -> list[bool]:
    """Tokens ruled out by a negation right before them ("别用sora", "not vertical"); the
    negation leaves the prompt only when it rules something out ("no people" stays)."""
    out = [False] * len(tokens)
    for i, (kind, _, end) in enumerate(tokens[:-1]):
        if kind != "negate":
            continue
        nxt_kind, nxt_start, _ = tokens[i + 1]
        if nxt_kind in _NEGATABLE and _adjacent(folded, end, nxt_start):
            out[i + 1] = True
            remove[i] = True
    return out


def _removable(tokens: list[Token], folded: str) -> tuple[list[bool], list[bool]]:
    """Which tokens leave the prompt, and which model tokens follow a choosing word."""
    remove = [
        not kind.endswith("_d") and kind not in ("choose", "after_model", "negate") for kind, _, _ in tokens
    ]
    chosen = [False] * len(tokens)
    for i, (kind, start, _) in enumerate(tokens):
        if kind in _CHOSEN_BY:
            j, nxt = i - 1, start
            while j >= 0 and tokens[j][0] == "choose" and _adjacent(folded, tokens[j][2], nxt):
                remove[j] = chosen[i] = True
                nxt = tokens[j][1]
                j -= 1
        elif kind == "after_model" and i > 0:
            prev_kind, _, prev_end = tokens[i - 1]
            if (
                (prev_kind in _CHOSEN_BY or prev_kind == "after_model")
                and remove[i - 1]
                and _adjacent(folded, prev_end, start)
            ):
                remove[i] = True
    return remove, chosen


def _task_type(images: int, cues: set[str]) -> str:
    first_last = bool(cues & {"first_last", "first_last_d"})
    reference = "reference" in cues
    if images <= 0:
        return "text_to_video"
    if images == 1:
        if cues & {"first_frame", "animate"}:
            return "image_to_video"
        return "reference_image_to_video" if reference else "image_to_video"
    if images == 2:
        return "reference_image_to_video" if reference and not first_last else "first_last_frame_to_video"
    return "first_last_frame_to_video" if first_last else "reference_image_to_video"


def model_for_task(key: str, task: str) -> tuple[str, str | None]:
    """(model_key, model_id) of the model `key` names, for `task`: itself when it does that
    task, else a sibling that does (Vidu Q2 animates a picture as Vidu Q2 Pro), else itself
    with no id. For a model named in one message about another's task (a retry's answer)."""
    return _resolve(load_lexicon(), key, task)


def _resolve(lx: Lexicon, key: str, task: str) -> tuple[str, str | None]:
    """(model_key, model_id) for a named model and a task type; see the module docstring."""
    model = lx.models.get(key)
    if model is None:  # pragma: no cover - keys are checked at load
        return key, None
    if model.supports(task):
        return key, model.ids[task]
    for sibling_key in lx.siblings.get(key, ()):
        sibling = lx.models.get(sibling_key)
        if sibling is not None and sibling.supports(task):
            return sibling_key, sibling.ids[task]
    for other in lx.closest[task]:
        if other in model.ids:
            return key, model.ids[other]
    return key, None


def _duration(lx: Lexicon, span: str) -> int | None:
    for pattern, value in lx.duration_phrases:
        if pattern.search(span):
            return value
    m = lx.duration_detail.search(span)
    if m is None:
        return None
    words = lx.number_words
    a = read_number(m["a"], words)
    b = read_number(m["b"], words) if m["b"] else None
    base = max(a, b) if a is not None and b is not None else a
    if base is None:
        return None
    seconds = base
    if m["min"]:
        extra = 30.0 if m["half"] else (read_number(m["c"], words) or 0.0) if m["c"] else 0.0
        seconds = base * 60 + extra
    # 0 is kept: the model's shortest is used and the notice says so, rather than silently
    return int(seconds + 0.5)


def _resolution(lx: Lexicon, span: str) -> str | None:
    best: tuple[int, str] | None = None
    for value, pattern in lx.resolution_values:
        for m in pattern.finditer(span):
            if best is None or m.end() - m.start() > best[0]:
                best = (m.end() - m.start(), value)
    return best[1] if best else None


def _aspect(lx: Lexicon, span: str) -> str | None:
    m = lx.aspect_numeric.search(span)
    if m is not None:
        ratio = f"{int(m[1])}:{int(m[2])}"
        if ratio in lx.aspect_ratios:
            return ratio
    for value, pattern in lx.aspect_values:
        if pattern.search(span):
            return value
    return None


def _language(folded: str, tokens: list[Token]) -> str:
    masked = folded
    for kind, start, end in reversed(tokens):
        if kind == "model":
            masked = masked[:start] + " " + masked[end:]
    for sample in (masked, folded):
        han = len(HAN.findall(sample))
        words = len(_LATIN_WORD.findall(sample))
        if han or words:
            return "zh" if han and han >= words else "en"
    return "en"


def parse(text: str, images: int = 0) -> Request:
    """Understand one chat message: its text and how many images came with it.

    Never raises for any string and any image count; see the module docstring for the rules.
    """
    if not isinstance(text, str):
        text = "" if text is None else str(text)
    try:
        images = max(0, min(MAX_IMAGES, int(images)))
    except (TypeError, ValueError, OverflowError):
        images = 0
    lx = load_lexicon()
    folded = fold(text)
    if len(folded) != len(text):  # pragma: no cover - fold is length-preserving by construction
        folded = text.lower()[: len(text)].ljust(len(text))
    said_in_full = folded
    folded = _mask_quotes(folded)
    mentions = [m.span() for m in MENTION.finditer(folded)] if "@" in folded else []
    said_text = text  # what the prompt is cut from
    if mentions:  # neither read nor sent, but a name in the middle is in the picture
        mentions, ats = _mention_cuts(folded, mentions)
        folded = _blanked(folded, mentions + ats)
        said_text = _blanked(text, ats)
    tokens = _scan(lx, folded)
    remove, chosen = _removable(tokens, folded)
    negated = _negated(tokens, folded, remove)
    unknown = _unknown_model(lx, tokens, folded, remove, chosen, negated)

    r = _read(lx, text, folded, tokens, chosen, negated)
    task = _task_type(images, r.cues)
    model_key, model_id, preference = _model_choice(lx, r, task)

    spans = [(start, end) for (_, start, end), gone in zip(tokens, remove, strict=True) if gone]
    if mentions:
        spans = sorted(spans + mentions)
    prompt, folded_prompt = without_greeting_folded(cut(said_text, folded, spans, lx))
    names_model = model_key is not None or bool(r.excluded) or unknown is not None
    has_parameters = (
        r.duration is not None or r.resolution is not None or r.aspect is not None or bool(r.controls)
    )
    core = core_text(folded)
    # a word that asks ("make", "生成") is sure; a model or a setting named without one only
    # lifts a description out of chat ("sora is overrated", "I asked for 1080p but got 720p"
    # are not requests): a short one still waits for a yes
    asks = asks_in_words(folded, core=core)
    evidence = asks or names_model or has_parameters
    content = core_text(folded_prompt) if prompt else ""
    scene = scene_weight(prompt or "", content=content)
    question_mark = folded.rstrip().endswith("?")  # "？" is folded to "?"
    intent = classify(
        folded,
        images=images,
        prompt=prompt,
        sets_preference=preference is not None,
        unknown_model=unknown,
        question_mark=question_mark,
        evidence=evidence,
        scene=scene,
        core=core,
        content=content,
    )
    unsure = intent == "video" and _waits_for_a_yes(
        folded,
        said_in_full,
        core,
        tokens,
        remove,
        asks=asks,
        images=images,
        scene=scene,
        question_mark=question_mark,
    )
    return Request(
        task_type=task,
        model_id=model_id,
        duration=r.duration,
        resolution=r.resolution,
        aspect_ratio=r.aspect,
        # a model named in a question ("sora怎么样") or an answer changes no preference
        preference=preference if intent in ("video", "prefer") else None,
        language=_language(folded, tokens),
        prompt=prompt if intent == "video" else None,  # a command or a chat line describes nothing
        model_key=model_key,
        intent=intent,
        unknown_model=unknown,
        choice=choice_of(core) if intent == "confirm" else None,
        topic="usage" if intent == "jobs" and command_of(core) == "usage" else None,
        wants_images=_wants_images(r.cues),
        excluded_models=_excluded_ids(lx, r.excluded, task) if r.excluded else (),
        excluded_keys=tuple(r.excluded),
        traditional=is_traditional(text),
        unsure=unsure,
        **r.controls,
    )


def _waits_for_a_yes(
    folded: str,
    said_in_full: str,
    core: str,
    tokens: list[Token],
    remove: list[bool],
    *,
    asks: bool,
    images: int,
    scene: int,
    question_mark: bool,
) -> bool:
    """Whether a video request waits for its requester's yes before anything is spent.

    Making put off, wished for or left to others ("回头再生成", "remind me to make the
    trailer") asks for nothing now, even in so many words; nor does an ask only inside quotes
    (someone else's words), nor, with a picture, talk about making ("早上拍的照片", "不要生成").
    Without a word that asks, words of talk make it wait too; a caption also waits when it is
    a question, thanks or a look ("好看吗", "look at this"). (Someone @-mentioned beside the bot
    is usually in the picture or copied in: "a puppy on the grass with @Alice" does not wait.)
    """
    later = (
        not_now(core)
        or (not asks and folded != said_in_full and asks_in_words(core_text(said_in_full)))
        or (images > 0 and talks_about_making(core, question_mark=question_mark))
    )
    sure = asks and not later
    talk = later
    if not sure and not later:
        # most descriptions have no word of talk at all: only then is the text re-cut
        said = without_picture_words(core, many=images > 1) if images else core
        talk = sounds_like_talk(said) and _talks(folded, said, tokens, remove, pictures=images)
    if images:
        return unsure_caption(core, asks=sure, question_mark=question_mark, talk=talk, later=later)
    return unsure_request(scene, evidence=sure, talk=talk)


def _talks(folded: str, core: str, tokens: list[Token], remove: list[bool], *, pictures: int = 0) -> bool:
    """Whether the words of a message (`core`: through `core_text`) are talk
    (`sounds_like_talk`), outside the phrases read as models, settings and choices ("surprise
    me", "you pick") and, when it asks for a new video by name or comes with a picture,
    outside the wanting it opens with, greetings aside ("I want a video of a …", "hey,
    我想要一个…的视频", "I want her to wave" with a photo); with a picture, outside the words
    that point at it ("these two"): see [talk] in intents.toml."""
    opening = pictures > 0 or asks_for_a_new_video(core)
    pieces: list[str] = []
    pos = 0
    for (kind, start, end), gone in zip(tokens, remove, strict=True):
        if gone and (kind != "filler" or (opening and _opens(folded, pos, start, end))):
            pieces.append(folded[pos:start])
            pos = end
    pieces.append(folded[pos:])
    said = core_text(" ".join(pieces))
    return sounds_like_talk(without_picture_words(said, many=pictures > 1) if pictures else said)


def _opens(folded: str, pos: int, start: int, end: int) -> bool:
    """Whether the filler at folded[start:end] is wanting ("I want", "我想要") with nothing but
    a greeting or polite words between `pos` and it."""
    before = core_text(folded[pos:start])
    return (not before or is_small_talk(before)) and is_opener(core_text(folded[start:end]))


def _excluded_ids(lx: Lexicon, keys: list[str], task: str) -> tuple[str, ...]:
    """The model ids of the ruled-out models for the task type (those that have one)."""
    return tuple(mid for mid in (_resolve(lx, k, task)[1] for k in keys) if mid)


def _wants_images(cues: set[str]) -> int:
    """Pictures the wording asks for: 2 for first and last frame, 1 to animate or follow one."""
    if "first_last" in cues:
        return 2
    return 1 if cues & {"first_frame", "animate", "reference"} else 0


@dataclass
class _Readings:
    """What the phrases of one message say, before the decisions."""

    cues: set[str] = field(default_factory=set)
    controls: dict[str, Any] = field(default_factory=dict)
    models: list[tuple[str, bool]] = field(default_factory=list)  # (catalog key, after a choosing word)
    excluded: list[str] = field(default_factory=list)
    tier: str | None = None
    clear: bool = False
    once: bool = False
    duration: int | None = None
    resolution: str | None = None
    aspect: str | None = None


#: token kinds that are neither read into a field nor a task cue
_NOT_CUES = frozenset({"choose", "after_model", "filler", "negate", "negative", "seed"})


def _read(
    lx: Lexicon, text: str, folded: str, tokens: list[Token], chosen: list[bool], negated: list[bool]
) -> _Readings:
    """Every token read into the fields it sets; several values for one field: the last counts."""
    r = _Readings()
    for (kind, start, end), was_chosen, ruled_out in zip(tokens, chosen, negated, strict=True):
        span = folded[start:end]
        if ruled_out:
            key = lx.model_keys.get(canonical(span)) if kind == "model" else None
            if key is not None and key not in r.excluded:
                r.excluded.append(key)
            continue  # a ruled-out ratio or resolution is simply not asked for
        reader = _READERS.get(kind)
        if reader is not None:
            reader(lx, r, text, folded, start, end, was_chosen)
        elif kind in _SWITCHES:
            name, value = _SWITCHES[kind]
            r.controls[name] = value
        elif kind not in _NOT_CUES:
            r.cues.add(kind)
    return r


def _read_model(
    lx: Lexicon, r: _Readings, text: str, folded: str, start: int, end: int, chosen: bool
) -> None:
    key = lx.model_keys.get(canonical(folded[start:end]))
    if key is not None:
        r.models.append((key, chosen))


def _read_once(lx: Lexicon, r: _Readings, text: str, folded: str, start: int, end: int, chosen: bool) -> None:
    r.once = True


def _read_clear(
    lx: Lexicon, r: _Readings, text: str, folded: str, start: int, end: int, chosen: bool
) -> None:
    r.clear = True


def _read_budget(
    lx: Lexicon, r: _Readings, text: str, folded: str, start: int, end: int, chosen: bool
) -> None:
    r.tier = "budget"


def _read_premium(
    lx: Lexicon, r: _Readings, text: str, folded: str, start: int, end: int, chosen: bool
) -> None:
    r.tier = "premium"


def _read_seed(lx: Lexicon, r: _Readings, text: str, folded: str, start: int, end: int, chosen: bool) -> None:
    r.controls["seed"] = int(_DIGITS.findall(folded[start:end])[-1])


def _read_negative(
    lx: Lexicon, r: _Readings, text: str, folded: str, start: int, end: int, chosen: bool
) -> None:
    lead = _NEGATIVE_LEAD.match(folded[start:end])
    words = text[start + (lead.end() if lead else 0) : end].strip(_CLAUSE_EDGES)
    if words:
        before = r.controls.get("negative_prompt")
        r.controls["negative_prompt"] = f"{before}, {words}" if before else words


def _read_duration(
    lx: Lexicon, r: _Readings, text: str, folded: str, start: int, end: int, chosen: bool
) -> None:
    value = _duration(lx, folded[start:end])
    if value is not None:
        r.duration = -value if _minus_before(folded, start) else value


def _read_resolution(
    lx: Lexicon, r: _Readings, text: str, folded: str, start: int, end: int, chosen: bool
) -> None:
    r.resolution = _resolution(lx, folded[start:end]) or r.resolution


def _read_aspect(
    lx: Lexicon, r: _Readings, text: str, folded: str, start: int, end: int, chosen: bool
) -> None:
    r.aspect = _aspect(lx, folded[start:end]) or r.aspect


_Reader = Callable[[Lexicon, _Readings, str, str, int, int, bool], None]
#: token kind -> what it sets
_READERS: dict[str, _Reader] = {
    "model": _read_model,
    "once": _read_once,
    "clear": _read_clear,
    "budget": _read_budget,
    "premium": _read_premium,
    "seed": _read_seed,
    "negative": _read_negative,
    "duration": _read_duration,
    "resolution": _read_resolution,
    "aspect": _read_aspect,
}


def _model_choice(lx: Lexicon, r: _Readings, task: str) -> tuple[str | None, str | None, str | None]:
    """(model_key, model_id, preference) from the models and tier words read; see the module
    docstring for the rules."""
    model_key: str | None = None
    model_id: str | None = None
    preference: str | None = None
    if r.models:
        picked = [k for k, c in r.models if c]
        model_key, model_id = _resolve(lx, picked[-1] if picked else r.models[0][0], task)
        preference = "save"
    elif r.tier is not None:
        table = lx.catalog.premium if r.tier == "premium" else lx.catalog.budget
        model_key, model_id = _resolve(lx, table[task], task)
        preference = "clear" if r.tier == "premium" else None
    if r.clear and not r.models:
        preference = "clear"
    if r.once or r.excluded:
        preference = None  # "just this once", "别用sora": used for this job, nothing saved
    return model_key, model_id, preference


def _minus_before(folded: str, start: int) -> bool:
    """A minus sign typed right before a duration ("-5秒"), not a range ("5-10秒")."""
    before = folded[:start].rstrip()
    return before.endswith(("-", "−", "负")) and not before[:-1].rstrip()[-1:].isdigit()


def _unknown_model(
    lx: Lexicon, tokens: list[Token], folded: str, remove: list[bool], chosen: list[bool], negated: list[bool]
) -> str | None:
    """The first model named that is not offered. A `strict` alias ("runway", "pika") counts
    only after a choosing word or before a model word; elsewhere it stays in the prompt."""
    found: str | None = None
    for i, (kind, start, end) in enumerate(tokens):
        if kind != "unknown_model":
            continue
        name, strict = lx.unknown_models.get(canonical(folded[start:end]), ("", True))
        if negated[i]:
            continue  # "不要用Runway": ruling out a model we do not offer asks for nothing
        nxt = tokens[i + 1] if i + 1 < len(tokens) else None
        named = nxt is not None and nxt[0] == "after_model" and _adjacent(folded, end, nxt[1])
        if name and (not strict or chosen[i] or named):
            found = found or name
            if named and nxt is not None:
                remove[i + 1] = True
        else:
            remove[i] = False
    return found
