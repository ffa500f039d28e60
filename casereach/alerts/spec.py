"""The definition of an alert (SPEC 5), validated in one place.

Stored whole in ``Alert.spec`` so that a new option needs no migration. Everything a user can
get wrong is refused here with a message naming the field, before anything is stored.
"""

from __future__ import annotations

import datetime as dt
import re
from typing import TYPE_CHECKING, Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from casereach.alerts.content_spec import Content
from casereach.alerts.regexguard import regex_problem
from casereach.alerts.replyspec import MAX_REPLY_WAIT, NoReply, check_reply
from casereach.alerts.templates import TemplateError, validate_content
from casereach.core.errors import BadRequest

if TYPE_CHECKING:
    from casereach.alerts.models import Alert

_HHMM = re.compile(r"^([01]\d|2[0-3]):[0-5]\d$")
_PROP = re.compile(r"^(parent/)?[A-Za-z_][A-Za-z0-9_\-]{0,63}$")
MAX_REGEX = 500
# Fixed dates (a schedule's start date) must lie in this range, and so must the last day a
# finite schedule starting on one reaches; a schedule lasts at most MAX_SPAN_DAYS.
MIN_DATE = dt.date(1900, 1, 1)
MAX_DATE = dt.date(2199, 12, 31)
MAX_SPAN_DAYS = 36_525  # 100 years
_SPAN_REFERENCE = dt.date(2000, 1, 1)  # for a start that is only known per case


def _saving(info: ValidationInfo) -> bool:
    """Whether a spec is being saved (every check) rather than loaded from the database: a
    stored alert was valid when saved and must still load after a check is added."""
    return not (isinstance(info.context, dict) and info.context.get("stored"))


def _fixed_date(value: dt.date | None, what: str) -> dt.date | None:
    if value is not None and not MIN_DATE <= value <= MAX_DATE:
        raise ValueError(
            f"{what} {value.isoformat()} is out of range: use a date from "
            f"{MIN_DATE.isoformat()} to {MAX_DATE.isoformat()}"
        )
    return value


def _check_span(span: int | None, start: Start) -> None:
    """Refuse a finite schedule lasting over MAX_SPAN_DAYS, or running past MAX_DATE."""
    if span is None:
        return  # forever: computed lazily, one period at a time
    if span > MAX_SPAN_DAYS:
        raise ValueError(
            f"the schedule would last up to {span:,} days (about {span // 365:,} years); at "
            f"most {MAX_SPAN_DAYS:,} days (100 years) are allowed: use fewer iterations, a "
            "shorter interval or shorter waits, or iterations null to repeat forever"
        )
    if start.source == "date" and start.date is not None:
        last = start.date + dt.timedelta(days=span)
        if last > MAX_DATE:
            raise ValueError(
                f"starting on {start.date.isoformat()} the schedule would run until "
                f"{last.isoformat()}, past {MAX_DATE.isoformat()}: start earlier or use "
                "fewer iterations"
            )


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
    def _complete(self, info: ValidationInfo) -> Criterion:
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
            problem = regex_problem(self.value) if _saving(info) else None
            if problem is not None:
                raise ValueError(f"{problem} (pattern {self.value!r})")
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

    @field_validator("date")
    @classmethod
    def _date(cls, value: dt.date | None, info: ValidationInfo) -> dt.date | None:
        return _fixed_date(value, "start date") if _saving(info) else value

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
            if self.window_end == self.window_start:
                raise ValueError(
                    "window_end must differ from window_start (a window ending before it "
                    "starts runs past midnight, e.g. 23:00 to 01:00)"
                )
        if self.time_property is not None:
            _prop(self.time_property)
        return self


