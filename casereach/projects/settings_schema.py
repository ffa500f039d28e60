"""Every project setting of SPEC section 2, validated in one place."""

from __future__ import annotations

import logging
import re
from decimal import Decimal
from typing import Annotated, Any, Literal

import phonenumbers
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    FieldSerializationInfo,
    StrictBool,
    ValidationError,
    ValidationInfo,
    WithJsonSchema,
    field_serializer,
    field_validator,
    model_validator,
)

from casereach.core.crypto import decrypt_json, encrypt_json
from casereach.core.text import first_bad_path
from casereach.core.zones import canonical_zone

log = logging.getLogger(__name__)

_HHMM = re.compile(r"^([01]\d|2[0-3]):[0-5]\d$")
_LANG = re.compile(r"^[A-Za-z]{2,8}([-_][A-Za-z0-9]{1,8})*$")


class RestrictedWindow(BaseModel):
    """Sends are allowed only inside these windows (evaluated in the contact's zone)."""

    model_config = ConfigDict(extra="forbid")
    days: list[int] = Field(
        default_factory=lambda: [0, 1, 2, 3, 4, 5, 6],
        description="Weekdays, 0 = Monday … 6 = Sunday",
    )
    start: str = Field(description="HH:MM, local time")
    end: str = Field(
        description="HH:MM, local time; before start, the window runs past midnight into the "
        "next day (23:00 to 01:00)"
    )

    @field_validator("days")
    @classmethod
    def _days(cls, value: list[int]) -> list[int]:
        if not value or any(d < 0 or d > 6 for d in value):
            raise ValueError("days must be weekday numbers 0 (Monday) to 6 (Sunday)")
        return sorted(set(value))

    @field_validator("start", "end")
    @classmethod
    def _time(cls, value: str) -> str:
        if not _HHMM.match(value):
            raise ValueError("times must be HH:MM (24-hour)")
        return value

    @model_validator(mode="after")
    def _order(self) -> RestrictedWindow:
        if self.end == self.start:
            raise ValueError(
                "end must differ from start (an end before the start runs past midnight, "
                "e.g. 23:00 to 01:00)"
            )
        return self


class SelfRegistration(BaseModel):
    model_config = ConfigDict(extra="forbid")
    enabled: StrictBool = False
    case_type: str = "contact"
    owner_id: str | None = None
    welcome_text: dict[str, str] = Field(
        default_factory=dict, description="Language → reply to a JOIN that registered"
    )


# A stored CommCare API key is this prefix + a Fernet token (core.crypto); anything else
# given as ``api_key`` is a new key, encrypted on validation.
SECRET_PREFIX = "enc:v1:"  # noqa: S105 (a marker, not a secret)
# Serialise with this context to get what is stored (the encrypted key): every other dump
# (GET settings, the web form) shows ``api_key`` as null and ``api_key_set``.
STORE_CONTEXT = {"store": True}


