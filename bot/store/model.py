"""What the store keeps, whatever the backend: jobs, pictures, questions, preferences."""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import Any

#: states a job passes through; the FINAL ones end it
ACTIVE = ("accepted", "creating", "running", "delivering")
#: priced and waiting for its requester's OK (not resumed at start-up: nothing runs until a yes)
WAITING = "awaiting_confirm"
FINAL = ("delivered", "failed", "cancelled", "expired", "uncertain")

_JSON_FIELDS = {"request", "params", "image_urls", "task_ids", "target_state"}
#: json.dumps(…, ensure_ascii=False) builds an encoder per call; a job row has five of these
_to_json = json.JSONEncoder(ensure_ascii=False).encode


class LeaseLost(Exception):
    """Another process holds this job's lease now: this one stops working on it, saying nothing."""


class TooManyJobs(Exception):
    """The person already has as many jobs under way as they may (counted in the database)."""


@dataclass
class JobRequest:
    """What the person asked for, as the job carries it (and what planning decided about it).

    - text: the message as sent; model_key: the model named (catalog key), preferred_key: their
      saved preference when none was named; tier: "budget" / "premium" when asked for the
      cheapest or the best; remembered: the named model was just saved as their preference.
    - duration / resolution / aspect_ratio: as asked (fitted to the model at planning time);
      controls: the creative controls asked for (sound, negative_prompt, seed, shot_type,
      prompt_extend); excluded: catalog keys of models ruled out ("别用sora").
    - confirmed: the requester said yes (to the price, or to an unsure request); source ("named" | "preference" |
      "recommended") and recommended_key: set when the job is planned.
    """

    text: str = ""
    model_key: str | None = None
    preferred_key: str | None = None
    duration: int | None = None
    resolution: str | None = None
    aspect_ratio: str | None = None
    tier: str | None = None
    remembered: bool = False
    #: the preference these words replaced when they saved another model: {"set": the key
    #: saved, "at": when (the preference's updated_at), and the earlier model_key / model_id /
    #: model_name if there was one}; a no to the job puts it back, unless it changed since
    replaced: dict[str, Any] | None = None
    excluded: list[str] = field(default_factory=list)
    controls: dict[str, Any] = field(default_factory=dict)
    confirmed: bool = False
    #: only a few words, nothing that says "video": it waits for the requester's yes
    unsure: bool = False
    #: waiting for a yes: when the yes stops counting (the question expires, unpaid)
    answer_by: float | None = None
    source: str | None = None
    recommended_key: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """For storing: a shallow copy (its values are plain JSON already)."""
        return {f: getattr(self, f) for f in _REQUEST_FIELDS}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any] | None) -> JobRequest:
        """From a stored row; keys it does not know (older rows) are ignored."""
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in (data or {}).items() if k in known})


@dataclass
class Job:
    """One user request, from accepted to delivered or failed."""

    id: str
    platform: str
    chat_id: str
    user_id: str
    language: str
    task_type: str
    prompt: str
    request: JobRequest = field(default_factory=JobRequest)
    status: str = "accepted"
    reply_to: str | None = None
    model_key: str | None = None
    model_id: str | None = None
    model_name: str | None = None
    model_version: str | None = None
    params: dict[str, Any] = field(default_factory=dict)
    credits: int | None = None
    image_urls: list[str] = field(default_factory=list)
    task_ids: list[str] = field(default_factory=list)
    attempts: int = 0
    est_min: int | None = None
    est_max: int | None = None
    error_kind: str | None = None
    result_url: str | None = None
    cover_url: str | None = None
    target_state: dict[str, str] = field(default_factory=dict)
    created_at: float = field(default_factory=time.time)
    updated_at: float = field(default_factory=time.time)
    started_at: float | None = None
    finished_at: float | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.request, JobRequest):  # a plain mapping, as rows and tests give it
            self.request = JobRequest.from_dict(self.request)


@dataclass(frozen=True)
class StoredImage:
    """A picture kept with its job: verified bytes, or the public URL it came from."""

    content_type: str
    data: bytes | None = None
    url: str | None = None


@dataclass(frozen=True)
class OpenQuestion:
    """Something the bot asked one person in one chat, waiting for a yes or no.

    kind: "retry" (a failed job; `options` are model ids to try, first = suggested) or
    "confirm" (a job over the confirm threshold waits for a yes before it is paid)."""

    platform: str
    chat_id: str
    user_id: str
    kind: str
    job_id: str
    options: tuple[str, ...]
    asked_at: float
    expires_at: float


@dataclass(frozen=True)
class Preference:
    model_key: str
    model_id: str
    model_name: str
    updated_at: float


@dataclass(frozen=True)
class PreferenceChange:
    """What a video request said about its person's preferred model for its task type,
    written in the same transaction as its job (a redelivered or refused request changes
    nothing). `model_key` None: forget the preference ("用最好的", the bot's pick)."""

    task_type: str
    model_key: str | None = None
    model_id: str = ""
    model_name: str = ""
    #: when the words were said: the saved preference's updated_at (by which a no to the job
    #: knows whether anything changed the preference since)
    at: float = field(default_factory=time.time)


JOB_COLUMNS = [f.name for f in fields(Job)]
_REQUEST_FIELDS = [f.name for f in fields(JobRequest)]


def encode_job(job: Job) -> dict[str, Any]:
    """The job as one row: JSON text for its structured fields."""
    # field by field, not asdict(): its deep copy of every value was a tenth of a burst's work
    row = {k: getattr(job, k) for k in JOB_COLUMNS}
    row["request"] = job.request.to_dict()
    for k in _JSON_FIELDS:
        row[k] = _to_json(row[k])
    return row


def decode_job(row: Any) -> Job:
    """A job from its row (columns other than the job's own, such as the lease, are ignored)."""
    data = {k: row[k] for k in JOB_COLUMNS}
    for k in _JSON_FIELDS:
        data[k] = json.loads(data[k])
    data["request"] = JobRequest.from_dict(data["request"])
    return Job(**data)


def apply_changes(job: Job, changes: Mapping[str, Any]) -> None:
    """Set `changes` on `job` (unknown names are an error) and stamp it."""
    for k, v in changes.items():
        if k not in JOB_COLUMNS:
            raise AttributeError(k)
        setattr(job, k, v)
    job.updated_at = time.time()


def question_row(question: OpenQuestion) -> tuple[Any, ...]:
    """The question as the values of its row, in column order."""
    return (
        question.platform,
        question.chat_id,
        question.user_id,
        question.kind,
        question.job_id,
        json.dumps(list(question.options)),
        question.asked_at,
        question.expires_at,
    )


def question_from(row: Any) -> OpenQuestion:
    return OpenQuestion(
        row["platform"],
        row["chat_id"],
        row["user_id"],
        row["kind"],
        row["job_id"],
        tuple(json.loads(row["options"])),
        row["asked_at"],
        row["expires_at"],
    )
