"""Who may spend and how much: daily budgets, admins, allowlists, usage — through the real
core, the sandbox over HTTP (its ledger is the bill) and a SQLite file."""

from __future__ import annotations

import asyncio
import dataclasses
import json
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from adapters.base import FailureView, Incoming, NoticeView
from bot.budget import ALLOWED_USERS
from bot.core import BotCore
from bot.ima.errors import Timeout
from bot.sandbox import Sandbox
from tests.conftest import RecordingConversation, close_core, console_session, make_settings, open_core
from tests.waiting import wait_until


def say(
    text: str, *, user: str = "u1", chat: str = "chat", platform: str = "console", roles: tuple[str, ...] = ()
) -> Incoming:
    return Incoming(platform=platform, chat_id=chat, user_id=user, text=text, roles=roles)


async def run(core: BotCore, text: str, **kw: object) -> RecordingConversation:
    conv = RecordingConversation()
    job = await core.handle(say(text, **kw), conv)  # type: ignore[arg-type]
    if job is not None:
        await asyncio.wait_for(job.wait(), 60)
    return conv


@pytest.fixture
async def budget_core(sandbox: Sandbox, tmp_path: Path) -> AsyncIterator[BotCore]:
    core = await open_core(
        make_settings(
            sandbox,
            tmp_path / "b.sqlite3",
            bot_user_daily_credits=30,
            bot_chat_daily_credits=60,
            bot_max_jobs_per_user=100,
            bot_admins=["console:boss"],
        )
    )
    yield core
    await close_core(core)


async def test_a_job_over_the_daily_budget_is_refused_before_anything_is_sent(
    budget_core: BotCore, sandbox: Sandbox
) -> None:
    first = await run(budget_core, "a red fox in the snow")  # Wan 2.6, 25 pts
    assert first.kinds()[-1] == "video"
    second = await run(budget_core, "a blue whale at dawn")
    assert len(sandbox.ledger) == 1
    text = second.of("failure")[0].text  # type: ignore[attr-defined]
    assert "5 of 30" in text and "00:00 (UTC)" in text


async def test_failed_work_gives_its_credits_back(budget_core: BotCore, sandbox: Sandbox) -> None:
    sandbox.force_task_failure(message="render node lost")
    failed = await run(budget_core, "a red fox in the snow")
    assert failed.kinds()[-1] == "failure"
    again = await run(budget_core, "a blue whale at dawn")
    assert again.kinds()[-1] == "video" and len(sandbox.ledger) == 2


async def test_an_admin_is_never_limited(budget_core: BotCore, sandbox: Sandbox) -> None:
    for text in ("a red fox in the snow", "a blue whale at dawn", "a kite over a hill"):
        assert (await run(budget_core, text, user="boss")).kinds()[-1] == "video"
    assert len(sandbox.ledger) == 3


async def test_a_burst_from_one_person_never_overspends(budget_core: BotCore, sandbox: Sandbox) -> None:
    convs = [RecordingConversation() for _ in range(50)]
    jobs = await asyncio.gather(
        *(budget_core.handle(say(f"a red fox running number {i}"), c) for i, c in enumerate(convs))
    )
    await asyncio.wait_for(asyncio.gather(*(j.wait() for j in jobs if j is not None)), 120)
    assert sum(e.credit for e in sandbox.ledger) <= 30 and len(sandbox.ledger) == 1


async def test_a_burst_from_one_chat_never_overspends_its_budget(
    budget_core: BotCore, sandbox: Sandbox
) -> None:
    convs = [RecordingConversation() for _ in range(50)]
    jobs = await asyncio.gather(
        *(
            budget_core.handle(say(f"a red fox running number {i}", user=f"p{i}"), c)
            for i, c in enumerate(convs)
        )
    )
    await asyncio.wait_for(asyncio.gather(*(j.wait() for j in jobs if j is not None)), 120)
    assert sum(e.credit for e in sandbox.ledger) <= 60 and len(sandbox.ledger) == 2