class CommCareSettings(BaseModel):
    """The CommCare HQ project that casereach writes its own case changes back to (Case API
    v2). The API key is write-only: it is stored encrypted and read back as null, with
    ``api_key_set`` saying whether one is stored; leaving ``api_key`` out (or null) keeps it,
    ``""`` removes it."""

    model_config = ConfigDict(extra="forbid")
    url: str = Field(
        default="", description="HQ's base URL, e.g. https://www.commcarehq.org ('' = off)"
    )
    domain: str = Field(default="", description="The HQ project space (its URL name)")
    username: str = Field(default="", description="The HQ web user the API key belongs to")
    api_key: str | None = Field(
        default=None, description="Write-only: the user's HQ API key (always null when read)"
    )
    api_key_set: bool = Field(
        default=False, description="Read-only: whether an API key is stored (ignored on write)"
    )

    @model_validator(mode="before")
    @classmethod
    def _derived(cls, data: Any) -> Any:
        if isinstance(data, dict):
            data = {k: v for k, v in data.items() if k != "api_key_set"}
            key = data.get("api_key")
            data["api_key_set"] = bool(key)
        return data

    @field_validator("url")
    @classmethod
    def _url(cls, value: str) -> str:
        value = value.strip().rstrip("/")
        if value and not re.match(r"^https?://[^/\s]+(/[^\s]*)?$", value):
            raise ValueError("commcare.url must be an http:// or https:// URL")
        return value

    @field_validator("domain", "username")
    @classmethod
    def _plain(cls, value: str) -> str:
        value = value.strip()
        if len(value) > 255 or any(c.isspace() or c == "/" for c in value):
            raise ValueError("must be at most 255 characters, without spaces or slashes")
        return value

    @field_validator("api_key")
    @classmethod
    def _encrypt(cls, value: str | None) -> str | None:
        if not value or value.startswith(SECRET_PREFIX):
            return value or None
        if len(value) > 500:
            raise ValueError("api_key is longer than 500 characters")
        return SECRET_PREFIX + encrypt_json({"k": value})

    @field_serializer("api_key")
    def _hide(self, value: str | None, info: FieldSerializationInfo) -> str | None:
        context = info.context
        return value if isinstance(context, dict) and context.get("store") else None

    @property
    def configured(self) -> bool:
        return bool(self.url and self.domain and self.username and self.api_key)

    def plain_api_key(self) -> str:
        """The stored key in clear; ValueError when it cannot be decrypted."""
        if not self.api_key:
            return ""
        key = decrypt_json(self.api_key.removeprefix(SECRET_PREFIX)).get("k", "")
        return str(key)


def merge_settings(stored: dict[str, Any], changes: dict[str, Any]) -> dict[str, Any]:
    """``changes`` over ``stored`` (top-level keys), keeping the stored CommCare API key when
    the new ``commcare`` block leaves ``api_key`` out or null (it is never read back)."""
    merged = {**stored, **changes}
    new, old = changes.get("commcare"), stored.get("commcare")
    keep = isinstance(old, dict) and old.get("api_key")
    if isinstance(new, dict) and isinstance(old, dict) and new.get("api_key") is None and keep:
        merged["commcare"] = {**new, "api_key": old["api_key"]}
    return merged


# SPEC 6.3: the built-in reserved words, whatever a project adds (read by messaging.keywords).
OPT_OUT_WORDS = frozenset(
    {"STOP", "STOPALL", "UNSUBSCRIBE", "CANCEL", "END", "QUIT", "REVOKE", "OPTOUT"}
)
OPT_IN_WORDS = frozenset({"START", "UNSTOP"})
SILENT_OPT_IN_WORDS = frozenset({"YES"})
HELP_WORDS = frozenset({"HELP", "INFO"})
JOIN_WORD = "JOIN"  # self-registration
_BUILT_IN = {
    "opt_out_keywords": OPT_OUT_WORDS,
    "opt_in_keywords": OPT_IN_WORDS | SILENT_OPT_IN_WORDS,
    "help_keywords": HELP_WORDS,
}


# The channels a fallback chain may use (``messaging.chains``).
Channel = Literal["whatsapp", "sms", "email"]
CHANNELS: tuple[Channel, ...] = ("whatsapp", "sms", "email")