class TimedSchedule(_Strict):
    type: Literal["timed"]
    events: list[TimedEvent] = Field(min_length=1, max_length=20)
    repeat: Repeat = Field(default_factory=Repeat)
    start: Start = Field(default_factory=Start)

    def span_days(self, start: dt.date) -> int | None:
        """At most how many days after ``start`` the last event falls; ``None``: forever."""
        rep = self.repeat
        if rep.iterations is None:
            return None
        steps = (rep.iterations - 1) * rep.interval
        # A random time in a window past midnight can fall on the next day.
        last_offset = max(
            event.day
            + (
                1
                if event.window_start and event.window_end and event.window_end < event.window_start
                else 0
            )
            for event in self.events
        )
        if rep.unit in ("once", "days"):
            base = 0 if rep.unit == "once" else steps
        elif rep.unit == "weeks":
            base = steps * 7 + 6
        else:  # months: up to the last day of the last month
            index = start.year * 12 + start.month - 1 + steps + 1
            if index // 12 > MAX_DATE.year:
                base = steps * 31
            else:
                base = (dt.date(index // 12, index % 12 + 1, 1) - start).days - 1
        return base + last_offset

    @model_validator(mode="after")
    def _bounded(self, info: ValidationInfo) -> TimedSchedule:
        if _saving(info):
            _check_span(self.span_days(self.start.date or _SPAN_REFERENCE), self.start)
        return self


class AlertEvent(_Strict):
    wait_minutes: int = Field(ge=0, le=525_600)


class AlertSchedule(_Strict):
    """Events after waits (in minutes) from the start; repeats ``iterations`` times."""

    type: Literal["alert"]
    events: list[AlertEvent] = Field(min_length=1, max_length=20)
    iterations: int | None = Field(default=1, ge=1, le=100_000, description="null = forever")
    start: Start = Field(default_factory=Start)

    def span_days(self) -> int | None:
        """At most how many days after the start the last event falls; ``None``: forever."""
        if self.iterations is None:
            return None
        minutes = self.iterations * sum(e.wait_minutes for e in self.events)
        return -(-minutes // (24 * 60))

    @model_validator(mode="after")
    def _repeatable(self, info: ValidationInfo) -> AlertSchedule:
        if self.iterations != 1 and sum(e.wait_minutes for e in self.events) == 0:
            raise ValueError("a repeating alert schedule needs a wait above 0")
        if _saving(info):
            _check_span(self.span_days(), self.start)
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


BROADCAST_RECIPIENTS = {"case", "case_group", "worker", "user_group"}
CONDITIONAL_RECIPIENTS = {"self", "owner", "parent", "children", "user_property", "email_property"}


class AlertSpec(_Strict):
    name: str = Field(min_length=1, max_length=200)
    kind: Literal["broadcast", "conditional"]
    channel: Literal["sms", "email", "whatsapp"] = "sms"
    content: Content
    default_language: str | None = None
    schedule: Schedule
    recipients: list[Recipient] = Field(min_length=1, max_length=1000)
    case_type: str | None = None
    criteria: Criteria = Field(default_factory=Criteria)
    stop_property: str | None = None
    reset_property: str | None = None
    late_limit_hours: int = Field(default=48, ge=1, le=24 * 365)
    expect_reply_within_minutes: int | None = Field(default=None, ge=1, le=MAX_REPLY_WAIT)
    no_reply: NoReply | None = None

    @model_validator(mode="after")
    def _consistent(self, info: ValidationInfo) -> AlertSpec:
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
            emailed = any(r.type == "email_property" for r in self.recipients)
            if emailed and self.channel != "email" and _saving(info):
                raise ValueError(
                    "an email_property recipient is an email address: it needs channel 'email' "
                    "(an SMS alert cannot send to it)"
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
        check_reply(self.channel, self.expect_reply_within_minutes, self.no_reply)
        if self.content.is_survey and self.channel != "sms":
            raise ValueError("survey content is sent by SMS: it needs channel 'sms'")
        # Every template present is checked, in every language, whichever channel is used:
        # the other channel's texts are stored too, and may be sent after an edit.
        email = self.content.email
        texts = not self.content.is_survey  # a survey's texts are the survey's own
        try:
            saving = _saving(info)
            wa = self.content.whatsapp
            if self.channel == "whatsapp" and (wa is None or (not wa.template and not wa.text)):
                raise TemplateError("content.whatsapp needs text and/or a template")
            if wa is not None and (saving or self.channel == "whatsapp"):
                validate_content(wa.text, what="content.whatsapp.text", required=False)
                validate_content(
                    {str(i + 1): p for i, p in enumerate(wa.params)},
                    what="content.whatsapp.params",
                    required=False,
                )
            if saving or self.channel == "sms":
                validate_content(
                    self.content.sms, what="content.sms", required=texts and self.channel == "sms"
                )
            if email is None:
                if self.channel == "email":
                    raise TemplateError("content.email needs subject and body")
            elif saving or self.channel == "email":
                used = self.channel == "email"
                validate_content(email.body, what="content.email.body", required=used)
                validate_content(
                    email.subject,
                    what="content.email.subject",
                    required=used and bool(email.subject),
                )
        except TemplateError as exc:
            raise ValueError(str(exc)) from None
        return self


def parse_spec(data: Any) -> AlertSpec:
    """A spec being saved, with every check; ValueError (pydantic's ValidationError is one)
    names every problem."""
    return AlertSpec.model_validate(data)


def load_stored_spec(data: Any) -> AlertSpec:
    """A spec read back from the database. Checks added since it was saved (slow regexes,
    date ranges, schedule length, the unused channel's templates) are not applied again:
    refusing to load a saved alert would stop its schedules and the scheduler's batch."""
    return AlertSpec.model_validate(data, context={"stored": True})


def spec_error(exc: ValidationError) -> str:
    parts = []
    for err in exc.errors()[:5]:
        where = ".".join(str(p) for p in err.get("loc", ()) if not str(p).startswith("function"))
        msg = str(err.get("msg", "")).removeprefix("Value error, ")
        parts.append(f"{where}: {msg}" if where else msg)
    return "; ".join(parts)


def validated_spec(data: Any) -> AlertSpec:
    """A request body as a spec to save, or BadRequest naming the first problems."""
    if not isinstance(data, dict):
        raise BadRequest("Payload must be a single JSON object")
    try:
        return parse_spec(data)
    except ValidationError as exc:
        raise BadRequest(f"invalid alert: {spec_error(exc)}") from None
    except ValueError as exc:
        raise BadRequest(f"invalid alert: {exc}") from None


_SPEC_CACHE: dict[tuple[int, int, dt.datetime, dt.datetime], AlertSpec] = {}


def spec_of(alert: Alert) -> AlertSpec:
    """The parsed spec, cached per alert definition (ids may repeat across test databases,
    so the key includes the timestamps)."""
    key = (alert.pk, alert.version, alert.created_on, alert.updated_on)
    spec = _SPEC_CACHE.get(key)
    if spec is None:
        if len(_SPEC_CACHE) > 1000:
            _SPEC_CACHE.clear()
        spec = _SPEC_CACHE[key] = load_stored_spec(alert.spec)
    return spec
