"""Only a real request may spend: chatter is chat, a few bare words wait for a yes, and a
description or an explicit ask starts at once."""

from __future__ import annotations

import re

import pytest

from adapters.base import Incoming, NoticeView
from bot.core import BotCore
from bot.sandbox import Sandbox
from bot.store.model import WAITING
from bot.understand import parse
from tests.conftest import RecordingConversation

CHATTER = [
    # thanks, apologies, waiting, understanding, goodbyes
    "thanks a lot!",
    "thank u",
    "thank you so much",
    "sorry",
    "my bad",
    "wait",
    "hold on",
    "got it",
    "i see",
    "no problem",
    "nice to meet you",
    "see you tomorrow",
    "hahaha",
    "谢谢你",
    "谢了",
    "不好意思",
    "抱歉",
    "辛苦了",
    "等一下",
    "稍等",
    "知道了",
    "好的收到",
    "明天见",
    "没关系",
    "謝了",
    "沒關係",
    "掰掰",
    # complaints and account talk, which describe no picture
    "it failed",
    "too expensive",
    "my credits",
    "I need help",
    "失败了",
    "太贵了",
    "积分",
    "余额",
    "失敗了",
    "積分",
    # everyday Chinese: talk about the day, the result, the price (做 / 拍 / 画 inside 做饭, 画面)
    "我今天很忙",
    "刚才那个失败了",
    "这个真的太贵了",
    "今天天气不错",
    "做完了吗",
    "这个画质太差了",
    "你做得很好",
    "剛才那個失敗了",
    "畫面很好看",
    "這個畫質太差了",
    "可以做视频吗",
    # a link alone, odd lines a terminal may pipe
    "https://example.com",
    "example.com",
    "www.example.org/page",
    "quit",
    "exit",
    "EOF",
    "# comment",
    "/start",
    "/foo",
    "null",
    "true",
]


@pytest.mark.parametrize("line", CHATTER)
def test_chatter_is_chat(line: str) -> None:
    assert parse(line).intent != "video", parse(line)


@pytest.mark.parametrize(
    "line",
    [
        "that video was bad",
        "the dog video was cute",
        "视频很好看",
        "這個影片不錯",
        "https://www.bilibili.com/video/BV1xx411c7mD",
        "www.douyin.com/video/123",
        "generate",
        "生成视频",
        "send me the link",
        "makes sense",
    ],
)
def test_talk_about_videos_never_starts_one_at_once(line: str) -> None:
    request = parse(line)
    assert request.intent != "video" or request.unsure, request


@pytest.mark.parametrize(
    "line",
    [
        # a refusal
        "don't make a video of a cat",
        "please don't generate a video of my dog",
        "不要生成小狗的视频",
        "别再帮我做一个视频了",
        "不用拍一段海边的视频",
        # a report of something made
        "我昨天用可灵生成了一段小狗的视频",
        "I made a video of my dog yesterday",
        "we already generated a clip of the beach with kling",
        "I've made a video of my dog",
        "我昨天用可灵做了个小狗的视频",
        "I don't want a video of a cat",
        "don't bother making a video of a cat",
        "不要做视频,小猫在睡觉",
        "please no video of a cat dancing",
        # a question about the making itself
        "用可灵生成视频要多久?",
        "how long does kling take to make a video?",
        "how much does it cost to generate a 10 second video?",
        "生成一个4K的视频多少积分",
    ],
)
def test_refusing_reporting_or_asking_about_the_making_is_chat(line: str) -> None:
    assert parse(line).intent == "chat", parse(line)


@pytest.mark.parametrize(
    ("line", "prompt"),
    [
        ("生成一段海浪视频,不要生成文字", "海浪,不要文字"),
        ("不要用可灵生成海浪视频", "海浪"),
        ("a castle made of ice, make a video", "a castle made of ice"),
        ("make a video on how to tie a tie", "on how to tie a tie"),
        ("能帮我生成一个小猫的视频吗?", "小猫"),
        ("可以生成一只猫在月球上跳舞的视频吗", "一只猫在月球上跳舞"),
    ],
)
def test_a_request_next_to_a_refusal_or_in_question_form_is_still_a_request(line: str, prompt: str) -> None:
    request = parse(line)
    assert request.intent == "video" and request.prompt == prompt, request


