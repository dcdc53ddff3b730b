"""The bot's durable state behind one interface: SQLite (default) or PostgreSQL.

`await Store.open(url_or_path)` picks the backend: a path or `sqlite:///path` opens the SQLite
file (one process), `postgresql://…` a database several processes may share (jobs owned
through leases). See bot/store/base.py for the contract both keep.
"""

from bot.store.base import DEFAULT_LEASE_S, Store, is_postgres, sqlite_path
from bot.store.model import (
    ACTIVE,
    FINAL,
    WAITING,
    Job,
    JobRequest,
    LeaseLost,
    OpenQuestion,
    Preference,
    PreferenceChange,
    StoredImage,
    TooManyJobs,
)
from bot.store.sqlite import MIGRATIONS, SqliteStore

__all__ = [
    "ACTIVE",
    "DEFAULT_LEASE_S",
    "FINAL",
    "MIGRATIONS",
    "WAITING",
    "Job",
    "JobRequest",
    "LeaseLost",
    "OpenQuestion",
    "Preference",
    "PreferenceChange",
    "SqliteStore",
    "Store",
    "StoredImage",
    "TooManyJobs",
    "is_postgres",
    "sqlite_path",
]
