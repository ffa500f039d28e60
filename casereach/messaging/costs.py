"""What messages cost (ADR 0013): actual costs recorded from providers, Twilio's price fetched
after the final status, and the totals the API, the dashboard and the monthly budget read.

Costs are kept in millionths of the project's currency (``Message.cost_currency``); a total
counts each message's actual cost where known, else its estimate.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections import defaultdict
from decimal import Decimal, InvalidOperation
from typing import Any
from zoneinfo import ZoneInfo

from django.db.models import Count, F, Q, QuerySet, Sum
from django.db.models.functions import Coalesce, TruncDate

from casereach.billing.queries import (
    FROM_FEE_TABLE,
    FROM_PROVIDER,
    category_price,
    from_micros,
    price_of,
)
from casereach.core.timeutil import now
from casereach.gateways.base import Gateway, StatusUpdate
from casereach.gateways.models import GatewayConfig
from casereach.gateways.queries import instantiate, project_settings
from casereach.gateways.registry import gateway_class
from casereach.messaging import log as message_log
from casereach.messaging.models import Message
from casereach.messaging.queries import ALERT_SOURCES
from casereach.projects.models import Project
from casereach.projects.settings_schema import ProjectSettings

log = logging.getLogger(__name__)

# How long after its final status a provider's price is asked for, at most; the waits
# between asks grow with the message's age (half of it, 30 seconds to an hour).
PRICE_WAIT = dt.timedelta(hours=24)
PRICE_BATCH = 200
BUDGET_WARNING = Decimal("0.8")


def fetches_price(gw: GatewayConfig) -> bool:
    """Whether the gateway's type tells a message's price on request (Twilio)."""
    try:
        cls = gateway_class(gw.type)
    except (KeyError, ValueError):
        return False
    return cls.fetch_price is not Gateway.fetch_price


def record_reported_price(gw: GatewayConfig, message_id: str, update: StatusUpdate) -> bool:
    """A status that carries a price (or a WhatsApp pricing category, priced from the fee
    table) sets the message's actual cost. True when it did."""
    if update.price is None and not update.pricing_category:
        return False
    row = (
        Message.objects.filter(id=message_id)
        .values("project_id", "phone_number", "created_on")
        .first()
    )
    if row is None or row["project_id"] is None:
        return False
    project = Project.objects.get(pk=row["project_id"])
    day = row["created_on"].astimezone(dt.UTC).date()
    priced: tuple[int, str] | None = None
    source = FROM_PROVIDER
    if update.price is not None:
        amount = _decimal(update.price)
        currency = update.price_currency or project_settings(project).currency
        priced = price_of(project, amount, currency, day) if amount is not None else None
    elif update.pricing_category:
        priced = category_price(project, gw, row["phone_number"], update.pricing_category, day)
        source = FROM_FEE_TABLE
    if priced is None:
        return False
    message_log.set_actual_costs([(message_id, priced[0], priced[1], source)])
    return True


def _decimal(text: str) -> Decimal | None:
    try:
        value = Decimal(text.strip())
    except (InvalidOperation, AttributeError):
        return None
    return value if value.is_finite() else None


def fetch_due_prices(at: dt.datetime | None = None, limit: int = PRICE_BATCH) -> int:
    """Ask providers for the prices now due (``price_due_at``), a batch at a time: one read,
    one gateway object per gateway, one call per message (the provider's API is per
    message), then one statement set for the prices found and one for the next asks.
    Returns how many were asked (``serve``'s loop and the ``casereach.fetch_prices`` task)."""
    at = at or now()
    due = Message.objects.filter(price_due_at__lte=at).order_by("price_due_at")
    columns = ("id", "project_id", "gateway_id", "provider_id", "delivered_on", "failed_on")
    rows = [dict(r) for r in due.values(*columns)[:limit]]
    if not rows:
        return 0
    gateways = GatewayConfig.objects.in_bulk({r["gateway_id"] for r in rows if r["gateway_id"]})
    projects = Project.objects.in_bulk({r["project_id"] for r in rows if r["project_id"]})
    found: list[tuple[str, int, str, str]] = []
    later: list[tuple[str, dt.datetime | None]] = []
    by_gateway: dict[int | None, list[dict[str, Any]]] = defaultdict(list)
    for r in rows:
        by_gateway[r["gateway_id"]].append(r)
    for gw_id, group in by_gateway.items():
        cfg = gateways.get(gw_id) if gw_id is not None else None
        gateway = _gateway(cfg)
        try:
            for r in group:
                price = None
                if gateway is not None and r["provider_id"]:
                    try:
                        price = gateway.fetch_price(r["provider_id"])
                    except Exception:  # a provider's surprise must not stop the batch
                        log.exception("fetching the price of message %s failed", r["id"])
                project = projects.get(r["project_id"])
                priced = None
                if price is not None and project is not None:
                    amount = _decimal(price[0])
                    currency = price[1] or project_settings(project).currency
                    if amount is not None:
                        priced = price_of(project, amount, currency, at.date())
                if priced is not None:
                    found.append((r["id"], priced[0], priced[1], FROM_PROVIDER))
                else:
                    later.append((r["id"], _next_ask(r, at, gateway is not None and price is None)))
        finally:
            if gateway is not None:
                gateway.close()
    message_log.set_actual_costs(found)
    message_log.set_price_due(later)
    return len(rows)


def _gateway(cfg: GatewayConfig | None) -> Gateway | None:
    if cfg is None or not fetches_price(cfg):
        return None
    try:
        return instantiate(cfg)
    except Exception:  # a config that no longer validates: no price from it
        log.exception("gateway %s cannot be built to fetch prices", cfg.name)
        return None