@pytest.mark.parametrize(
    "line",
    [
        # the words of a refusal, a report or a question, inside a scene
        "generate a video of a kid asking how much is it",
        "we made it to the summit, climbers celebrating, 1080p",
        "a street vendor shouting how much is it",
        "a kid wondering how long it takes for a seed to grow",
        "a sculpture she made of clay comes alive",
        "a chef who has made pasta for 40 years cooks",
        "a world where robots have made humans obsolete",
        "never make eye contact: a shy boy on a bus",
        "a clock that never stops",
        "stop-motion of a cat",
        "一只做过手术的小猫在康复",
        "宇航员拍过的地球",
        "画里的人物动起来了",
        "一个女孩画了一幅画",
        "小女孩数着还有多长时间到新年",
        "奶奶在学如何使用智能手机",
        "花瓣飘落了一地",
        "make a video of my boss",
        "生成老板的视频",
        "一群羊在草原上",
        "视频中一只猫在跳舞，10秒",
        "in this video, a man walks through a foggy forest",
        "小猫自己拍照",
        "stop making sense: a surreal dream of melting clocks",
    ],
)
def test_a_scene_that_only_uses_those_words_is_still_a_request(line: str) -> None:
    assert parse(line).intent == "video", parse(line)


@pytest.mark.parametrize(
    ("line", "prompt"),
    [
        ("一个能画一幅画的机器人在工作室", "一个能画一幅画的机器人在工作室"),
        ("能量饮料广告, 10秒", "能量饮料广告"),
    ],
)
def test_can_inside_a_description_stays_in_its_prompt(line: str, prompt: str) -> None:
    assert parse(line).prompt == prompt


async def test_dont_make_a_video_gets_words_and_spends_nothing(core: BotCore, sandbox: Sandbox) -> None:
    conv = RecordingConversation()
    assert await core.handle(Incoming("console", "c", "u", "不要生成小狗的视频"), conv) is None
    assert conv.kinds() == ["text"] and sandbox.ledger == []


def _commands_the_help_names() -> list[tuple[str, str]]:
    """Every phrase the help text tells people to say besides describing a video."""
    from bot import i18n

    found: list[tuple[str, str]] = []
    for lang in i18n.LANGUAGES:
        also = i18n.t("help.body", lang).rsplit("\n", 1)[-1]
        found += [
            (lang, phrase)
            for phrase in re.findall(r'"([^"]+)"|「([^」]+)」', also)
            for phrase in phrase
            if phrase
        ]
    return found


@pytest.mark.parametrize(("lang", "phrase"), _commands_the_help_names())
def test_every_command_the_help_names_spends_nothing(lang: str, phrase: str) -> None:
    assert parse(phrase).intent != "video", (lang, parse(phrase))


@pytest.mark.parametrize("line", ["forget my model", "clear my saved model", "忘掉我的模型", "清除我的模型"])
def test_forgetting_the_model_is_a_preference_command(line: str) -> None:
    request = parse(line)
    assert request.intent == "prefer" and request.preference == "clear", request


@pytest.mark.parametrize("line", ["a cat", "sunset", "I'm hungry", "一只猫", "城市夜景"])
def test_a_few_bare_words_are_a_request_that_waits_for_a_yes(line: str) -> None:
    request = parse(line)
    assert request.intent == "video" and request.unsure


@pytest.mark.parametrize(
    "line",
    [
        "a puppy running on grass",
        "小狗在草地上奔跑",
        "一只猫在月球上跳舞",
        "做一个小狗奔跑的视频",
        "拍一段海边日落",
        "make a cat",
        "生成一只猫",
        "use Kling: a dancer spinning on a stage, 1080p",
        "用可灵 一只猫在月球上跳舞, 10秒",
        "anything but kling: a red fox in the snow",
    ],
)
def test_a_description_or_an_explicit_ask_starts_at_once(line: str) -> None:
    request = parse(line)
    assert request.intent == "video" and not request.unsure


@pytest.mark.parametrize(
    "line",
    [
        "cat, 10 seconds",
        "a cat with sound",
        "可灵 一只猫",
        "anything but kling: a cat",
        "sora is overrated imo",
    ],
)
def test_a_model_or_a_setting_with_a_few_words_asks_first(line: str) -> None:
    # a model or a setting is no ask: "sora is overrated", "running 5 min late" are not requests
    request = parse(line)
    assert request.intent == "video" and request.unsure, request


