"""Shared fixtures: the real sandbox on loopback, a real SQLite file, a real BotCore, and a
throwaway PostgreSQL cluster (one per test session) for the store's PostgreSQL backend."""

from __future__ import annotations

import itertools
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr

from adapters.base import FailureView, NoticeView, ProgressView, VideoView
from bot.catalog import load_catalog
from bot.config import SANDBOX_KEY, Settings
from bot.core import BotCore
from bot.ima import ImaClient
from bot.sandbox import Sandbox, SandboxConfig
from bot.sandbox.ledger import read_jsonl
from bot.sandbox.process import clean_env
from bot.sandbox.process import running as running_sandbox
from bot.store import Store
from bot.store.pgcluster import Cluster, ClusterError

#: sandbox generation times and the bot's estimates alike: Wan 2.6 takes ~0.5 s instead of ~90 s
TIME_SCALE = 0.005


class RecordingConversation:
    """A Conversation that keeps what the core said, in order."""

    def __init__(self) -> None:
        self.events: list[tuple[str, object]] = []

    async def notice(self, view: NoticeView) -> None:
        self.events.append(("notice", view))

    async def progress(self, view: ProgressView) -> None:
        self.events.append(("progress", view))

    async def video(self, view: VideoView) -> None:
        self.events.append(("video", view))

    async def failure(self, view: FailureView) -> None:
        self.events.append(("failure", view))

    async def text(self, text: str) -> None:
        self.events.append(("text", text))

    def kinds(self) -> list[str]:
        return [k for k, _ in self.events]

    def of(self, kind: str) -> list[object]:
        return [v for k, v in self.events if k == kind]

    def texts(self) -> list[str]:
        return [str(v) for k, v in self.events if k == "text"]


def make_settings(sandbox: Sandbox, db_path: Path, **overrides: object) -> Settings:
    """Settings pointing at a running sandbox (as an operator would with IMA_BASE_URL)."""
    values: dict[str, object] = {
        "ima_api_key": SecretStr(SANDBOX_KEY),
        "ima_base_url": sandbox.base_url,
        "ima_im_base_url": sandbox.base_url,
        "ima_upload_app_key": SecretStr(sandbox.config.upload_app_key),
        "ima_sandbox_time_scale": sandbox.config.time_scale,
        "bot_db_path": db_path,
        # most tests are about other steps than the price question; tests of it turn it on
        "bot_confirm_above_credits": 0,
    }
    values.update(overrides)
    return Settings(_env_file=None, **values)  # type: ignore[arg-type]


@pytest.fixture
async def sandbox(tmp_path: Path) -> AsyncIterator[Sandbox]:
    async with Sandbox(
        SandboxConfig(port=0, time_scale=TIME_SCALE, seed=7, media_dir=tmp_path / "media")
    ) as sb:
        yield sb


@pytest.fixture
def settings(sandbox: Sandbox, tmp_path: Path) -> Settings:
    return make_settings(sandbox, tmp_path / "bot.sqlite3")


async def open_core(settings: Settings, **timing: Any) -> BotCore:
    """A BotCore on `settings` (`timing`: its sleep= and clock= hooks); close it with `close_core`."""
    client = ImaClient.from_settings(settings)
    store = await Store.open(settings.bot_db_path)
    return BotCore(settings=settings, client=client, store=store, catalog=load_catalog(), **timing)


async def close_core(core: BotCore) -> None:
    await core.cancel_all()
    await core.client.aclose()
    await core.store.close()


@pytest.fixture
async def core(settings: Settings) -> AsyncIterator[BotCore]:
    c = await open_core(settings)
    yield c
    await close_core(c)


@pytest.fixture
def conversation() -> RecordingConversation:
    return RecordingConversation()


@pytest.fixture(scope="session")
def pg_cluster() -> Iterator[Cluster]:
    """One throwaway PostgreSQL cluster for the whole run (a unix socket in a temp dir), removed
    after. A cluster that cannot start fails the tests that need it, with the reason: never a skip."""
    try:
        cluster = Cluster().start()
    except ClusterError as e:
        pytest.fail(f"PostgreSQL tests need a throwaway cluster: {e}", pytrace=False)
    yield cluster
    cluster.stop()


_databases = itertools.count(1)


async def new_pg_database(cluster: Cluster) -> str:
    """A fresh, empty database in the session's cluster; returns its URL."""
    import asyncpg

    name = f"t{next(_databases)}"
    con = await asyncpg.connect(cluster.url())
    try:
        await con.execute(f'CREATE DATABASE "{name}"')
    finally:
        await con.close()
    return cluster.url(name)


@pytest.fixture(params=["sqlite", "postgres"])
async def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A database URL for each backend: a SQLite file in a temp dir, a fresh PostgreSQL database."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'db' / 'bot.sqlite3'}"
    return await new_pg_database(request.getfixturevalue("pg_cluster"))


def console_session(
    tmp_path: Path, stdin: str, **env: str
) -> tuple[subprocess.CompletedProcess[str], list[dict[str, Any]]]:
    """`python -m bot console` with piped stdin against a sandbox started apart (as an operator
    would: IMA_BASE_URL, IMA_API_KEY=ima_sandbox_key), with extra settings `env`. Returns the
    finished console and the sandbox ledger (one entry per paid task)."""
    ledger = tmp_path / "ledger.jsonl"
    with running_sandbox(
        tmp_path / "sandbox", "--time-scale", str(TIME_SCALE), "--ledger-file", str(ledger)
    ) as base:
        done = subprocess.run(
            [sys.executable, "-m", "bot", "console"],
            input=stdin,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
            cwd=tmp_path,
            env={
                **clean_env(),
                "IMA_BASE_URL": base,
                "IMA_API_KEY": SANDBOX_KEY,
                "IMA_SANDBOX_TIME_SCALE": str(TIME_SCALE),
                "BOT_DB_PATH": str(tmp_path / "bot.sqlite3"),
                "PYTHONIOENCODING": "utf-8",
                **env,
            },
        )
    return done, read_jsonl(ledger)
