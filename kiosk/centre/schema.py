"""What a point may report, checked at the door: types, ranges, sizes and nesting depth.

pydantic (its core is compiled) rather than jsonschema: it checks a report in tens of
microseconds, so the heartbeat endpoint keeps its thousands of reports a second, and it
hands back the cleaned values, which are all the store ever keeps (unknown keys are
dropped).

Two kinds of fault, two answers:

- The envelope is wrong (kind, sequence number, point id, event name, the shape and size
  of usage, requests and an event's detail, nesting deeper than MAX_DEPTH): the batch is
  refused with 400 `bad_report` and nothing of it is stored.
- One reading of `health` or `content` (a temperature, a disk size) is of the wrong type
  or outside what any hardware reports: that reading alone is dropped and kept as unknown,
  so a box with a broken sensor still counts as online. Pages show "—" for it.
"""

from __future__ import annotations

import json
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, WrapValidator, field_validator

from kiosk import wire

MAX_REPORTS = 2000  # in one batch; a box sends centre.batch_size (200) at most
MAX_DEPTH = 4  # nesting of an event's detail ({"a": {"b": [1]}} is depth 3)
MAX_DETAIL_BYTES = 2048
MAX_REQUESTS = 50
MAX_TEXT = 500  # characters of a villager's request kept; the box sends at most 200
MAX_SEQ = 2**63 - 1  # the database's BIGINT
BIG = 2**60  # bytes: far beyond any disk, inside a BIGINT


def _or_none(value: Any, handler: Any) -> Any:
    """A reading that fails its check is dropped (kept as unknown), not the whole report."""
    try:
        return handler(value)
    except ValidationError:
        return None


def _reading(kind: Any, **limits: Any) -> Any:
    return Annotated[Annotated[kind, Field(strict=True, **limits)] | None, WrapValidator(_or_none)]


Percent = _reading(float, ge=0, le=100)
Count = _reading(int, ge=0, le=BIG)
Time = _reading(float, ge=0, le=2**34)  # unix seconds, until the year 2514
Flag = _reading(bool)
ShortText = Annotated[str, Field(max_length=64)]
Slug = ShortText  # a category as the box names it


class _Block(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True, allow_inf_nan=False)


class Health(_Block):
    """The health readings of a report; each one is dropped alone when it is implausible."""

    temp_c: _reading(float, ge=-60, le=150) = None  # type: ignore[valid-type]
    throttled: Annotated[  # vcgencmd's bits, or a plain yes/no
        Annotated[int, Field(strict=True, ge=0, le=2**32)] | Annotated[bool, Field(strict=True)] | None,
        WrapValidator(_or_none),
    ] = None
    under_voltage: Flag = None  # type: ignore[valid-type]
    cpu_percent: Percent = None  # type: ignore[valid-type]
    memory_percent: Percent = None  # type: ignore[valid-type]
    disk_percent: Percent = None  # type: ignore[valid-type]
    load1: _reading(float, ge=0, le=10_000) = None  # type: ignore[valid-type]
    disk_free: Count = None  # type: ignore[valid-type]
    disk_total: Count = None  # type: ignore[valid-type]
    root_readonly: Flag = None  # type: ignore[valid-type]
    display_restarts: Count = None  # type: ignore[valid-type]
    display_failed: Flag = None  # type: ignore[valid-type]
    ext4_errors: Count = None  # type: ignore[valid-type]
    status: Annotated[Literal["ok", "warning", "fault"] | None, WrapValidator(_or_none)] = None
    problems: Annotated[list[Annotated[str, Field(max_length=64)]] | None, Field(max_length=16), WrapValidator(_or_none)] = None


class Content(_Block):
    """The content summary of a report; each figure is dropped alone when it is implausible."""

    items: Count = None  # type: ignore[valid-type]
    bytes: Count = None  # type: ignore[valid-type]
    last_ingest: Time = None  # type: ignore[valid-type]
    quarantined: Count = None  # type: ignore[valid-type]
    free_bytes: Count = None  # type: ignore[valid-type]
    total_bytes: Count = None  # type: ignore[valid-type]


Plays = Annotated[int, Field(strict=True, ge=0, le=10_000_000)]
Seconds = Annotated[float, Field(strict=True, ge=0, le=10**9)]