@pytest.mark.parametrize(
    "line",
    [
        "太慢了吧，等了五分钟还没出来",
        "how about a video call tomorrow at 3",
        "could I get a video call with the team at 4",
        "海螺2.3比2.0好多了",
        "I asked for 1080p but got 720p",
        "可灵是不是挂了",
        "下次可以试试海螺",
        "no more videos please, we're over budget",
    ],
)
def test_chat_that_names_a_model_or_a_setting_spends_nothing_at_once(line: str) -> None:
    request = parse(line)
    assert request.intent != "video" or request.unsure, request


@pytest.mark.parametrize(
    "line",
    [
        "the hands look weird again lol",
        "bro the physics are completely off, the water flows upward",
        "I told my wife she was drawing her eyebrows too high",
        "the standup is moved to 10:30 tomorrow",
        "it would be funny if someone made a cat dancing on the moon",
        "我觉得可以用可灵，但我要先问下老板",
        "客户说要改成竖屏的，我跟他们再确认下",
        "周末去海边拍照了",
        "那个宇航员骑马的好经典",
        "明天早上9点出发，别迟到",
        "這隻狗狗好可愛喔～",
        "imagine a cat piloting a plane",
        "想象一下一只猫开飞机",
    ],
)
def test_a_description_in_words_of_talk_waits_for_a_yes(line: str) -> None:
    # people talking to each other depict things too; asking first costs a reply, not credits
    request = parse(line)
    assert request.intent != "video" or request.unsure, request


@pytest.mark.parametrize(
    "line",
    [
        "我想要一个猫咪在键盘上睡觉的视频",
        "给我整一个猫咪开车的搞笑视频",
        "I'd like a video of a panda eating bamboo in the snow",
        "I need a video of a sunrise over the pyramids for a presentation",
        "show me a video of a city at night from above",
        "give me a 16:9 video of northern lights over a frozen lake",
        "surprise me: a city in the clouds",
        "you pick, a city in the clouds",
        "a robot that dances in the rain",
        "a girl brushing her hair by the window",
        "hey, I want a video of a cat dancing on the moon",
        "hi bot, 我想要一个猫咪在月球上跳舞的视频",
        "给我来个宇航员在月球上打篮球的视频",
        "give me a video of a spaceship landing in a desert",
        "I want a video of waves crashing on rocks",
    ],
)
def test_asking_for_a_video_in_words_of_talk_starts_at_once(line: str) -> None:
    request = parse(line)
    assert request.intent == "video" and not request.unsure, request


@pytest.mark.parametrize(
    "line",
    ["我想要一只猫在月球上跳舞", "Hey, I want a cat dancing on the moon", "I want a new phone"],
)
def test_wanting_something_without_saying_video_asks_first(line: str) -> None:
    # "I want a new phone" and "I want a cat on the moon" read alike: only a yes tells them apart
    request = parse(line)
    assert request.intent == "video" and request.unsure, request


@pytest.mark.parametrize(
    "line",
    [
        "I need a clip for my hair",
        "hello, I need a ride to the airport",
        "hey, I'd like a coffee with milk",
        "别把这个做成视频",
        "要不要把这个做成视频",
        "他想把这个做成视频",
        "我要个原视频",
        "我需要一个无水印的视频",
        "我想要一个完整版的视频",
        "我需要一个会议的录屏视频",
        "我要一段监控视频",
        "我想看个搞笑视频",
        "I need a video of yesterday's call",
        "send me a video of the result",
        "I would like a video of the last job",
        "give me a video of the whole thing please",
        "I'd love a video call with the team on friday",
        "I'd love to get the video in higher quality",
        "I would love the video of a cat playing piano",
        "I want to download the video of the dog on the beach",
        "我想要下载一个小狗在沙滩上奔跑的视频",
        "我想要一个小狗视频的下载链接",
        "I need some animations finished before the launch",
        "给我发一个小狗在沙滩上跑的视频",
        "帮我找一部小狗在沙滩上奔跑的动画片",
        "帮我删掉猫咪在月球上跳舞的视频",
        "我想要一个高清无水印的猫咪跳舞的视频",
        "我想看小狗在沙滩上奔跑的视频",
        "downloading a clip of the sunset over the sea",
        "我要删掉一个小狗在沙滩上奔跑的视频",
        "I want to send a video of waves crashing on rocks",
        "pls forward a clip of a dog surfing",
        "I want some vids of the party uploaded",
        "I need a video of the product demo uploaded before the deadline",
        "I need a clip of the wedding speech cut down to one minute",
        "ok so I want my hair cut short tomorrow",
        "给我来个笑话",
        "我要删掉那个视频",
        "帮我调整一个参数",
        "我要一个视频的下载链接",
        "我要高清版的视频",
        "这个可以做成视频吗",
        "今晚整一个火锅",
        "show me the latest video",
        "can you send me the video you just made",
        "we need more videos like this for the campaign",
        "give me the video file please",
    ],
)
def test_wanting_something_else_than_a_video_starts_nothing_at_once(line: str) -> None:
    request = parse(line)
    assert request.intent != "video" or request.unsure, request