class ProjectSettings(BaseModel):
    """Project settings. Unknown keys are refused so a typo never passes silently."""

    model_config = ConfigDict(extra="forbid")

    time_zone: str = "UTC"
    languages: list[str] = Field(default_factory=lambda: ["en"])
    language_fallback: Literal["none", "alert", "project", "untranslated"] = "untranslated"
    default_gateway: str | None = None
    prefix_routes: dict[str, str] = Field(default_factory=dict)
    restricted_windows: list[RestrictedWindow] = Field(default_factory=list)
    daily_limit: int = Field(default=50_000, ge=0, le=100_000_000)
    stale_after_hours: int = Field(default=168, ge=1, le=24 * 365)
    retry_delays_minutes: list[int] = Field(default_factory=lambda: [5, 10])
    strict_phone_validation: StrictBool = False
    default_country: str | None = None
    currency: str = Field(
        default="USD",
        description="ISO 4217 code: message costs and the monthly budget are in it",
    )
    monthly_budget: Annotated[
        Decimal | None,
        # Documented (and shown on the settings page) as a decimal string; numbers pass too.
        WithJsonSchema({"anyOf": [{"type": "string"}, {"type": "null"}]}),
    ] = Field(
        default=None,
        ge=0,
        max_digits=14,
        decimal_places=6,
        description="At most this much of message cost per calendar month (in ``currency``; "
        "null = no budget): sending stops when it is reached, with a warning at 80%",
    )
    opt_out_keywords: dict[str, list[str]] = Field(default_factory=dict)
    opt_in_keywords: dict[str, list[str]] = Field(default_factory=dict)
    help_keywords: dict[str, list[str]] = Field(default_factory=dict)
    help_text: dict[str, str] = Field(default_factory=dict)
    default_inbound_response: dict[str, str] = Field(default_factory=dict)
    opt_out_reply: dict[str, str] = Field(
        default_factory=dict, description="Language → confirmation of an opt-out"
    )
    opt_in_reply: dict[str, str] = Field(
        default_factory=dict, description="Language → confirmation of an opt-in"
    )
    verification_text: dict[str, str] = Field(
        default_factory=dict, description="Language → the text asking a worker to reply 123"
    )
    verification_done_text: dict[str, str] = Field(
        default_factory=dict, description="Language → the confirmation of a verified number"
    )
    reply_loop_limit: int = Field(
        default=5,
        ge=1,
        le=1000,
        description="At most this many identical automatic replies to one number …",
    )
    reply_loop_minutes: int = Field(
        default=10, ge=1, le=24 * 60, description="… within this many minutes"
    )
    self_registration: SelfRegistration = Field(default_factory=SelfRegistration)
    channel_order: list[Channel] = Field(
        default_factory=list,
        description="Fallback chain: the channels a message to a contact tries, in order "
        "(e.g. whatsapp, sms, email); empty = every message goes on its own channel only",
    )
    fallback_after_minutes: dict[Channel, int] = Field(
        default_factory=dict,
        description="Channel → minutes without a delivery report before the chain moves on "
        "to the next channel (absent: only a failure moves it on)",
    )
    commcare: CommCareSettings = Field(
        default_factory=CommCareSettings,
        description="Write-back of casereach's own case changes to CommCare HQ",
    )

    @field_validator("time_zone")
    @classmethod
    def _zone(cls, value: str) -> str:
        canonical = canonical_zone(value)
        if canonical is None:
            raise ValueError(f"unknown time zone {value!r}; use an IANA name like Africa/Nairobi")
        return canonical

    @field_validator("languages")
    @classmethod
    def _languages(cls, value: list[str]) -> list[str]:
        cleaned = [v.strip() for v in value]
        if not cleaned:
            raise ValueError("at least one language is required")
        for code in cleaned:
            if not _LANG.match(code):
                raise ValueError(f"{code!r} is not a language code")
        if len(set(cleaned)) != len(cleaned):
            raise ValueError("languages must not repeat")
        return cleaned

    @field_validator("retry_delays_minutes")
    @classmethod
    def _delays(cls, value: list[int]) -> list[int]:
        if len(value) > 10 or any(d < 0 or d > 24 * 60 for d in value):
            raise ValueError("at most 10 delays, each 0 to 1440 minutes")
        return value

    @field_validator("channel_order")
    @classmethod
    def _order(cls, value: list[Channel]) -> list[Channel]:
        if len(set(value)) != len(value):
            raise ValueError("channel_order must not repeat a channel")
        return value

    @field_validator("fallback_after_minutes")
    @classmethod
    def _after(cls, value: dict[Channel, int]) -> dict[Channel, int]:
        for channel, minutes in value.items():
            if not 1 <= minutes <= 7 * 24 * 60:
                raise ValueError(f"fallback_after_minutes[{channel}] must be 1 to 10080 minutes")
        return value

    @field_validator("currency")
    @classmethod
    def _currency(cls, value: str) -> str:
        code = value.strip().upper()
        if not re.fullmatch(r"[A-Z]{3}", code):
            raise ValueError("currency must be a three-letter ISO 4217 code, e.g. USD or KES")
        return code

    @field_validator("default_country")
    @classmethod
    def _country(cls, value: str | None) -> str | None:
        if value is None or value.strip() == "":
            return None
        region = value.strip().upper()
        if region not in phonenumbers.SUPPORTED_REGIONS:
            raise ValueError(f"{value!r} is not an ISO 3166 country code known to libphonenumber")
        return str(region)

    @field_validator("prefix_routes")
    @classmethod
    def _prefixes(cls, value: dict[str, str]) -> dict[str, str]:
        for prefix in value:
            if not prefix.isdigit():
                raise ValueError(f"route prefix {prefix!r} must be digits")
        return value

    @field_validator("opt_out_keywords", "opt_in_keywords", "help_keywords")
    @classmethod
    def _keywords(cls, value: dict[str, list[str]]) -> dict[str, list[str]]:
        out: dict[str, list[str]] = {}
        for lang, words in value.items():
            cleaned = [w.strip().upper() for w in words if w.strip()]
            for w in cleaned:
                if " " in w:
                    raise ValueError(f"keyword {w!r} must be one word")
            out[lang] = cleaned
        return out

    @model_validator(mode="after")
    def _keywords_agree(self, info: ValidationInfo) -> ProjectSettings:
        """On save: a word means one thing (opt out, opt in or help, never a built-in word of
        another kind, never JOIN), in a language of the project."""
        if isinstance(info.context, dict) and info.context.get("stored"):
            return self  # saved before this check: still loads
        owner: dict[str, str] = {}
        for kind, built_in in _BUILT_IN.items():
            for word in built_in:
                owner[word] = kind
        for kind in _BUILT_IN:
            lists: dict[str, list[str]] = getattr(self, kind)
            for lang, words in lists.items():
                if lang not in self.languages:
                    raise ValueError(
                        f"{kind}: {lang!r} is not one of the project's languages "
                        f"({', '.join(self.languages)})"
                    )
                for word in words:
                    if word == JOIN_WORD:
                        raise ValueError(f"{kind}: JOIN is reserved for self-registration")
                    other = owner.setdefault(word, kind)
                    if other != kind:
                        raise ValueError(f"{kind}: {word} is already one of the {other}")
        return self


