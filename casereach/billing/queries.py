"""Pricing: a message's fee from the dated fee table, converted to the project's currency.

Everything is read set-based: the whole fee table and every conversion rate are read once
per configuration generation and kept per process (``tables``), so pricing a batch of any
size (``estimate``) adds no query per message, and none at all once they are cached.

Which fee applies to a message (``FeeTable.fee``): the rows of its gateway, else the
server's rows for its gateway type; among those of its direction and unit, the longest
prefix its number starts with ("" matches any), and for that prefix the latest row whose
``valid_from`` is on or before the day the message was queued (UTC).
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from django.db.models import Q, QuerySet

from casereach.billing.models import SMS_SEGMENT, ConversionRate, Fee
from casereach.core.timeutil import now
from casereach.gateways.models import GatewayConfig
from casereach.gateways.queries import (
    GatewayIndex,
    gateway_index,
    global_routes,
    project_settings,
    route,
    visible_gateways,
)
from casereach.projects.cache import GenerationCache
from casereach.projects.models import Project
from casereach.projects.settings_schema import ProjectSettings

MICROS = Decimal(1_000_000)

# Message.cost_source: where a message's actual cost came from.
FROM_PROVIDER = "provider"  # the provider reported a price (Twilio's price, fetched)
FROM_FEE_TABLE = "fee_table"  # the provider reported a pricing category (WhatsApp)


def to_micros(amount: Decimal) -> int:
    """An amount as millionths of its currency, rounded half up."""
    return int((amount * MICROS).quantize(Decimal(1), rounding=ROUND_HALF_UP))


def from_micros(micros: int | None) -> str | None:
    """Millionths as a decimal string with six places (None stays None)."""
    if micros is None:
        return None
    return str((Decimal(micros) / MICROS).quantize(Decimal("0.000001")))


def project_currency(project: Project) -> str:
    return project_settings(project).currency


# A fee row as the table keeps it: (prefix, valid_from, amount, currency, id).
_Row = tuple[str, dt.date, Decimal, str, int]


@dataclass(frozen=True)
class FeeHit:
    amount: Decimal
    currency: str
    fee_id: int


class FeeTable:
    """The fees of some gateways (and of their types), read once."""

    def __init__(self, rows: Iterable[tuple[Any, ...]]) -> None:
        self._rows: dict[tuple[int | str, str, str], list[_Row]] = defaultdict(list)
        for pk, gw_id, gw_type, direction, prefix, unit, amount, currency, valid_from in rows:
            key: int | str = gw_id if gw_id is not None else gw_type
            self._rows[(key, direction, unit)].append(
                (prefix, valid_from, Decimal(amount), currency, pk)
            )
        for found in self._rows.values():
            # Longest prefix first; for one prefix, the latest date first.
            found.sort(key=lambda r: (-len(r[0]), -r[1].toordinal()))

    @property
    def empty(self) -> bool:
        return not self._rows

    def fee(
        self,
        gateway_id: int,
        gateway_type: str,
        direction: str,
        number: str,
        unit: str,
        day: dt.date,
    ) -> FeeHit | None:
        for key in (gateway_id, gateway_type):
            for prefix, valid_from, amount, currency, pk in self._rows.get(
                (key, direction, unit), ()
            ):
                if valid_from <= day and number.startswith(prefix):
                    return FeeHit(amount, currency, pk)
        return None


class Rates:
    """Conversion rates of some projects, read once: ``convert`` an amount to a project's
    currency on a day (the latest rate valid that day)."""

    def __init__(self, rows: Iterable[tuple[int, str, Decimal, dt.date]]) -> None:
        self._rows: dict[tuple[int, str], list[tuple[dt.date, Decimal]]] = defaultdict(list)
        for project_id, currency, rate, valid_from in rows:
            self._rows[(project_id, currency)].append((valid_from, Decimal(rate)))
        for found in self._rows.values():
            found.sort(key=lambda r: r[0], reverse=True)

    def convert(
        self, amount: Decimal, currency: str, project_id: int, to: str, day: dt.date
    ) -> Decimal | None:
        """``amount`` of ``currency`` in the project's currency ``to``; None without a rate."""
        if currency == to:
            return amount
        for valid_from, rate in self._rows.get((project_id, currency), ()):
            if valid_from <= day:
                return amount * rate
        return None


def unit_of(channel: str, payload: Any = None) -> str | None:
    """The fee unit of an outbound message: an SMS segment; a WhatsApp message is priced by
    its template's category (``payload.template.category``), a free-text one as ``service``;
    email has no fee."""
    if channel == "sms":
        return SMS_SEGMENT
    if channel == "whatsapp":
        template = payload.get("template") if isinstance(payload, dict) else None
        category = template.get("category") if isinstance(template, dict) else None
        return str(category) if category else "service"
    return None


def _day(stamp: Any) -> dt.date:
    if isinstance(stamp, dt.datetime):
        return stamp.astimezone(dt.UTC).date() if stamp.tzinfo else stamp.date()
    return now().date()


