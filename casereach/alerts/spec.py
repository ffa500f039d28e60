"""The definition of an alert (SPEC 5), validated in one place.

Stored whole in ``Alert.spec`` so that a new option needs no migration. Everything a user can
get wrong is refused here with a message naming the field, before anything is stored.
"""

from __future__ import annotations

import datetime as dt
import re
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from casereach.alerts.templates import TemplateError, validate_content

_HHMM = re.compile(r"^([01]\d|2[0-3]):[0-5]\d$")
_PROP = re.compile(r"^(parent/)?[A-Za-z_][A-Za-z0-9_\-]{0,63}$")
MAX_REGEX = 500


def parse_hhmm(value: str) -> dt.time:
    hours, minutes = value.split(":")
    return dt.time(int(hours), int(minutes))


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


def _hhmm(value: str) -> str:
    if not _HHMM.match(value):
        raise ValueError(f"{value!r} is not a time: use HH:MM, 00:00 to 23:59")
    return value


def _prop(value: str) -> str:
    if not _PROP.match(value):
        raise ValueError(f"{value!r} is not a case property name (optionally parent/<name>)")
    return value


class Criterion(_Strict):
    property: str
    op: Literal[
        "equal", "not_equal", "has_value", "has_no_value", "regex", "days_after", "days_before"
    ]
    value: str | None = None
    days: int | None = Field(default=None, ge=-36500, le=36500)

    @field_validator("property")
    @classmethod
    def _property(cls, value: str) -> str:
        return _prop(value)

    @model_validator(mode="after")
    def _complete(self) -> Criterion:
        if self.op in ("equal", "not_equal") and self.value is None:
            raise ValueError(f"{self.op} needs a value")
        if self.op == "regex":
            if not self.value:
                raise ValueError("regex needs a value (the pattern)")
            if len(self.value) > MAX_REGEX:
                raise ValueError(f"the pattern is longer than {MAX_REGEX} characters")
            try:
                re.compile(self.value)
            except re.error as exc:
                raise ValueError(f"invalid regex {self.value!r}: {exc}") from None
        if self.op in ("days_after", "days_before") and self.days is None:
            raise ValueError(f"{self.op} needs days")
        return self


class Criteria(_Strict):
    match: Literal["all", "any"] = "all"
    rules: list[Criterion] = Field(default_factory=list, max_length=50)


class Repeat(_Strict):
    """How the schedule repeats. ``once``: one period only."""

    unit: Literal["once", "days", "weeks", "months"] = "once"
    interval: int = Field(default=1, ge=1, le=1000)
    weekdays: list[int] = Field(default_factory=list, description="0 = Monday … 6 = Sunday")
    day_of_month: int | None = Field(
        default=None, description="1..31, or -1..-28 counting from the month's end"
    )
    iterations: int | None = Field(default=1, ge=1, le=100_000, description="null = forever")

    @field_validator("weekdays")
    @classmethod
    def _weekdays(cls, value: list[int]) -> list[int]:
        if any(d < 0 or d > 6 for d in value):
            raise ValueError("weekdays are 0 (Monday) to 6 (Sunday)")
        return sorted(set(value))

    @field_validator("day_of_month")
    @classmethod
    def _dom(cls, value: int | None) -> int | None:
        if value is not None and (value == 0 or value > 31 or value < -28):
            raise ValueError("day_of_month is 1..31, or -1..-28 counting from the end")
        return value

    @model_validator(mode="after")
    def _once(self) -> Repeat:
        if self.unit == "once":
            self.iterations = 1
        return self


class Start(_Strict):
    """Where the schedule's first day comes from."""

    source: Literal["match", "date", "property"] = Field(default="match", alias="from")
    date: dt.date | None = None
    property: str | None = None

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    @model_validator(mode="after")
    def _complete(self) -> Start:
        if self.source == "date" and self.date is None:
            raise ValueError("start from a date needs date (YYYY-MM-DD)")
        if self.source == "property":
            if not self.property:
                raise ValueError("start from a property needs property")
            _prop(self.property)
        return self


class TimedEvent(_Strict):
    """One send of a timed schedule: ``day`` days after the period's date, at a fixed time,
    a random time in a window, or a time read from a case property."""

    day: int = Field(default=0, ge=0, le=3650)
    time: str | None = None
    window_start: str | None = None
    window_end: str | None = None
    time_property: str | None = None

    @model_validator(mode="after")
    def _one_kind(self) -> TimedEvent:
        kinds = [
            self.time is not None,
            self.window_start is not None or self.window_end is not None,
            self.time_property is not None,
        ]
        if sum(kinds) != 1:
            raise ValueError("each event needs exactly one of time, a window, time_property")
        if self.time is not None:
            _hhmm(self.time)
        if kinds[1]:
            if self.window_start is None or self.window_end is None:
                raise ValueError("a window needs window_start and window_end")
            _hhmm(self.window_start)
            _hhmm(self.window_end)
            if self.window_end <= self.window_start:
                raise ValueError("window_end must be after window_start")
        if self.time_property is not None:
            _prop(self.time_property)
        return self


