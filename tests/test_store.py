"""The store contract, run against both backends: SQLite (a real file in a temp dir) and
PostgreSQL (a fresh database in the session's throwaway cluster). Two Store objects on one
PostgreSQL database stand for two bot processes sharing it."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import pytest

from bot.store import (
    MIGRATIONS,
    Job,
    JobRequest,
    OpenQuestion,
    PreferenceChange,
    SqliteStore,
    Store,
    StoredImage,
    TooManyJobs,
    sqlite_path,
)
from bot.store.postgres import PG_MIGRATIONS


def _job(job_id: str = "j1", user: str = "u1", chat: str = "c") -> Job:
    return Job(
        id=job_id,
        platform="console",
        chat_id=chat,
        user_id=user,
        language="zh",
        task_type="text_to_video",
        prompt="小狗",
        request=JobRequest(duration=5),
    )


@pytest.fixture
async def store(db_url: str) -> AsyncIterator[Store]:
    s = await Store.open(db_url)
    yield s
    await s.close()


def _shared(db_url: str) -> bool:
    return db_url.startswith("postgresql://")


# -- opening and migrations ---------------------------------------------------------------------------
async def test_a_new_database_is_migrated_to_the_latest_schema(store: Store, db_url: str) -> None:
    assert await store.schema_version() == (len(PG_MIGRATIONS) if _shared(db_url) else len(MIGRATIONS))
    assert len(PG_MIGRATIONS) == len(MIGRATIONS)  # the two schemas move version for version
    assert store.shared is _shared(db_url)


async def test_reopening_keeps_data_and_does_not_remigrate(db_url: str) -> None:
    store = await Store.open(db_url)
    await store.add_job(_job())
    await store.close()
    store = await Store.open(db_url)
    assert (await store.get_job("j1")) is not None
    assert await store.schema_version() == len(MIGRATIONS)
    await store.close()


async def test_processes_starting_together_migrate_once(db_url: str) -> None:
    stores = await asyncio.gather(*(Store.open(db_url) for _ in range(3 if _shared(db_url) else 1)))
    assert {await s.schema_version() for s in stores} == {len(MIGRATIONS)}
    for s in stores:
        await s.close()


async def test_an_old_sqlite_file_is_migrated_forward(tmp_path: object) -> None:
    import sqlite3
    from pathlib import Path

    path = Path(str(tmp_path)) / "old.sqlite3"
    with sqlite3.connect(path) as conn:  # a file as version 3 left it
        conn.executescript(f"BEGIN; {''.join(MIGRATIONS[:3])}; PRAGMA user_version = 3; COMMIT;")
        conn.execute(
            "INSERT INTO jobs (id, platform, chat_id, user_id, language, status, task_type, prompt, request, "
            "created_at, updated_at) VALUES ('old', 'console', 'c', 'u', 'en', 'running', 'text_to_video', "
            "'p', '{}', 1, 1)"
        )
    store = await Store.open(f"sqlite:///{path}")
    assert await store.schema_version() == len(MIGRATIONS)
    assert [j.id for j in await store.claim_jobs()] == ["old"]
    await store.close()


def test_sqlite_urls_name_their_file() -> None:
    assert sqlite_path("sqlite:///data/bot.sqlite3") == "data/bot.sqlite3"
    assert sqlite_path("sqlite:////var/lib/bot.sqlite3") == "/var/lib/bot.sqlite3"
    assert sqlite_path("data/bot.sqlite3") == "data/bot.sqlite3"


# -- jobs ------------------------------------------------------------------------------------------
async def test_a_job_round_trips_with_its_json_fields(store: Store) -> None:
    job = _job()
    job.request = JobRequest(text="小狗 🐶", controls={"seed": 7})
    await store.add_job(job)
    await store.save_job(
        job,
        status="running",
        task_ids=["t1"],
        params={"duration": 10},
        credits=25,
        target_state={"card": "x"},
        started_at=1234.5678,
    )
    again = await store.get_job("j1")
    assert again is not None and again.status == "running" and again.task_ids == ["t1"]
    assert again.params == {"duration": 10} and again.request == job.request and again.credits == 25
    assert again.target_state == {"card": "x"} and again.started_at == 1234.5678
    assert again.created_at == job.created_at  # full float precision
    assert await store.get_job("nope") is None


async def test_an_unknown_field_is_an_error(store: Store) -> None:
    job = _job()
    await store.add_job(job)
    with pytest.raises(AttributeError):
        await store.save_job(job, colour="red")


async def test_unfinished_jobs_are_those_not_delivered_or_failed(store: Store) -> None:
    for i, status in enumerate(["accepted", "creating", "running", "delivering", "delivered", "failed"]):
        job = _job(f"j{i}")
        job.created_at = 1000 + i
        await store.add_job(job)
        await store.save_job(job, status=status)
    assert [j.status for j in await store.unfinished_jobs()] == [
        "accepted",
        "creating",
        "running",
        "delivering",
    ]


async def test_a_finished_job_stays_finished(store: Store) -> None:
    job = _job()
    await store.add_job(job)
    await store.save_job(job, status="delivered")
    stale = _job()  # another copy of the row, from before it finished
    await store.save_job(stale, status="running")
    assert (await store.get_job("j1")).status == "delivered"  # type: ignore[union-attr]
    await store.save_job(stale, status="failed")  # final to final is allowed
    assert (await store.get_job("j1")).status == "failed"  # type: ignore[union-attr]


async def test_recent_and_active_jobs_are_one_persons(store: Store) -> None:
    for i, (user, status) in enumerate(
        [("a", "running"), ("a", "delivered"), ("b", "running"), ("a", "awaiting_confirm")]
    ):
        job = _job(f"j{i}", user=user)
        job.created_at = 1000 + i
        await store.add_job(job)
        await store.save_job(job, status=status)
    assert [j.id for j in await store.recent_jobs("console", "a")] == ["j3", "j1", "j0"]
    assert [j.id for j in await store.recent_jobs("console", "a", limit=1)] == ["j3"]
    assert [j.id for j in await store.active_jobs("console", "a")] == ["j0", "j3"]


async def test_pictures_are_kept_with_their_job_until_dropped(store: Store) -> None:
    images = [
        StoredImage("image/png", b"\x89PNG\x00\xff"),
        StoredImage("image/jpeg", None, "https://x/y.jpg"),
    ]
    assert await store.intake("console", ["e1"], _job(), images)
    assert await store.job_images("j1") == images
    await store.drop_job_images("j1")
    assert await store.job_images("j1") == []


# -- seen events -----------------------------------------------------------------------------------
async def test_an_event_is_new_once(store: Store) -> None:
    assert await store.mark_seen("feishu", "om_1") is True
    assert await store.mark_seen("feishu", "om_1") is False
    assert await store.mark_seen("discord", "om_1") is True
    assert await store.seen_any("feishu", ["x", "om_1"]) is True
    assert await store.seen_any("feishu", ["x"]) is False
    assert await store.seen_any("feishu", []) is False


async def test_a_redelivered_message_writes_nothing(store: Store) -> None:
    assert await store.intake("feishu", ["e1", "e2"], _job("j1"), [StoredImage("image/png", b"x")])
    assert not await store.intake("feishu", ["e3", "e2"], _job("j2"), [StoredImage("image/png", b"y")])
    assert await store.get_job("j2") is None and await store.job_images("j2") == []
    assert not await store.seen_any("feishu", ["e3"])  # rolled back with the rest


async def test_seen_events_survive_a_restart(db_url: str) -> None:
    store = await Store.open(db_url)
    await store.mark_seen("feishu", "om_1")
    await store.close()
    store = await Store.open(db_url)
    assert await store.mark_seen("feishu", "om_1") is False
    await store.close()


async def test_old_seen_events_are_pruned(store: Store) -> None:
    await store.mark_seen("feishu", "om_1")
    assert await store.prune_seen(older_than_s=-1) == 1
    assert await store.mark_seen("feishu", "om_1") is True


async def test_one_event_delivered_to_several_processes_is_taken_once(db_url: str) -> None:
    stores = [await Store.open(db_url) for _ in range(3 if _shared(db_url) else 1)]
    try:
        taken = await asyncio.gather(
            *(
                s.intake("feishu", [f"ev{i}"], _job(f"j{i}-{n}"))
                for i in range(20)
                for n, s in enumerate(stores)
            )
        )
        assert sum(taken) == 20
        assert len(await stores[0].unfinished_jobs()) == 20
    finally:
        for s in stores:
            await s.close()


# -- per-person job places -------------------------------------------------------------------------
async def test_job_places_are_counted_in_the_database_when_asked(db_url: str) -> None:
    stores = [await Store.open(db_url) for _ in range(2 if _shared(db_url) else 1)]
    try:

        async def take(i: int) -> bool:
            try:
                return await stores[i % len(stores)].intake("console", [f"e{i}"], _job(f"j{i}"), max_active=3)
            except TooManyJobs:
                return False

        assert sum(await asyncio.gather(*(take(i) for i in range(10)))) == 3
        done = (await stores[0].unfinished_jobs())[0]
        await stores[0].save_job(done, status="delivered")
        assert await take(10)  # a finished job gives its place back
        # another person is not limited by the first; without max_active nothing is counted
        assert await stores[0].intake("console", ["o"], _job("other", user="u2"), max_active=3)
        assert await stores[0].intake("console", ["n"], _job("nolimit"))
    finally:
        for s in stores:
            await s.close()


# -- preferences -----------------------------------------------------------------------------------
async def test_preferences_are_per_user_and_task_type(store: Store) -> None:
    await store.set_preference("feishu", "u1", "text_to_video", "kling-o1", "kling-video-o1", "Kling O1")
    assert (await store.get_preference("feishu", "u1", "text_to_video")).model_key == "kling-o1"  # type: ignore[union-attr]
    assert await store.get_preference("feishu", "u1", "image_to_video") is None
    assert await store.get_preference("feishu", "u2", "text_to_video") is None
    await store.set_preference("feishu", "u1", "text_to_video", "wan26", "wan2.6-t2v", "Wan 2.6")
    prefs = await store.preferences("feishu", "u1")
    assert list(prefs) == ["text_to_video"] and prefs["text_to_video"].model_name == "Wan 2.6"


async def test_clearing_preferences_removes_them(store: Store) -> None:
    await store.set_preference("feishu", "u1", "text_to_video", "kling-o1", "kling-video-o1", "Kling O1")
    await store.set_preference("feishu", "u1", "image_to_video", "kling-o1", "kling-video-o1", "Kling O1")
    assert await store.clear_preference("feishu", "u1", "image_to_video") == 1
    assert await store.clear_preference("feishu", "u1", None) == 1
    assert await store.clear_preference("feishu", "u1", None) == 0
    assert await store.get_preference("feishu", "u1", "text_to_video") is None


async def test_a_preference_read_after_each_change_is_the_changed_one(store: Store) -> None:
    async def model() -> str | None:
        pref = await store.get_preference("feishu", "u1", "text_to_video")
        return pref.model_key if pref else None

    assert await model() is None
    await store.set_preference("feishu", "u1", "text_to_video", "kling-o1", "kling-video-o1", "Kling O1")
    assert await model() == "kling-o1"
    # reads racing a change: whatever they saw, the read after the change sees the change
    await asyncio.gather(
        model(),
        store.set_preference("feishu", "u1", "text_to_video", "wan26", "wan2.6-t2v", "Wan 2.6"),
        model(),
    )
    assert await model() == "wan26"
    await asyncio.gather(model(), store.clear_preference("feishu", "u1", None), model())
    assert await model() is None


async def test_a_preference_named_in_a_request_is_written_with_its_job(store: Store) -> None:
    kling = PreferenceChange("text_to_video", "kling-o1", "kling-video-o1", "Kling O1")
    assert await store.intake("console", ["e1"], _job("j1"), preference=kling)
    pref = await store.get_preference("console", "u1", "text_to_video")
    assert pref is not None and pref.model_key == "kling-o1"
    assert await store.intake("console", ["e2"], _job("j2"), preference=PreferenceChange("text_to_video"))
    assert await store.get_preference("console", "u1", "text_to_video") is None


async def test_a_redelivered_or_refused_request_changes_no_preference(store: Store) -> None:
    kling = PreferenceChange("text_to_video", "kling-o1", "kling-video-o1", "Kling O1")
    assert await store.intake("console", ["e1"], _job("j1"))
    assert not await store.intake("console", ["e1"], _job("j2"), preference=kling)
    with pytest.raises(TooManyJobs):
        await store.intake("console", ["e3"], _job("j3"), max_active=1, preference=kling)
    assert await store.get_preference("console", "u1", "text_to_video") is None


async def test_credits_booked_at_intake_are_reserved_with_the_job(store: Store) -> None:
    assert await store.intake("console", ["e1"], _job("j1"), book=12)
    assert await store.usage("console", 0, user_id="u1") == [("", 12, 1)]


async def test_a_redelivered_or_refused_request_books_no_credits(store: Store) -> None:
    assert await store.intake("console", ["e1"], _job("j1"))
    assert not await store.intake("console", ["e1"], _job("j2"), book=12)
    with pytest.raises(TooManyJobs):
        await store.intake("console", ["e3"], _job("j3"), max_active=1, book=12)
    assert await store.usage("console", 0, user_id="u1") == [("", 0, 0)]


async def test_people_without_preferences_are_answered_from_memory(tmp_path: object) -> None:
    path = f"{tmp_path}/prefs.sqlite3"
    store = await Store.open(path)
    await store.set_preference("feishu", "u1", "text_to_video", "kling-o1", "kling-video-o1", "Kling O1")
    await store.close()
    store = await Store.open(path)
    assert isinstance(store, SqliteStore)
    reads = 0
    submit = store._reads.submit

    async def counted(work: object, **kw: object) -> object:
        nonlocal reads
        reads += 1
        return await submit(work, **kw)  # type: ignore[arg-type]

    store._reads.submit = counted  # type: ignore[method-assign,assignment]
    assert await store.get_preference("feishu", "nobody", "text_to_video") is None
    assert reads == 0  # known at start-up to have none
    pref = await store.get_preference("feishu", "u1", "text_to_video")
    assert pref is not None and pref.model_key == "kling-o1" and reads == 1
    await store.set_preference("feishu", "u2", "image_to_video", "wan26", "wan2.6-i2v", "Wan 2.6")
    pref = await store.get_preference("feishu", "u2", "image_to_video")
    assert pref is not None and pref.model_key == "wan26"
    await store.close()


# -- open questions and once-only actions ------------------------------------------------------------
async def test_a_question_is_answered_once_even_by_two_processes(db_url: str) -> None:
    stores = [await Store.open(db_url) for _ in range(2 if _shared(db_url) else 1)]
    try:
        now = time.time()
        await stores[0].ask(OpenQuestion("feishu", "c", "u", "retry", "j1", ("a", "b"), now, now + 60))
        await stores[0].ask(OpenQuestion("feishu", "c", "u", "confirm", "j2", (), now, now + 60))  # replaces
        answers = await asyncio.gather(*(s.take_question("feishu", "c", "u") for s in stores * 2))
        got = [a for a in answers if a is not None]
        assert len(got) == 1 and got[0].kind == "confirm" and got[0].job_id == "j2" and got[0].options == ()
        await stores[0].ask(OpenQuestion("feishu", "c", "u", "retry", "j3", ("x",), now, now + 60))
        await stores[-1].forget_questions_about("j3")
        assert await stores[0].take_question("feishu", "c", "u") is None
    finally:
        for s in stores:
            await s.close()


async def test_expired_questions_are_pruned(store: Store) -> None:
    now = time.time()
    await store.ask(OpenQuestion("feishu", "c", "u", "retry", "j1", ("a",), now - 100, now - 1))
    await store.prune_seen()
    assert await store.take_question("feishu", "c", "u") is None


async def test_an_action_is_used_once_across_processes(db_url: str) -> None:
    stores = [await Store.open(db_url) for _ in range(3 if _shared(db_url) else 1)]
    try:
        results = await asyncio.gather(*(s.use_once("rerun:j1") for s in stores for _ in range(3)))
        assert sum(results) == 1
    finally:
        for s in stores:
            await s.close()


async def test_a_job_written_with_its_action_is_written_once(store: Store) -> None:
    assert await store.intake("console", [], _job("j2"), once="rerun:j1")
    assert not await store.intake("console", [], _job("j3"), once="rerun:j1")
    assert await store.get_job("j3") is None
    assert not await store.use_once("rerun:j1")


async def test_a_job_refused_for_too_many_jobs_leaves_its_action_unused(store: Store) -> None:
    await store.intake("console", [], _job("j1"))
    with pytest.raises(TooManyJobs):
        await store.intake("console", [], _job("j2"), max_active=1, once="rerun:j0")
    assert await store.get_job("j2") is None
    assert await store.use_once("rerun:j0")  # the press can be made again


async def test_a_save_claiming_an_action_claims_it_once(store: Store) -> None:
    job = _job()
    await store.intake("console", [], job)
    assert await store.save_leased(job, once="confirm:j1", status="accepted")
    assert not await store.save_leased(job, once="confirm:j1", status="accepted")


async def test_a_save_that_finds_its_job_finished_leaves_the_action_unused(store: Store) -> None:
    job = _job()
    await store.intake("console", [], job)
    await store.save_job(job, status="cancelled")
    assert not await store.save_leased(_job(), once="confirm:j1", status="accepted")
    got = await store.get_job("j1")
    assert got is not None and got.status == "cancelled"
    assert await store.use_once("confirm:j1")


# -- budgets -----------------------------------------------------------------------------------------
async def test_a_budget_is_reserved_once_and_released(store: Store) -> None:
    since = time.time() - 10
    first, second = _job("j1"), _job("j2")
    assert await store.reserve_spend(first, 60, since, 100, None) is None
    assert await store.reserve_spend(first, 60, since, 100, None) is None  # again for the same job
    assert await store.reserve_spend(second, 50, since, 100, None) == ("user", 40)
    assert await store.reserve_spend(second, 50, since, None, 80) == ("chat", 20)
    await store.set_spend_state("j1", "released")
    assert await store.reserve_spend(second, 50, since, 100, 80) is None
    await store.set_spend_state("j2", "spent", 45)
    assert await store.usage("console", since, user_id="u1") == [("", 45, 1)]
    assert await store.usage("console", since, by="user_id") == [("u1", 45, 1)]
    assert await store.usage("console", since, chat_id="other") == [("", 0, 0)]


async def test_a_burst_across_processes_cannot_overspend(db_url: str) -> None:
    stores = [await Store.open(db_url) for _ in range(3 if _shared(db_url) else 1)]
    try:
        since = time.time() - 10
        refusals = await asyncio.gather(
            *(
                stores[i % len(stores)].reserve_spend(_job(f"j{i}", chat=f"c{i % 2}"), 30, since, 100, 1000)
                for i in range(12)
            )
        )
        assert sum(r is None for r in refusals) == 3
        assert (await stores[0].usage("console", since, user_id="u1"))[0][1] == 90
    finally:
        for s in stores:
            await s.close()


async def test_overrides_are_kept(store: Store) -> None:
    await store.set_override("bot_user_daily_credits", "100")
    await store.set_override("bot_user_daily_credits", "200")
    assert await store.overrides() == {"bot_user_daily_credits": "200"}


# -- leases ------------------------------------------------------------------------------------------
async def test_one_process_owns_every_unfinished_job_on_sqlite(tmp_path: object) -> None:
    path = f"sqlite:///{tmp_path}/bot.sqlite3"
    first = await Store.open(path, lease_s=600)
    await first.intake("console", ["e1"], _job("j1"))
    await first.close()  # killed: its lease has not expired
    second = await Store.open(path, lease_s=600)
    assert [j.id for j in await second.claim_jobs()] == ["j1"]  # one process: taken back at once
    job = await second.get_job("j1")
    assert job is not None and await second.save_leased(job, status="creating")
    assert await second.renew_leases(["j1"]) == set()
    await second.close()


async def test_a_job_is_leased_to_the_process_that_took_it(pg_cluster: object) -> None:
    from tests.conftest import new_pg_database

    url = await new_pg_database(pg_cluster)  # type: ignore[arg-type]
    a = await Store.open(url, lease_s=30, owner="a")
    b = await Store.open(url, lease_s=30, owner="b")
    try:
        await a.intake("feishu", ["e1"], _job("j1"))
        assert await b.claim_jobs() == []  # a holds it
        job_b = await b.get_job("j1")
        assert job_b is not None and not await b.save_leased(job_b, status="creating")  # b may not pay for it
        assert (await a.get_job("j1")).status == "accepted"  # type: ignore[union-attr]
        job_a = await a.get_job("j1")
        assert job_a is not None and await a.save_leased(job_a, status="creating")
        assert await b.renew_leases(["j1"]) == {"j1"}  # b learns it is a's
        assert await a.renew_leases(["j1"]) == set()
        # a stops and hands its leases back: b picks the job up at once
        assert await a.release_leases() == 1
        assert [j.id for j in await b.claim_jobs()] == ["j1"]
        assert await a.renew_leases(["j1"]) == {"j1"}
    finally:
        await a.close()
        await b.close()


async def test_an_expired_lease_is_taken_over_and_the_old_owner_cannot_deliver(pg_cluster: object) -> None:
    from tests.conftest import new_pg_database

    url = await new_pg_database(pg_cluster)  # type: ignore[arg-type]
    a = await Store.open(url, lease_s=1.0, owner="a")  # long enough for its first save on a loaded machine
    b = await Store.open(url, lease_s=30, owner="b")
    try:
        await a.intake("feishu", ["e1"], _job("j1"))
        job_a = await a.get_job("j1")
        assert job_a is not None and await a.save_leased(job_a, status="running", task_ids=["t1"])
        await asyncio.sleep(1.2)  # a stopped renewing (killed, or frozen)
        [taken] = await b.claim_jobs()
        assert taken.id == "j1" and taken.status == "running" and taken.task_ids == ["t1"]
        assert not await a.save_leased(job_a, status="delivering")  # a wakes up: too late
        assert await b.save_leased(taken, status="delivering", result_url="u")
        await b.save_job(taken, status="delivered")
        assert await b.claim_jobs() == [] and await a.claim_jobs() == []
        assert not await b.save_leased(taken, status="delivering")  # delivered once, never again
    finally:
        await a.close()
        await b.close()


async def test_two_processes_racing_to_deliver_deliver_once(pg_cluster: object) -> None:
    from tests.conftest import new_pg_database

    url = await new_pg_database(pg_cluster)  # type: ignore[arg-type]
    # the jobs were written by a process whose leases ran out at once; the four racing take
    # leases that outlast the race however slow the machine (once a winner's lease does run
    # out, taking the job over is what a lease is for: that is not this test's claim)
    writer = await Store.open(url, lease_s=0.01, owner="gone")
    stores = [await Store.open(url, lease_s=60, owner=f"p{i}") for i in range(4)]
    try:
        for i in range(30):
            await writer.add_job(_job(f"j{i}"))
        await asyncio.sleep(0.05)  # every lease expired: all four believe they may deliver

        async def deliver(s: Store, job_id: str) -> bool:
            job = await s.get_job(job_id)
            assert job is not None
            return await s.save_leased(job, status="delivering")

        won = await asyncio.gather(*(deliver(s, f"j{i}") for i in range(30) for s in stores))
        assert sum(won) == 30  # each job by exactly one of them
    finally:
        for s in [writer, *stores]:
            await s.close()


async def test_pick_up_skips_locked_rows_and_shares_the_work(pg_cluster: object) -> None:
    from tests.conftest import new_pg_database

    url = await new_pg_database(pg_cluster)  # type: ignore[arg-type]
    stores = [await Store.open(url, lease_s=30, owner=f"p{i}") for i in range(3)]
    try:
        for i in range(60):
            await stores[0].add_job(_job(f"j{i}"))
        await stores[0].release_leases()
        claimed = await asyncio.gather(*(s.claim_jobs(limit=10) for s in stores for _ in range(3)))
        ids = [j.id for batch in claimed for j in batch]
        assert len(ids) == 60 and len(set(ids)) == 60  # nothing claimed twice, nothing left
        assert await stores[0].claim_jobs() == []
    finally:
        for s in stores:
            await s.close()


async def test_a_job_waiting_for_a_yes_is_nobodys(pg_cluster: object) -> None:
    from tests.conftest import new_pg_database

    url = await new_pg_database(pg_cluster)  # type: ignore[arg-type]
    a = await Store.open(url, lease_s=30, owner="a")
    b = await Store.open(url, lease_s=30, owner="b")
    try:
        await a.intake("feishu", ["e1"], _job("j1"))
        job = await a.get_job("j1")
        assert job is not None
        await a.save_job(job, status="awaiting_confirm")
        # the yes reaches b: b takes the job and runs it
        again = await b.get_job("j1")
        assert again is not None and await b.save_leased(again, status="accepted")
        assert not await a.save_leased(job, status="creating")
    finally:
        await a.close()
        await b.close()