async def test_talk_to_the_bot_about_a_result_asks_before_it_spends(core: BotCore, sandbox: Sandbox) -> None:
    conv = RecordingConversation()
    asked = await core.handle(Incoming("console", "c", "u", "lmao the cat looks drunk in that one"), conv)
    assert asked is not None and await asked.wait() == "awaiting_confirm"
    assert sandbox.ledger == []


def test_a_bare_picture_is_a_request_that_starts_at_once() -> None:
    assert not parse("", images=1).unsure


async def test_a_few_words_spend_nothing_until_the_requester_says_yes(
    core: BotCore, sandbox: Sandbox
) -> None:
    conv = RecordingConversation()
    asked = await core.handle(Incoming("console", "c", "u", "a cat"), conv)
    assert asked is not None and await asked.wait() == "awaiting_confirm"
    question = conv.of("notice")[0]
    assert isinstance(question, NoticeView) and question.confirm_label and question.decline_label
    assert sandbox.ledger == []
    started = await core.handle(Incoming("console", "c", "u", "yes"), RecordingConversation())
    assert started is not None and await started.wait() == "delivered"
    assert len(sandbox.ledger) == 1


@pytest.mark.parametrize(
    "line", ["sorry", "谢谢你", "https://example.com", "这个真的太贵了", "剛才那個失敗了"]
)
async def test_chatter_to_the_bot_gets_words_and_spends_nothing(
    core: BotCore, sandbox: Sandbox, line: str
) -> None:
    conv = RecordingConversation()
    assert await core.handle(Incoming("console", "c", "u", line), conv) is None
    assert conv.kinds() == ["text"]
    assert sandbox.ledger == []


@pytest.mark.parametrize(
    "caption",
    [
        "here's the error screenshot, what does it mean?",
        "look what I made yesterday 😍",
        "my cat btw",
        "lol my cat",
        "thanks!",
        "here you go",
        "好看吗",
        "报错截图，这是什么意思",
        "这是我昨天做的，你们看看",
        "這是我家的貓",
        "look at this",
        "看看这张",
        "报错了，截图如下",
        "this is the frame where it glitched",
        "这个截图是刚才生成的效果，你们觉得怎么样",
        "生成失败，提示余额不足？",
    ],
)
def test_a_picture_with_words_that_ask_for_nothing_waits_for_a_yes(caption: str) -> None:
    request = parse(caption, images=1)
    assert request.intent != "video" or request.unsure, request


@pytest.mark.parametrize(
    "caption",
    [
        "",
        "make her smile and wave",
        "animate this, make the clouds move",
        "the girl turns her head and smiles",
        "zoom in slowly",
        "I want her to wave",
        "把这张图动起来",
        "让图里的人笑一下再眨眨眼",
        "镜头慢慢推近",
        "我想要她笑着挥手",
        "have him turn and wave at the camera",
        "do a slow zoom on this one",
        "have her look at the camera and smile",
    ],
)
def test_a_picture_with_words_that_ask_or_describe_starts_at_once(caption: str) -> None:
    request = parse(caption, images=1)
    assert request.intent == "video" and not request.unsure, request


