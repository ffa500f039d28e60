"""The ``smpp`` gateway's config: the SMSC connection and the account's addressing."""

from __future__ import annotations

import re

from pydantic import BaseModel, ConfigDict, Field, field_validator

from casereach.gateways import addresses
from casereach.gateways.base import max_in_flight_field

PRINTABLE = re.compile(r"^[\x20-\x7e]*$")


class SmppConfig(BaseModel):
    """Connection and addressing settings of one SMPP account."""

    model_config = ConfigDict(extra="forbid")

    host: str = Field(description="SMSC host name or IP address")
    port: int = Field(2775, ge=1, le=65535)
    system_id: str = Field(description="account name given by the SMSC operator")
    password: str = ""
    system_type: str = ""
    source_addr: str = Field("", description="default sender (number or alphanumeric id)")
    source_ton: int = Field(1, description="type of number: 1 international, 5 alphanumeric")
    source_npi: int = Field(1, description="numbering plan: 1 ISDN/E.164, 0 unknown")
    dest_ton: int = 1
    dest_npi: int = 1
    window: int = Field(10, ge=1, le=1000, description="max submit_sm awaiting a response")
    # At most ``window`` (the session's submit_sm awaiting a response), whatever it says.
    max_in_flight: int = max_in_flight_field(10)
    enquire_link_s: float = Field(30.0, gt=0, le=3600)
    bind_timeout_s: float = Field(10.0, gt=0, le=300)
    response_timeout_s: float = Field(10.0, gt=0, le=300)
    reconnect_delay_s: float = Field(5.0, ge=0, le=3600)
    registered_delivery: bool = True

    @field_validator("host")
    @classmethod
    def _host(cls, value: str) -> str:
        value = value.strip()
        if not value or "://" in value or " " in value or "/" in value:
            raise ValueError("host must be a bare host name or IP address, like smsc.example.org")
        return addresses.check_host(value)

    @field_validator("system_id")
    @classmethod
    def _system_id(cls, value: str) -> str:
        return _c_string(value, 15, "system_id")

    @field_validator("password")
    @classmethod
    def _password(cls, value: str) -> str:
        return _c_string(value, 8, "password")

    @field_validator("system_type")
    @classmethod
    def _system_type(cls, value: str) -> str:
        return _c_string(value, 12, "system_type")

    @field_validator("source_addr")
    @classmethod
    def _source_addr(cls, value: str) -> str:
        return _c_string(value, 20, "source_addr")

    @field_validator("source_ton", "dest_ton")
    @classmethod
    def _ton(cls, value: int) -> int:
        if not 0 <= value <= 6:
            raise ValueError("type of number (TON) must be 0-6: 1 international, 5 alphanumeric")
        return value

    @field_validator("source_npi", "dest_npi")
    @classmethod
    def _npi(cls, value: int) -> int:
        if value not in (0, 1, 3, 4, 6, 8, 9, 10, 14, 18):
            raise ValueError("numbering plan (NPI) must be an SMPP 3.4 value: 0 unknown, 1 E.164")
        return value


def _c_string(value: str, limit: int, name: str) -> str:
    if name == "system_id" and not value:
        raise ValueError("system_id is required (the account name given by the SMSC operator)")
    if not PRINTABLE.match(value):
        raise ValueError(f"{name} must be printable ASCII")
    if len(value) > limit:
        raise ValueError(f"SMPP 3.4 allows at most {limit} characters in {name}")
    return value