def _next_ask(row: dict[str, Any], at: dt.datetime, may_come: bool) -> dt.datetime | None:
    """When to ask again: never once PRICE_WAIT has passed since the final status (or when
    the answer will not change: no gateway, no rate), else after half the message's age."""
    final = row["delivered_on"] or row["failed_on"] or at
    age = at - final
    if not may_come or age >= PRICE_WAIT:
        return None
    wait = min(max(age / 2, dt.timedelta(seconds=30)), dt.timedelta(hours=1))
    return at + wait


# -- totals ---------------------------------------------------------------------------------


COST = Coalesce(F("actual_cost_micros"), F("estimated_cost_micros"))


def _costed(qs: QuerySet[Message], currency: str) -> QuerySet[Message]:
    return qs.filter(direction="out", cost_currency=currency)


def totals(qs: QuerySet[Message], currency: str) -> dict[str, Any]:
    """Estimated and actual totals of some messages, and the cost (actual where known, else
    estimated), as decimal strings in ``currency``."""
    agg = _costed(qs, currency).aggregate(
        estimated=Sum("estimated_cost_micros"),
        actual=Sum("actual_cost_micros"),
        cost=Sum(COST),
        priced=Count("id", filter=Q(actual_cost_micros__isnull=False)),
    )
    return {
        "currency": currency,
        "estimated": from_micros(agg["estimated"] or 0),
        "actual": from_micros(agg["actual"] or 0),
        "cost": from_micros(agg["cost"] or 0),
        "messages_with_actual_cost": agg["priced"],
    }


def month_start(s: ProjectSettings, at: dt.datetime) -> dt.datetime:
    """The start of the project's calendar month (in its time zone), in UTC."""
    local = at.astimezone(ZoneInfo(s.time_zone))
    first = local.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    return first.astimezone(dt.UTC)


def month_cost_micros(project: Project, s: ProjectSettings, at: dt.datetime) -> int:
    """What the project's messages sent this month cost (actual, else estimated)."""
    qs = Message.objects.filter(project=project, sent_on__gte=month_start(s, at))
    total = _costed(qs, s.currency).aggregate(t=Sum(COST))["t"]
    return int(total or 0)


def budget_status(project: Project, at: dt.datetime | None = None) -> dict[str, Any] | None:
    """The monthly budget as the project API and the dashboard show it; None without one."""
    s = project_settings(project)
    if s.monthly_budget is None:
        return None
    at = at or now()
    spent = Decimal(month_cost_micros(project, s, at)) / Decimal(1_000_000)
    budget = s.monthly_budget
    share = spent / budget if budget else Decimal(1)
    return {
        "amount": str(budget.quantize(Decimal("0.000001"))),
        "currency": s.currency,
        "month_start": month_start(s, at).isoformat(),
        "spent": str(spent.quantize(Decimal("0.000001"))),
        "percent": float((share * 100).quantize(Decimal("0.1"))),
        "warning": share >= BUDGET_WARNING,
        "reached": share >= 1,
    }


def cost_by_day_and_gateway(project: Project, since: dt.datetime) -> dict[str, Any]:
    """Costs of the project's outbound messages queued since ``since``: per UTC day and per
    gateway, each with estimated, actual and cost (actual else estimated) and a count."""
    qs = Message.objects.filter(project=project, created_on__gte=since)
    return breakdown(qs, project_settings(project).currency)


def breakdown(messages: QuerySet[Message], currency: str) -> dict[str, Any]:
    """Totals of some messages, per UTC day (queued) and per gateway."""
    qs = _costed(messages, currency)
    sums = {
        "estimated": Sum("estimated_cost_micros"),
        "actual": Sum("actual_cost_micros"),
        "cost": Sum(COST),
        "messages": Count("id"),
    }
    days = qs.annotate(day=TruncDate("created_on")).values("day").annotate(**sums).order_by("day")
    gws = qs.values("gateway_name").annotate(**sums).order_by("gateway_name")
    return {
        "currency": currency,
        "total": totals(messages, currency),
        "per_day": [{"day": str(r["day"]), **_money(dict(r))} for r in days],
        "per_gateway": [{"gateway": r["gateway_name"] or None, **_money(dict(r))} for r in gws],
    }


def _money(row: dict[str, Any]) -> dict[str, Any]:
    return {
        "estimated": from_micros(row["estimated"] or 0),
        "actual": from_micros(row["actual"] or 0),
        "cost": from_micros(row["cost"] or 0),
        "messages": row["messages"],
    }


def cost_fields(row: Any) -> dict[str, Any]:
    """A message's cost as the APIs show it (a model instance or a values() dict)."""
    get = row.get if isinstance(row, dict) else lambda k: getattr(row, k)
    return {
        "estimated_cost": from_micros(get("estimated_cost_micros")),
        "actual_cost": from_micros(get("actual_cost_micros")),
        "cost_currency": get("cost_currency") or None,
        "cost_source": get("cost_source") or None,
    }


COST_COLUMNS: tuple[str, ...] = (
    "estimated_cost_micros",
    "actual_cost_micros",
    "cost_currency",
    "cost_source",
)


def alert_cost(project: Project, alert_id: int) -> dict[str, Any]:
    """What an alert's messages cost so far (estimated, actual, cost), in the project's
    currency."""
    qs = Message.objects.filter(
        project=project, event__source__in=ALERT_SOURCES, event__source_id=str(alert_id)
    )
    return totals(qs, project_settings(project).currency)