async def test_a_screenshot_with_a_question_is_asked_about_not_animated(
    core: BotCore, sandbox: Sandbox
) -> None:
    from tests.test_intents import pictures

    conv = RecordingConversation()
    asked = Incoming(
        "console", "c", "u", "here's the error screenshot, what does it mean?", images=pictures(1)
    )
    waiting = await core.handle(asked, conv)
    assert waiting is not None and await waiting.wait() == WAITING
    [notice] = conv.of("notice")
    assert isinstance(notice, NoticeView) and notice.confirm_label is not None
    assert sandbox.ledger == []  # nothing created, nothing spent


@pytest.mark.parametrize(
    "line",
    [
        "回头再生成",
        "下次做个生日视频给我妈",
        "先不生成了，晚点再弄",
        "改天给你们做个搞笑的",
        "假如能生成两分钟的MV就好了",
        "remind me to make the trailer after the meeting",
        "let me write the script first, then I'll generate",
        "we should make a video for mom's birthday at some point",
        "my kid keeps asking me to make videos of dinosaurs",
        "I'll make a video of the launch later",
        "next time: a cat dancing on the moon with fireworks over the sea",
    ],
)
def test_making_put_off_wished_for_or_asked_of_someone_else_waits_for_a_yes(line: str) -> None:
    request = parse(line)
    assert request.intent != "video" or request.unsure, request


@pytest.mark.parametrize(
    "line",
    [
        "生成一个女孩回头微笑的视频",
        "生成一个如果恐龙没有灭绝的视频，现代城市里",
        "make a video of a flower growing over one day",
        "make a video: a seed sprouts, later on it blooms",
        "make a video of the weather forecast for tomorrow",
        "生成一段视频，先不要声音，小猫在雨里奔跑",
    ],
)
def test_a_request_whose_scene_uses_those_words_starts_at_once(line: str) -> None:
    request = parse(line)
    assert request.intent == "video" and not request.unsure, request


@pytest.mark.parametrize(
    "line",
    [
        "the lighting in that one is gorgeous",
        "meh, kinda blurry",
        "the watermark is huge",
        "this one came out great",
        "that one turned out pixelated",
        "gn guys",
        "let's sync after lunch",
        "有点恐怖谷的感觉",
        "等了半小时还没出来",
        "卡顿很严重",
        "素材都传到群文件了",
    ],
)
def test_feedback_and_talk_to_the_group_wait_for_a_yes(line: str) -> None:
    # in a direct message every line reaches the bot, replies about its last video included
    request = parse(line)
    assert request.intent != "video" or request.unsure, request


@pytest.mark.parametrize(
    "line",
    [
        "a still lake at dawn with mist rising over the pine trees",
        "一个好看的女孩在海边奔跑，高质量，背景模糊",
        "a girl looks at the camera and smiles, soft blurry background, golden hour",
    ],
)
def test_a_description_with_words_feedback_also_uses_starts_at_once(line: str) -> None:
    request = parse(line)
    assert request.intent == "video" and not request.unsure, request


@pytest.mark.parametrize(
    ("line", "prompt"),
    [
        (
            "would you mind generating a clip of autumn leaves falling in a park",
            "autumn leaves falling in a park",
        ),
        ("would it be possible to get a clip of a wolf howling at the moon", "a wolf howling at the moon"),
        ("hey, mind making me a video of a penguin waddling on ice? thanks!", "a penguin waddling on ice"),
    ],
)
def test_a_request_asked_politely_starts_at_once(line: str, prompt: str) -> None:
    request = parse(line)
    assert (request.intent, request.unsure, request.prompt) == ("video", False, prompt)


@pytest.mark.parametrize(
    "line",
    [
        "never mind making a video of a cat",
        "would you mind making a video call later?",
        "I don't mind making a video of a cat myself",
    ],
)
def test_minding_that_asks_for_nothing_spends_nothing(line: str) -> None:
    request = parse(line)
    assert request.intent != "video" or request.unsure, request


@pytest.mark.parametrize(
    ("line", "prompt"),
    [
        ("@视频助手 生成：海边日落，一对情侣在散步", "海边日落，一对情侣在散步"),
        ("@视频助手，生成海边日落，一对情侣在散步", "海边日落，一对情侣在散步"),
        ("make a video: email bob@example.com in neon letters", "email bob@example.com in neon letters"),
    ],
)
def test_a_typed_mention_is_neither_read_nor_sent_but_an_address_is(line: str, prompt: str) -> None:
    request = parse(line)
    assert (request.intent, request.unsure, request.prompt) == ("video", False, prompt)