class CategoryUsage(_Block):
    opens: Plays = 0
    plays: Plays = 0
    seconds: Seconds = 0.0


class TopItem(_Block):
    id: Annotated[str, Field(max_length=64)]
    count: Plays


class Usage(_Block):
    """Plays since the previous beat: counted into the work report, so refused when malformed."""

    since: Annotated[float, Field(strict=True, ge=0, le=2**34)] | None = None
    until: Annotated[float, Field(strict=True, ge=0, le=2**34)] | None = None
    opens: Plays | None = None
    plays: Plays | None = None
    seconds: Seconds | None = None
    by_category: Annotated[dict[Slug, CategoryUsage], Field(max_length=64)] | None = None
    top_items: Annotated[list[TopItem], Field(max_length=20)] | None = None
    local: CategoryUsage | None = None  # the part of the above made at the points themselves


class Request(_Block):
    """A villager's request (我想看): the text is kept to MAX_TEXT characters."""

    id: Annotated[int, Field(strict=True, ge=0, le=MAX_SEQ)] | None = None
    at: Annotated[float, Field(strict=True, ge=0, le=2**34)] | None = None
    topic: Annotated[str, Field(max_length=64)] = ""
    text: Annotated[str, Field(max_length=4 * MAX_TEXT)] = ""

    @field_validator("text")
    @classmethod
    def _keep_the_start(cls, text: str) -> str:
        return text[:MAX_TEXT]


class Software(_Block):
    version: ShortText = ""
    state: ShortText = ""


class Report(_Block):
    """One report as kiosk/wire.py describes it."""

    v: Annotated[int, Field(strict=True, ge=1, le=100)] = 1
    kind: Literal["beat", "event"]
    point_id: Annotated[str, Field(pattern=r"^[a-z0-9._-]{1,64}$")]
    seq: Annotated[int, Field(strict=True, ge=1, le=MAX_SEQ)]
    box_time: Time = None  # type: ignore[valid-type]
    clock_synced: Flag = None  # type: ignore[valid-type]
    boot_id: Annotated[ShortText | None, WrapValidator(_or_none)] = None
    uptime_s: _reading(float, ge=0, le=10**10) = None  # type: ignore[valid-type]
    software: Annotated[ShortText | Software | None, WrapValidator(_or_none)] = None
    event: Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]{0,31}$")] | None = None
    detail: Any = None
    health: Health | None = None
    content: Content | None = None
    usage: Usage | None = None
    requests: Annotated[list[Request], Field(max_length=MAX_REQUESTS)] | None = None
    thinned: Annotated[int, Field(strict=True, ge=0, le=10**9)] | None = None
    point_key: Annotated[Annotated[str, Field(max_length=200)] | None, WrapValidator(_or_none)] = None

    @field_validator("detail")
    @classmethod
    def _any_small_json(cls, detail: Any) -> Any:
        if detail is None:
            return None
        if _depth(detail) > MAX_DEPTH:
            raise ValueError(f"an event's detail may nest {MAX_DEPTH} deep at most")
        if len(json.dumps(detail, ensure_ascii=False)) > MAX_DETAIL_BYTES:
            raise ValueError(f"an event's detail must stay under {MAX_DETAIL_BYTES} bytes")
        return detail


def _depth(value: Any) -> int:
    """How deep lists and objects nest in `value` (a scalar is 0); stops counting past MAX_DEPTH."""
    depth, level = 0, [value]
    while depth <= MAX_DEPTH:
        containers = [v for v in level if isinstance(v, (dict, list))]
        if not containers:
            break
        depth += 1
        level = [c for v in containers for c in (v.values() if isinstance(v, dict) else v)]
    return depth


def check_batch(reports: list[Any]) -> list[dict[str, Any]]:
    """The reports of a batch with only their validated values, or WireError 400 saying what is wrong."""
    if len(reports) > MAX_REPORTS:
        raise wire.WireError(f"a batch may carry {MAX_REPORTS} reports at most")
    out = []
    for n, report in enumerate(reports):
        try:
            out.append(Report.model_validate(report).model_dump(exclude_none=True))
        except ValidationError as e:
            first = e.errors()[0]
            where = ".".join(str(p) for p in first["loc"]) or "report"
            raise wire.WireError(f"report {n + 1}: {where}: {first['msg']}") from None
    return out