_COLUMNS = (
    "pk",
    "gateway_id",
    "gateway_type",
    "direction",
    "prefix",
    "unit",
    "amount",
    "currency",
    "valid_from",
)
# Per process, under the configuration generation (projects.cache): the whole fee table and
# every conversion rate (each writer in ``billing.actions`` bumps the generation), so pricing
# a batch reads nothing once they are loaded.
_TABLES: GenerationCache[str, tuple[FeeTable, Rates]] = GenerationCache()


def tables() -> tuple[FeeTable, Rates]:
    """The fee table and the conversion rates, cached per configuration generation."""

    def load() -> tuple[FeeTable, Rates]:
        rates = ConversionRate.objects.values_list("project_id", "currency", "rate", "valid_from")
        return FeeTable(Fee.objects.values_list(*_COLUMNS)), Rates(rates)

    return _TABLES.get("all", load)


def estimate(drafts: Sequence[Any], projects: Mapping[int, Project] | None = None) -> None:
    """Set ``estimated_cost_micros`` and ``cost_currency`` on each queued outbound message
    (drafts or instances; ``messaging.log`` calls it before its INSERT): its fee for its
    gateway — the one it names, else the one routing picks for its number — times its units
    (segments), in its project's currency. A fixed number of queries per batch, whatever its
    size (none once the fee table and the project's gateways are cached)."""
    todo = [
        d
        for d in drafts
        if d.direction == "out"
        and d.status == "queued"
        and d.project_id is not None
        and unit_of(d.channel, _payload(d)) is not None
    ]
    if not todo:
        return
    fees, rates = tables()
    if fees.empty:
        return
    wanted = {d.project_id for d in todo}
    known = dict(projects or {})
    if wanted - set(known):
        known.update(Project.objects.in_bulk(sorted(wanted - set(known))))
    routes = global_routes()
    types: dict[int, str] = {}
    # Per project, read once for the batch: its gateways and its settings.
    reads: dict[int, tuple[GatewayIndex, ProjectSettings]] = {}
    chosen: list[tuple[Any, int]] = []
    for d in todo:
        project = known.get(d.project_id)
        if project is None:
            continue
        read = reads.get(project.pk)
        if read is None:
            read = reads[project.pk] = (gateway_index(project), project_settings(project))
            types.update((g.pk, g.type) for g in read[0].values())
        gw_id = d.gateway_id
        if gw_id is None:
            found = route(project, d.phone_number, routes=routes, index=read[0], settings=read[1])
            gw_id = found.gateway.pk if found.gateway is not None else None
        if gw_id is not None:
            chosen.append((d, gw_id))
    missing = {gw for _, gw in chosen if gw not in types}
    if missing:
        types.update(GatewayConfig.objects.filter(pk__in=missing).values_list("pk", "type"))
    for d, gw in chosen:
        if gw in types:
            currency = reads[d.project_id][1].currency
            _price_one(d, gw, types[gw], d.project_id, currency, fees, rates)


def _payload(d: Any) -> Any:
    return d.__dict__.get("payload")


def _price_one(
    d: Any, gw: int, gw_type: str, project_id: int, currency: str, fees: FeeTable, rates: Rates
) -> None:
    day = _day(d.created_on)
    unit = unit_of(d.channel, _payload(d)) or SMS_SEGMENT
    hit = fees.fee(gw, gw_type, "out", d.phone_number, unit, day)
    if hit is None:
        return
    amount = hit.amount * (max(d.segments or 0, 1) if unit == SMS_SEGMENT else 1)
    converted = rates.convert(amount, hit.currency, project_id, currency, day)
    if converted is not None:
        d.estimated_cost_micros, d.cost_currency = to_micros(converted), currency


def price_of(
    project: Project, amount: Decimal, currency: str, day: dt.date
) -> tuple[int, str] | None:
    """A provider's price (its sign ignored: Twilio reports "-0.0075") in the project's
    currency, as (micros, currency); None without a conversion rate."""
    to = project_currency(project)
    converted = tables()[1].convert(abs(amount), currency.upper(), project.pk, to, day)
    return None if converted is None else (to_micros(converted), to)


def category_price(
    project: Project, gateway: GatewayConfig, number: str, category: str, day: dt.date
) -> tuple[int, str] | None:
    """A WhatsApp message of ``category`` priced from the fee table, in the project's
    currency; None when no fee (or no rate) applies."""
    hit = tables()[0].fee(gateway.pk, gateway.type, "out", number, category, day)
    if hit is None:
        return None
    return price_of(project, hit.amount, hit.currency, day)


# -- the fee table as the API shows it -------------------------------------------------------


def fees_for(project: Project) -> QuerySet[Fee]:
    """The fees that apply to this project's gateways: those of the gateways it may use, and
    the server's defaults per gateway type."""
    ids = visible_gateways(project).values("pk")
    return (
        Fee.objects.filter(Q(gateway_id__in=ids) | Q(gateway__isnull=True))
        .select_related("gateway")
        .order_by("gateway_type", "gateway_id", "direction", "unit", "prefix", "valid_from", "pk")
    )


def rates_for(project: Project) -> QuerySet[ConversionRate]:
    return ConversionRate.objects.filter(project=project).order_by("currency", "valid_from", "pk")


def is_used(valid_from: dt.date, today: dt.date | None = None) -> bool:
    """A row is used from its date on: messages queued that day may have been priced with it."""
    return valid_from <= (today or now().date())