def test_two_pictures_pointed_at_as_frames_start_at_once() -> None:
    request = parse("use these two as start and end frames", images=2)
    assert request.intent == "video" and not request.unsure, request


@pytest.mark.parametrize(
    "line",
    [
        "她刚刚做了一个下雪的城市夜景",
        "他昨天生成了一条 cyberpunk 城市的",
        "jake made a video of a horse running on the beach earlier",
        "测试一下，别真的生成：一只狗在草地上奔跑",
        "海浪、沙滩、日落，这是我们公司年会的主题，不是让你生成啊",
        "可以上传图片让它动起来吗？",
        "I'll make one after lunch",
        "如果能直接生成带配音的就完美了",
        "真希望它能做出宫崎骏那种感觉",
        "回头我把图发给你让它动起来",
        "她原話是「幫我生成一隻貓在跳舞」",
        "人物的手又变形了",
        "the face morphs halfway through",
    ],
)
def test_reports_refusals_wishes_and_feedback_spend_nothing_at_once(line: str) -> None:
    request = parse(line)
    assert request.intent != "video" or request.unsure, request


@pytest.mark.parametrize(
    "line",
    [
        "一个女孩在海边拍了一张自拍",
        "a toddler who made a mess in the kitchen, slow motion",
        "不要生成的太暗，一只猫在夜里",
        'make a video of a neon sign that says "hello"',
    ],
)
def test_scenes_near_those_words_are_still_requests(line: str) -> None:
    request = parse(line)
    assert request.intent == "video" and not request.unsure, request


@pytest.mark.parametrize(
    "line",
    [
        "is it possible to get a video longer than 10 seconds?",
        "is it possible to get a video without a watermark?",
        "would it be possible to see a sample video first?",
        "is it possible to get a video of the meeting?",
    ],
)
def test_asking_what_the_bot_can_do_is_no_request(line: str) -> None:
    request = parse(line)
    assert request.intent != "video" or request.unsure, request


@pytest.mark.parametrize(
    ("line", "images", "prompt"),
    [
        ("刚刚拍的，让猫咪眨眼", 1, "刚刚拍的，让猫咪眨眼"),
        ("早上拍的日出，镜头慢慢拉远", 1, "早上拍的日出，镜头慢慢拉远"),
        ("让我的猫跳舞", 1, "让我的猫跳舞"),
        ("把我变成超人", 1, "把我变成超人"),
        ("让猫咪左右看看", 1, "让猫咪左右看看"),
        ("下雪的夜晚，路灯下的小猫", 0, "下雪的夜晚，路灯下的小猫"),
        ("生成一段傍晚点燃篝火的视频", 0, "傍晚点燃篝火"),
        ("生成：招待会上大家举杯庆祝", 0, "招待会上大家举杯庆祝"),
        ("一个机器人在制作失败的蛋糕前哭泣", 0, None),
        ("生成失败了，再试一次：海边日落", 0, None),
        ("跟之前生成的那个差不多，换成小狗", 0, None),
        ("老板让我做个产品宣传片，帮我生成一个咖啡杯旋转的视频", 0, None),
        ("a flower blooming then wilting days later, make a video", 0, None),
        ("生成一个视频：@张三 和 @李四 在海边跳舞", 0, "张三 和 李四 在海边跳舞"),
        ("make a sneaker ad in @nike style, slow motion", 0, "a sneaker ad in nike style, slow motion"),
    ],
)
def test_requests_near_the_words_of_talk_start_at_once_with_their_words(
    line: str, images: int, prompt: str | None
) -> None:
    request = parse(line, images=images)
    assert request.intent == "video" and not request.unsure, request
    assert prompt is None or request.prompt == prompt


def test_a_picture_with_talk_about_its_making_asks_first_not_chat() -> None:
    request = parse("the poster I made last week, zoom in slowly", images=1)
    assert request.intent == "video" and request.unsure