async def test_feishu_allowed_users_limit_who_spends_and_others_are_told(
    sandbox: Sandbox, tmp_path: Path
) -> None:
    core = await open_core(make_settings(sandbox, tmp_path / "f.sqlite3", feishu_allowed_users=["ou_ok"]))
    try:
        refused = await run(core, "a red fox in the snow", platform="feishu", user="ou_other")
        assert "admin" in refused.texts()[0] and sandbox.ledger == []
        assert (await run(core, "help", platform="feishu", user="ou_other")).kinds() == ["text"]
        allowed = await run(core, "a red fox in the snow", platform="feishu", user="ou_ok")
        assert allowed.kinds()[-1] == "video" and len(sandbox.ledger) == 1
    finally:
        await close_core(core)


async def test_someone_no_longer_allowed_cannot_spend_through_a_button_or_a_yes(
    sandbox: Sandbox, tmp_path: Path
) -> None:
    core = await open_core(make_settings(sandbox, tmp_path / "f.sqlite3", feishu_allowed_users=["ou_a"]))
    try:
        conv = RecordingConversation()
        first = await core.handle(say("a red fox in the snow", platform="feishu", user="ou_a"), conv)
        assert first is not None and await first.wait() == "delivered"
        await core.budgets.set_override(ALLOWED_USERS, json.dumps(["ou_b"]))  # an admin's "disallow"
        again = RecordingConversation()
        assert await core.rerun(first.job_id, user_id="ou_a", model_id=None, conversation=again) is None
        assert "admin" in again.texts()[0] and len(sandbox.ledger) == 1
    finally:
        await close_core(core)


async def test_a_yes_to_a_price_question_needs_the_role_that_may_spend(
    sandbox: Sandbox, tmp_path: Path
) -> None:
    core = await open_core(
        make_settings(
            sandbox, tmp_path / "d.sqlite3", discord_allowed_roles=["Creators"], bot_confirm_above_credits=1
        )
    )
    try:
        asked = await run(core, "a red fox in the snow", platform="discord", roles=("Creators",))
        notice = asked.of("notice")[0]
        assert isinstance(notice, NoticeView) and notice.confirm_label
        refused = RecordingConversation()
        assert (
            await core.confirm(notice.job_id, user_id="u1", conversation=refused, roles=("Guests",)) is None
        )
        assert sandbox.ledger == []
        started = await core.confirm(
            notice.job_id, user_id="u1", conversation=RecordingConversation(), roles=("Creators",)
        )
        assert started is not None and await started.wait() == "delivered" and len(sandbox.ledger) == 1
    finally:
        await close_core(core)


async def test_discord_allowed_roles_match_by_id_or_name(sandbox: Sandbox, tmp_path: Path) -> None:
    core = await open_core(
        make_settings(sandbox, tmp_path / "d.sqlite3", discord_allowed_roles=["Creators", "42"])
    )
    try:
        assert (await run(core, "a red fox", platform="discord", roles=("7", "Guests"))).kinds() == ["text"]
        assert (await run(core, "a red fox", platform="discord", user="u2", roles=("42", "Mods"))).kinds()[
            -1
        ] == "video"
        assert (await run(core, "a red fox", platform="discord", user="u3", roles=("9", "creators"))).kinds()[
            -1
        ] == "video"
        assert len(sandbox.ledger) == 2
    finally:
        await close_core(core)


async def test_usage_shows_today_this_month_and_what_is_left(budget_core: BotCore) -> None:
    await run(budget_core, "a red fox in the snow")
    text = (await run(budget_core, "my usage")).texts()[0]
    assert "25 pts on 1 video(s) today" in text and "5 of 30" in text


async def test_admin_usage_lists_people_and_chats(budget_core: BotCore) -> None:
    await run(budget_core, "a red fox in the snow", user="ann")
    text = (await run(budget_core, "admin usage", user="boss")).texts()[0]
    assert "ann: 25 pts" in text and "chat chat: 25 pts" in text