def effective_settings(raw: dict[str, Any]) -> ProjectSettings:
    """The stored settings with defaults filled in (stored values were validated on write;
    checks added since are not applied again, so old settings always load).

    A stored setting that no longer loads — text that is not valid UTF-8, a value of the wrong
    shape written around the API — is skipped (its default applies) and logged, so no stored
    value can stop inbound STOP or any other reader from working."""
    try:
        if first_bad_path(raw) is None:
            return ProjectSettings.model_validate(raw, context={"stored": True})
    except ValidationError:
        pass
    return _salvaged(raw)


def _salvaged(raw: dict[str, Any]) -> ProjectSettings:
    kept: dict[str, Any] = {}
    for key, value in raw.items():
        where = first_bad_path(value)
        if where is not None:
            log.warning("stored setting %s skipped: %s holds text that is not UTF-8", key, where)
        elif key in ProjectSettings.model_fields:
            kept[key] = value
    while True:
        try:
            return ProjectSettings.model_validate(kept, context={"stored": True})
        except ValidationError as exc:
            bad = {str(e["loc"][0]) for e in exc.errors() if e.get("loc")}
            bad &= set(kept)
            if not bad:  # a whole-model check: the defaults always load
                log.warning("stored settings skipped: %s", exc.errors()[0].get("msg", ""))
                return ProjectSettings()
            for key in sorted(bad):
                log.warning("stored setting %s skipped: it no longer validates", key)
                del kept[key]