@pytest.mark.parametrize(
    ("line", "images"),
    [
        ("先别生成，让我想想", 1),
        ("把这张先存着，先别生成", 1),
        ("让我看看", 1),
        ("让大家看看我家猫", 1),
        ("that one is better", 1),
        ("等会儿我来生成一个猫的视频", 0),
        ("下次记得生成一个猫的视频", 0),
        ("晚上再生成一个", 0),
        ("make the trailer later", 0),
        ("remind me tomorrow to make a cat video", 0),
        ("我做了一个梦，梦见一只鲸鱼在天上飞", 0),
    ],
)
def test_captions_and_lines_that_put_it_off_or_only_look_wait_for_a_yes(line: str, images: int) -> None:
    request = parse(line, images=images)
    assert request.intent != "video" or request.unsure, request


@pytest.mark.parametrize(
    ("line", "images"),
    [
        ("this one first, then that one", 2),
        ("have it rain", 1),
        ("我想让她笑", 1),
        ("给我动一下", 1),
        ("他做了一个后空翻，慢动作", 0),
        ("a chef made a cake and ate one, cinematic slow motion", 0),
        ("生成失败了，换可灵试试：海边日落", 0),
        ("生成一个晚上做饭的视频", 0),
        ("generate a video of the sunrise tomorrow", 0),
        ("would you mind making a video of my dog running on the beach", 0),
        ("would you mind making a 10 second video of a cat", 0),
    ],
)
def test_requests_that_look_like_those_start_at_once(line: str, images: int) -> None:
    request = parse(line, images=images)
    assert request.intent == "video" and not request.unsure, request


@pytest.mark.parametrize(
    ("line", "prompt"),
    [
        ("make a birthday video for @Sarah", "a birthday for Sarah"),
        ("@张三 @李四 在海边跳舞，生成视频", "张三 李四 在海边跳舞"),
    ],
)
def test_people_at_mentioned_stay_in_the_prompt_by_name(line: str, prompt: str) -> None:
    assert parse(line).prompt == prompt


@pytest.mark.parametrize(
    ("line", "images"),
    [
        ("There are two dogs playing in the snow, generate a video", 0),
        ("a small boat on choppy waves during a storm", 0),
        ("a kinda creepy doll sitting in an abandoned house", 0),
        ("let's see a cat surfing a huge wave at sunset", 0),
        ("清晨太阳还没出来，薄雾笼罩着湖面", 0),
        ("the girl turns to look at that bird", 1),
    ],
)
def test_scenes_in_words_that_chat_also_uses_start_at_once(line: str, images: int) -> None:
    request = parse(line, images=images)
    assert request.intent == "video" and not request.unsure, request


@pytest.mark.parametrize(
    ("line", "images"),
    [
        ("bring this photo to life, the leaves should rustle", 1),
        ("would love a video of a sunrise over the Grand Canyon if possible", 0),
        ("could you do one with a bunny hopping through a garden? thanks!", 0),
    ],
)
def test_requests_put_gently_start_at_once(line: str, images: int) -> None:
    request = parse(line, images=images)
    assert request.intent == "video" and not request.unsure, request


@pytest.mark.parametrize(
    "line",
    [
        "晚点我再来生成",
        "明天我想试试做个生日视频",
        "周末打算给我女儿做一个卡通视频",
        "下次试试做一个赛博朋克的",
        "gonna make something for my mom's birthday next week",
        "我等等再 generate，先去吃飯",
        "I'd love a video call with the team",
    ],
)
def test_plans_and_wishes_with_the_words_of_a_request_wait_for_a_yes(line: str) -> None:
    request = parse(line)
    assert request.intent != "video" or request.unsure, request


@pytest.mark.parametrize(
    ("line", "prompt"),
    [
        ("请问可以帮我做一个熊猫滑雪的视频吗？", "熊猫滑雪"),
        ("我需要一个视频，开头是日出，然后镜头拉远看到整个山谷", "开头是日出，然后镜头拉远看到整个山谷"),
        ("给我妈做一个母亲节的视频，一束康乃馨慢慢绽放", "给我妈母亲节，一束康乃馨慢慢绽放"),
    ],
)
def test_the_words_of_the_scene_stay_in_the_prompt(line: str, prompt: str) -> None:
    assert parse(line).prompt == prompt