class TimedSchedule(_Strict):
    type: Literal["timed"]
    events: list[TimedEvent] = Field(min_length=1, max_length=20)
    repeat: Repeat = Field(default_factory=Repeat)
    start: Start = Field(default_factory=Start)


class AlertEvent(_Strict):
    wait_minutes: int = Field(ge=0, le=525_600)


class AlertSchedule(_Strict):
    """Events after waits (in minutes) from the start; repeats ``iterations`` times."""

    type: Literal["alert"]
    events: list[AlertEvent] = Field(min_length=1, max_length=20)
    iterations: int | None = Field(default=1, ge=1, le=100_000, description="null = forever")
    start: Start = Field(default_factory=Start)

    @model_validator(mode="after")
    def _repeatable(self) -> AlertSchedule:
        if self.iterations != 1 and sum(e.wait_minutes for e in self.events) == 0:
            raise ValueError("a repeating alert schedule needs a wait above 0")
        return self


class ImmediateSchedule(_Strict):
    type: Literal["immediate"]


Schedule = Annotated[TimedSchedule | AlertSchedule | ImmediateSchedule, Field(discriminator="type")]


class Recipient(_Strict):
    type: Literal[
        # broadcasts
        "case",
        "case_group",
        "worker",
        "user_group",
        # conditional alerts
        "self",
        "owner",
        "parent",
        "children",
        "user_property",
        "email_property",
    ]
    id: str | None = None  # case id, worker id, or group name
    case_type: str | None = None  # case_group: the saved filter
    criteria: Criteria | None = None
    property: str | None = None

    @model_validator(mode="after")
    def _complete(self) -> Recipient:
        if self.type in ("case", "worker", "user_group") and not self.id:
            raise ValueError(f"a {self.type} recipient needs id")
        if self.type == "case_group" and not self.case_type:
            raise ValueError("a case_group recipient needs case_type (and optional criteria)")
        if self.type in ("user_property", "email_property"):
            if not self.property:
                raise ValueError(f"a {self.type} recipient needs property")
            _prop(self.property)
        return self


class EmailContent(_Strict):
    subject: dict[str, str] = Field(default_factory=dict)
    body: dict[str, str] = Field(default_factory=dict)


class Content(_Strict):
    sms: dict[str, str] = Field(default_factory=dict)
    email: EmailContent | None = None


BROADCAST_RECIPIENTS = {"case", "case_group", "worker", "user_group"}
CONDITIONAL_RECIPIENTS = {"self", "owner", "parent", "children", "user_property", "email_property"}


class AlertSpec(_Strict):
    name: str = Field(min_length=1, max_length=200)
    kind: Literal["broadcast", "conditional"]
    channel: Literal["sms", "email"] = "sms"
    content: Content
    default_language: str | None = None
    schedule: Schedule
    recipients: list[Recipient] = Field(min_length=1, max_length=1000)
    case_type: str | None = None
    criteria: Criteria = Field(default_factory=Criteria)
    stop_property: str | None = None
    reset_property: str | None = None
    late_limit_hours: int = Field(default=48, ge=1, le=24 * 365)

    @model_validator(mode="after")
    def _consistent(self) -> AlertSpec:
        if self.kind == "conditional":
            if not self.case_type:
                raise ValueError("a conditional alert needs case_type")
            if isinstance(self.schedule, ImmediateSchedule):
                raise ValueError("a conditional alert needs a timed or alert schedule")
            wrong = {r.type for r in self.recipients} - CONDITIONAL_RECIPIENTS
            if wrong:
                raise ValueError(
                    f"conditional alerts send to {sorted(CONDITIONAL_RECIPIENTS)}, "
                    f"not {sorted(wrong)}"
                )
        else:
            wrong = {r.type for r in self.recipients} - BROADCAST_RECIPIENTS
            if wrong:
                raise ValueError(
                    f"broadcasts send to {sorted(BROADCAST_RECIPIENTS)}, not {sorted(wrong)}"
                )
            if not isinstance(self.schedule, ImmediateSchedule):
                if self.schedule.start.source == "property":
                    raise ValueError("a broadcast starts on a date, not from a case property")
                if self.schedule.start.source == "match" and isinstance(
                    self.schedule, TimedSchedule
                ):
                    self.schedule.start.source = "date"
                    self.schedule.start.date = (
                        self.schedule.start.date or dt.datetime.now(dt.UTC).date()
                    )
            if isinstance(self.schedule, TimedSchedule) and any(
                e.time_property for e in self.schedule.events
            ):
                raise ValueError("a broadcast has no case to read time_property from")
        for name in (self.stop_property, self.reset_property):
            if name is not None:
                _prop(name)
        try:
            if self.channel == "sms":
                validate_content(self.content.sms, what="content.sms")
            else:
                if self.content.email is None:
                    raise TemplateError("content.email needs subject and body")
                validate_content(self.content.email.body, what="content.email.body")
                if self.content.email.subject:
                    validate_content(self.content.email.subject, what="content.email.subject")
        except TemplateError as exc:
            raise ValueError(str(exc)) from None
        return self


def parse_spec(data: Any) -> AlertSpec:
    """ValueError (pydantic's ValidationError is one) names every problem."""
    return AlertSpec.model_validate(data)