async def test_only_admins_change_budgets_and_a_change_takes_effect(
    budget_core: BotCore, sandbox: Sandbox
) -> None:
    assert "Only the bot's admins" in (await run(budget_core, "admin budget user 500")).texts()[0]
    assert "500" in (await run(budget_core, "admin budget user 500", user="boss")).texts()[0]
    await run(budget_core, "a red fox in the snow")
    assert (await run(budget_core, "a blue whale at dawn")).kinds()[-1] == "video"
    assert len(sandbox.ledger) == 2


async def test_an_admin_command_not_addressed_to_the_bot_is_neither_run_nor_answered(
    budget_core: BotCore,
) -> None:
    conv = RecordingConversation()
    unaddressed = dataclasses.replace(say("admin budget user 500", user="boss"), mentioned=False)
    assert await budget_core.handle(unaddressed, conv) is None
    assert conv.events == []
    assert (await budget_core.budgets.limits())[0] != 500


async def test_an_admin_can_let_a_person_spend(sandbox: Sandbox, tmp_path: Path) -> None:
    core = await open_core(
        make_settings(
            sandbox, tmp_path / "a.sqlite3", feishu_allowed_users=["ou_ok"], bot_admins=["feishu:ou_boss"]
        )
    )
    try:
        await run(core, "admin allow user ou_new", platform="feishu", user="ou_boss")
        assert (await run(core, "a red fox", platform="feishu", user="ou_new")).kinds()[-1] == "video"
    finally:
        await close_core(core)


async def test_a_stopped_running_job_still_counts_because_it_may_be_charged(
    budget_core: BotCore, sandbox: Sandbox
) -> None:
    sandbox.force_task_never_finishes()
    job = await budget_core.handle(say("a lighthouse in a storm"), RecordingConversation())
    assert job is not None
    await wait_until(lambda: bool(sandbox.ledger), "the task to be created")
    await run(budget_core, "cancel")
    assert await job.wait() == "cancelled"
    assert await budget_core.store.usage("console", 0, user_id="u1") == [("", 25, 1)]


async def test_a_timed_out_job_still_counts_because_its_task_may_be_charged(
    sandbox: Sandbox, tmp_path: Path
) -> None:
    core = await open_core(
        make_settings(sandbox, tmp_path / "t.sqlite3", bot_user_daily_credits=30, ima_job_timeout_s=150)
    )
    try:
        sandbox.force_task_never_finishes()
        conv = await run(core, "a lighthouse in a storm")
        failure = conv.of("failure")[0]
        assert isinstance(failure, FailureView) and failure.kind == "render_timeout"
        assert "may still finish and be charged" in failure.text
        assert await core.store.usage("console", 0, user_id="u1") == [("", 25, 1)]
        refused = await run(core, "a red fox in the snow")  # 25 + 25 would pass the 30 a day
        assert refused.of("failure")[0].kind == "over_budget"  # type: ignore[attr-defined]
        assert len(sandbox.ledger) == 1
    finally:
        await close_core(core)


async def test_a_timeout_before_any_task_was_made_gives_the_credits_back(
    sandbox: Sandbox, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    core = await open_core(make_settings(sandbox, tmp_path / "t.sqlite3", bot_user_daily_credits=30))
    try:

        async def slow(*args: object, **kwargs: object) -> None:
            raise Timeout("the product list did not answer")

        monkeypatch.setattr(core.client, "find_product", slow)  # as the 6010 recovery prices again
        for _ in range(4):
            sandbox.force_create_error(code=6010, message="Attribute ID does not match the calculated rule")
        failed = await run(core, "a lighthouse in a storm")
        assert failed.of("failure") and sandbox.ledger == []
        assert all(credits == 0 for _, credits, _ in await core.store.usage("console", 0, user_id="u1"))
    finally:
        await close_core(core)


def test_a_console_session_over_budget_creates_one_task_and_says_why(tmp_path: Path) -> None:
    done, created = console_session(
        tmp_path, "a red fox in the snow\na blue whale at dawn\nusage\n", BOT_USER_DAILY_CREDITS="40"
    )
    assert done.returncode == 0, done.stderr
    assert len(created) == 1
    assert "15 of 40" in done.stdout and "resets" in done.stdout
