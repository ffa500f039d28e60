"""The fee table and conversion rates under ``/a/{project}/api/messaging/v1/`` (a project's
own gateways, its rates) and ``/api/admin/v1/`` (global gateways and per-type defaults)."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from django.http import HttpRequest, JsonResponse
from ninja import Router

from casereach.billing.actions import (
    do_add_fee,
    do_add_rate,
    do_retire_fee,
    do_retire_rate,
    do_update_fee,
)
from casereach.billing.models import ConversionRate, Fee
from casereach.billing.queries import fees_for, is_used, rates_for
from casereach.core.errors import NotFound
from casereach.core.openapi import ApiError, OpenSchema
from casereach.core.requests import json_body
from casereach.core.timeutil import now
from casereach.gateways.queries import MAX_ID, global_gateway, owned_gateway
from casereach.projects.auth import project_for, requires, requires_system_admin
from casereach.projects.models import Project, Role

router = Router(tags=["costs"])
BASE = "/a/{project}/api/messaging/v1"
ADMIN = "/api/admin/v1"

AUTH_ERRORS: dict[int, Any] = {401: ApiError, 403: ApiError, 429: ApiError}
ERRORS: dict[int, Any] = {400: ApiError, **AUTH_ERRORS}
NOT_FOUND: dict[int, Any] = {404: ApiError}
CONFLICT: dict[int, Any] = {409: ApiError}

FEE_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {
                "schema": {
                    "type": "object",
                    "required": ["amount", "currency", "valid_from"],
                    "properties": {
                        "direction": {"type": "string", "enum": ["out", "in"]},
                        "prefix": {"type": "string", "description": "digits; '' = any"},
                        "unit": {
                            "type": "string",
                            "enum": [
                                "sms_segment",
                                "marketing",
                                "utility",
                                "authentication",
                                "service",
                                "referral_conversion",
                            ],
                        },
                        "amount": {"type": "string", "description": "a decimal, e.g. 0.0075"},
                        "currency": {"type": "string", "description": "ISO 4217"},
                        "valid_from": {"type": "string", "format": "date"},
                    },
                }
            }
        },
    }
}
RATE_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {
                "schema": {
                    "type": "object",
                    "required": ["currency", "rate", "valid_from"],
                    "properties": {
                        "currency": {"type": "string", "description": "ISO 4217"},
                        "rate": {
                            "type": "string",
                            "description": "one unit of currency in the project's currency",
                        },
                        "valid_from": {"type": "string", "format": "date"},
                    },
                }
            }
        },
    }
}


class FeeOut(OpenSchema):
    id: int
    gateway_id: int | None
    gateway: str | None
    gateway_type: str
    direction: str
    prefix: str
    unit: str
    amount: str
    currency: str
    valid_from: str
    used: bool


class FeeList(OpenSchema):
    objects: list[FeeOut]


class RateOut(OpenSchema):
    id: int
    currency: str
    rate: str
    valid_from: str
    used: bool


class RateList(OpenSchema):
    objects: list[RateOut]


class Retired(OpenSchema):
    id: int
    retired: bool


def serialize_fee(fee: Fee) -> dict[str, Any]:
    gw = fee.gateway
    return {
        "id": fee.pk,
        "gateway_id": fee.gateway_id,
        "gateway": gw.name if gw is not None else None,
        "gateway_type": gw.type if gw is not None else fee.gateway_type,
        "direction": fee.direction,
        "prefix": fee.prefix,
        "unit": fee.unit,
        "amount": str(Decimal(fee.amount).quantize(Decimal("0.000001"))),
        "currency": fee.currency,
        "valid_from": fee.valid_from.isoformat(),
        "used": is_used(fee.valid_from, now().date()),
    }


def serialize_rate(rate: ConversionRate) -> dict[str, Any]:
    return {
        "id": rate.pk,
        "currency": rate.currency,
        "rate": str(Decimal(rate.rate).quantize(Decimal("0.00000001"))),
        "valid_from": rate.valid_from.isoformat(),
        "used": is_used(rate.valid_from, now().date()),
    }


def _own_fee(project: Project, fee_id: int) -> Fee:
    fee = (
        Fee.objects.filter(gateway__project=project, pk=fee_id).select_related("gateway").first()
        if 0 < fee_id <= MAX_ID
        else None
    )
    if fee is None:
        raise NotFound(f"fee {fee_id} not found among this project's gateways")
    return fee


def _own_rate(project: Project, rate_id: int) -> ConversionRate:
    rate = (
        ConversionRate.objects.filter(project=project, pk=rate_id).first()
        if 0 < rate_id <= MAX_ID
        else None
    )
    if rate is None:
        raise NotFound(f"conversion rate {rate_id} not found in this project")
    return rate


@router.api_operation(
    ["GET"],
    BASE + "/fees",
    operation_id="fees_list",
    summary="The fee table of the gateways this project may use, and the per-type defaults",
    response={200: FeeList, **AUTH_ERRORS},
)
@requires(Role.VIEWER)
def fees_list(request: HttpRequest, project: str) -> JsonResponse:
    proj = project_for(request, project)
    return JsonResponse({"objects": [serialize_fee(f) for f in fees_for(proj)]})


@router.api_operation(
    ["POST"],
    BASE + "/gateways/{gateway_id}/fees",
    operation_id="fees_add",
    summary="Add a dated fee row for one of this project's gateways (admin)",
    response={201: FeeOut, **ERRORS, **NOT_FOUND, **CONFLICT},
    openapi_extra=FEE_BODY,
)
@requires(Role.ADMIN)
def fees_add(request: HttpRequest, project: str, gateway_id: int) -> JsonResponse:
    proj = project_for(request, project)
    gw = owned_gateway(proj, gateway_id)
    fee = do_add_fee(json_body(request), gateway=gw)
    return JsonResponse(serialize_fee(fee), status=201)


@router.api_operation(
    ["PUT"],
    BASE + "/fees/{fee_id}",
    operation_id="fees_update",
    summary="Change a fee row whose date has not come (409 once in use)",
    response={200: FeeOut, **ERRORS, **NOT_FOUND, **CONFLICT},
    openapi_extra=FEE_BODY,
)
@requires(Role.ADMIN)
def fees_update(request: HttpRequest, project: str, fee_id: int) -> JsonResponse:
    proj = project_for(request, project)
    fee = do_update_fee(_own_fee(proj, fee_id), json_body(request))
    return JsonResponse(serialize_fee(fee))


@router.api_operation(
    ["DELETE"],
    BASE + "/fees/{fee_id}",
    operation_id="fees_retire",
    summary="Retire a fee row never used (409 once in use)",
    response={200: Retired, **ERRORS, **NOT_FOUND, **CONFLICT},
)
@requires(Role.ADMIN)
def fees_retire(request: HttpRequest, project: str, fee_id: int) -> JsonResponse:
    proj = project_for(request, project)
    do_retire_fee(_own_fee(proj, fee_id))
    return JsonResponse({"id": fee_id, "retired": True})


@router.api_operation(
    ["GET"],
    BASE + "/conversion-rates",
    operation_id="conversion_rates_list",
    summary="Conversion rates to this project's currency",
    response={200: RateList, **AUTH_ERRORS},
)
@requires(Role.VIEWER)
def rates_list(request: HttpRequest, project: str) -> JsonResponse:
    proj = project_for(request, project)
    return JsonResponse({"objects": [serialize_rate(r) for r in rates_for(proj)]})


@router.api_operation(
    ["POST"],
    BASE + "/conversion-rates",
    operation_id="conversion_rates_add",
    summary="Add a dated conversion rate (admin)",
    response={201: RateOut, **ERRORS, **CONFLICT},
    openapi_extra=RATE_BODY,
)
@requires(Role.ADMIN)
def rates_add(request: HttpRequest, project: str) -> JsonResponse:
    proj = project_for(request, project)
    return JsonResponse(serialize_rate(do_add_rate(proj, json_body(request))), status=201)


@router.api_operation(
    ["DELETE"],
    BASE + "/conversion-rates/{rate_id}",
    operation_id="conversion_rates_retire",
    summary="Retire a conversion rate never used (409 once in use)",
    response={200: Retired, **ERRORS, **NOT_FOUND, **CONFLICT},
)
@requires(Role.ADMIN)
def rates_retire(request: HttpRequest, project: str, rate_id: int) -> JsonResponse:
    proj = project_for(request, project)
    do_retire_rate(_own_rate(proj, rate_id))
    return JsonResponse({"id": rate_id, "retired": True})


# -- the system administrator's: global gateways and per-type defaults -----------------------


@router.api_operation(
    ["GET"],
    ADMIN + "/fees",
    operation_id="admin_fees_list",
    summary="Fees of the global gateways and the per-type defaults (system administrator)",
    response={200: FeeList, **AUTH_ERRORS},
)
@requires_system_admin()
def admin_fees_list(request: HttpRequest) -> JsonResponse:
    fees = (
        Fee.objects.filter(gateway__isnull=True)
        | Fee.objects.filter(gateway__project__isnull=True, gateway__isnull=False)
    ).select_related("gateway")
    ordered = fees.order_by("gateway_type", "gateway_id", "direction", "unit", "prefix", "pk")
    return JsonResponse({"objects": [serialize_fee(f) for f in ordered]})


@router.api_operation(
    ["POST"],
    ADMIN + "/gateway-types/{gateway_type}/fees",
    operation_id="admin_type_fees_add",
    summary="Add a default fee for every gateway of a type (system administrator)",
    response={201: FeeOut, **ERRORS, **CONFLICT},
    openapi_extra=FEE_BODY,
)
@requires_system_admin()
def admin_type_fees_add(request: HttpRequest, gateway_type: str) -> JsonResponse:
    fee = do_add_fee(json_body(request), gateway_type=gateway_type)
    return JsonResponse(serialize_fee(fee), status=201)


@router.api_operation(
    ["POST"],
    ADMIN + "/gateways/{gateway_id}/fees",
    operation_id="admin_gateway_fees_add",
    summary="Add a fee for a global gateway (system administrator)",
    response={201: FeeOut, **ERRORS, **NOT_FOUND, **CONFLICT},
    openapi_extra=FEE_BODY,
)
@requires_system_admin()
def admin_gateway_fees_add(request: HttpRequest, gateway_id: int) -> JsonResponse:
    fee = do_add_fee(json_body(request), gateway=global_gateway(gateway_id))
    return JsonResponse(serialize_fee(fee), status=201)


@router.api_operation(
    ["DELETE"],
    ADMIN + "/fees/{fee_id}",
    operation_id="admin_fees_retire",
    summary="Retire a global or per-type fee never used (system administrator)",
    response={200: Retired, **ERRORS, **NOT_FOUND, **CONFLICT},
)
@requires_system_admin()
def admin_fees_retire(request: HttpRequest, fee_id: int) -> JsonResponse:
    fee = (
        Fee.objects.filter(pk=fee_id, gateway__project__isnull=True).first()
        if 0 < fee_id <= MAX_ID
        else None
    )
    if fee is None:
        raise NotFound(f"no global or per-type fee {fee_id}")
    do_retire_fee(fee)
    return JsonResponse({"id": fee_id, "retired": True})
