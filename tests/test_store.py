"""The SQLite store: a real file in a temp dir."""

from __future__ import annotations

from pathlib import Path

from bot.store import MIGRATIONS, Job, Store


def _job(job_id: str = "j1", user: str = "u1") -> Job:
    return Job(id=job_id, platform="console", chat_id="c", user_id=user, language="zh",
               task_type="text_to_video", prompt="小狗", request={"duration": 5})


async def test_a_new_file_is_migrated_to_the_latest_schema(tmp_path: Path) -> None:
    store = await Store.open(tmp_path / "db" / "bot.sqlite3")
    assert await store.schema_version() == len(MIGRATIONS)
    await store.close()


async def test_reopening_keeps_data_and_does_not_remigrate(tmp_path: Path) -> None:
    path = tmp_path / "bot.sqlite3"
    store = await Store.open(path)
    await store.add_job(_job())
    await store.close()
    store = await Store.open(path)
    assert (await store.get_job("j1")) is not None
    await store.close()


async def test_a_job_round_trips_with_its_json_fields(tmp_path: Path) -> None:
    store = await Store.open(tmp_path / "bot.sqlite3")
    job = _job()
    await store.add_job(job)
    await store.save_job(job, status="running", task_ids=["t1"], params={"duration": 10})
    again = await store.get_job("j1")
    assert again is not None and again.status == "running" and again.task_ids == ["t1"] and again.params == {"duration": 10}
    await store.close()


async def test_unfinished_jobs_are_those_not_delivered_or_failed(tmp_path: Path) -> None:
    store = await Store.open(tmp_path / "bot.sqlite3")
    for i, status in enumerate(["accepted", "creating", "running", "delivering", "delivered", "failed"]):
        job = _job(f"j{i}")
        await store.add_job(job)
        await store.save_job(job, status=status)
    assert [j.status for j in await store.unfinished_jobs()] == ["accepted", "creating", "running", "delivering"]
    await store.close()


async def test_an_event_is_new_once(tmp_path: Path) -> None:
    store = await Store.open(tmp_path / "bot.sqlite3")
    assert await store.mark_seen("feishu", "om_1") is True
    assert await store.mark_seen("feishu", "om_1") is False
    assert await store.mark_seen("discord", "om_1") is True
    await store.close()


async def test_seen_events_survive_a_restart(tmp_path: Path) -> None:
    path = tmp_path / "bot.sqlite3"
    store = await Store.open(path)
    await store.mark_seen("feishu", "om_1")
    await store.close()
    store = await Store.open(path)
    assert await store.mark_seen("feishu", "om_1") is False
    await store.close()


async def test_preferences_are_per_user_and_task_type(tmp_path: Path) -> None:
    store = await Store.open(tmp_path / "bot.sqlite3")
    await store.set_preference("feishu", "u1", "text_to_video", "kling-o1", "kling-video-o1", "Kling O1")
    assert (await store.get_preference("feishu", "u1", "text_to_video")).model_key == "kling-o1"  # type: ignore[union-attr]
    assert await store.get_preference("feishu", "u1", "image_to_video") is None
    assert await store.get_preference("feishu", "u2", "text_to_video") is None
    await store.close()


async def test_clearing_preferences_removes_them(tmp_path: Path) -> None:
    store = await Store.open(tmp_path / "bot.sqlite3")
    await store.set_preference("feishu", "u1", "text_to_video", "kling-o1", "kling-video-o1", "Kling O1")
    assert await store.clear_preference("feishu", "u1", None) == 1
    assert await store.get_preference("feishu", "u1", "text_to_video") is None
    await store.close()


async def test_old_seen_events_are_pruned(tmp_path: Path) -> None:
    store = await Store.open(tmp_path / "bot.sqlite3")
    await store.mark_seen("feishu", "om_1")
    assert await store.prune_seen(older_than_s=-1) == 1
    assert await store.mark_seen("feishu", "om_1") is True
    await store.close()
