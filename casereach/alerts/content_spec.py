"""What an alert sends (``AlertSpec.content``): a message's texts, or a survey to start."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SerializerFunctionWrapHandler,
    model_serializer,
    model_validator,
)


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class EmailContent(_Strict):
    subject: dict[str, str] = Field(default_factory=dict)
    body: dict[str, str] = Field(default_factory=dict)


class WhatsAppContent(_Strict):
    """A WhatsApp alert's content: free text per language (sent inside the 24-hour window)
    and/or an approved template (sent outside it), its {{n}} variables from ``params``
    (placeholders such as ``{case.name}`` allowed). ``{lang: text}`` alone is the shorthand
    for ``{"text": {lang: text}}``."""

    text: dict[str, str] = Field(default_factory=dict)
    template: str = Field(default="", pattern=r"^[a-z0-9_]{0,512}$")
    params: list[str] = Field(default_factory=list, max_length=20)

    @model_validator(mode="before")
    @classmethod
    def _shorthand(cls, data: Any) -> Any:
        if isinstance(data, dict) and not ({"text", "template", "params"} & set(data)):
            return {"text": data}
        return data

    @model_validator(mode="after")
    def _some(self) -> WhatsAppContent:
        if self.params and not self.template:
            raise ValueError("content.whatsapp.params go with a template")
        return self


MAX_SURVEY_ID = 2**63 - 1


class Content(_Strict):
    """What an alert sends: a message (``sms`` / ``email`` texts) or, with ``type: "survey"``,
    a survey started for each recipient (``survey_id``; no texts needed)."""

    type: Literal["message", "survey"] = "message"
    survey_id: int | None = Field(default=None, ge=1, le=MAX_SURVEY_ID)
    sms: dict[str, str] = Field(default_factory=dict)
    email: EmailContent | None = None
    whatsapp: WhatsAppContent | None = None

    @model_validator(mode="after")
    def _kind(self) -> Content:
        if self.type == "survey" and self.survey_id is None:
            raise ValueError("survey content needs survey_id (the survey to start)")
        if self.type == "message" and self.survey_id is not None:
            raise ValueError("survey_id goes with type 'survey'")
        return self

    @model_serializer(mode="wrap")
    def _dump(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        out: dict[str, Any] = handler(self)
        if out.get("survey_id") is None:
            out.pop("survey_id", None)  # a message has none: not shown as null
        if out.get("whatsapp") is None:
            out.pop("whatsapp", None)  # SMS and email alerts: shown as before
        return out

    @property
    def is_survey(self) -> bool:
        return self.type == "survey"


__all__ = ["MAX_SURVEY_ID", "Content", "EmailContent", "WhatsAppContent"]
