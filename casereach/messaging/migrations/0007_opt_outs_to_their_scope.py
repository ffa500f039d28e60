"""Move today's global opt-outs to the scope they came from (issue 15).

A row records its number, its state and a ``source``; the message log tells where it came from.
Each row goes, in this order of preference, to:

- ``keyword:<gateway>`` (the person's STOP, START or YES): the gateway that received the
  person's latest opt-out/opt-in message with that name. A global gateway's → that gateway's
  scope; a project's gateway → the owner's project scope (shares are offers not yet accepted
  after gateways 0002, so no other project is served by it). The test phone's messages are
  stamped with their project: a test gateway's row goes to that project.
- ``gateway`` / ``gateway:<gateway>`` (the provider said the person opted out): the gateway of
  the latest message to the number that the provider refused with PHONE_NUMBER_OPTED_OUT,
  mapped the same way.
- ``admin:<username>``: the projects that know the number (a contact's number, or traffic with
  it) in which that username holds an API key or a membership.
- Anything not resolved above — the conservative choice, as a person's STOP must never be lost:
  every project that knows the number, and every project when none does.

The person's STOP keeps ``can_opt_in = false`` in every scope it is copied to.
"""

from collections import defaultdict

from django.db import migrations
from django.db.models import Q

CHUNK = 500


def _targets_for_gateway(gw_id, gateways, message_project):
    """(project_id, gateway_id) scopes of a STOP received or reported through a gateway."""
    gw = gateways.get(gw_id)
    if gw is None:
        return []
    owner, gw_type = gw
    if gw_type == "test" and message_project is not None:
        return [(message_project, None)]  # the test phone acts as the project's own gateway
    if owner is None:
        return [(None, gw_id)]
    return [(owner, None)]


def forwards(apps, schema_editor):
    OptOut = apps.get_model("messaging", "OptOut")
    Message = apps.get_model("messaging", "Message")
    GatewayConfig = apps.get_model("gateways", "GatewayConfig")
    PhoneEntry = apps.get_model("contacts", "PhoneEntry")
    ApiKey = apps.get_model("projects", "ApiKey")
    Membership = apps.get_model("projects", "Membership")
    Project = apps.get_model("projects", "Project")

    gateways = {pk: (owner, t) for pk, owner, t in GatewayConfig.objects.values_list("pk", "project_id", "type")}
    all_projects = list(Project.objects.order_by("pk").values_list("pk", flat=True))
    admins = defaultdict(set)  # username[:24] → project ids ("admin:" + name, cut at 30)
    for username, project_id in ApiKey.objects.values_list("username", "project_id"):
        admins[("admin:" + username)[:30]].add(project_id)
    for username, project_id in Membership.objects.values_list("user__username", "project_id"):
        admins[("admin:" + username)[:30]].add(project_id)

    rows = list(OptOut.objects.filter(project__isnull=True, gateway__isnull=True).order_by("pk"))
    for start in range(0, len(rows), CHUNK):
        chunk = rows[start : start + CHUNK]
        numbers = [r.phone_number for r in chunk]
        knows = defaultdict(set)
        for number, project_id in PhoneEntry.objects.filter(number__in=numbers).values_list(
            "number", "project_id"
        ):
            knows[number].add(project_id)
        for number, project_id in (
            Message.objects.filter(phone_number__in=numbers, project__isnull=False)
            .values_list("phone_number", "project_id")
            .distinct()
        ):
            knows[number].add(project_id)
        # The latest message of each kind per (number, source): later rows overwrite earlier.
        inbound = {}
        for number, gw_name, gw_id, project_id in (
            Message.objects.filter(
                Q(inbound_action__startswith="opt_out") | Q(inbound_action__startswith="opt_in"),
                phone_number__in=numbers,
                direction="in",
                gateway_id__isnull=False,
            )
            .order_by("created_on", "id")
            .values_list("phone_number", "gateway_name", "gateway_id", "project_id")
        ):
            inbound[(number, ("keyword:" + gw_name)[:30])] = (gw_id, project_id)
        refused = {}
        for number, gw_name, gw_id, project_id in (
            Message.objects.filter(
                phone_number__in=numbers,
                direction="out",
                gateway_id__isnull=False,
                error_code="PHONE_NUMBER_OPTED_OUT",
                attempts__gt=0,
            )
            .order_by("created_on", "id")
            .values_list("phone_number", "gateway_name", "gateway_id", "project_id")
        ):
            refused[(number, ("gateway:" + gw_name)[:30])] = (gw_id, project_id)
            refused[(number, "gateway")] = (gw_id, project_id)

        new_rows = []
        for row in chunk:
            number, source = row.phone_number, row.source
            targets = []
            found = inbound.get((number, source)) or refused.get((number, source))
            if found is not None:
                targets = _targets_for_gateway(found[0], gateways, found[1])
            elif source.startswith("admin:"):
                targets = [(p, None) for p in sorted(admins.get(source, set()) & knows[number])]
            if not targets:
                targets = [(p, None) for p in sorted(knows[number] or all_projects)]
            if not targets:
                row.delete()  # no project at all: nobody can send to it
                continue
            first, *others = targets
            row.project_id, row.gateway_id = first
            row.save(update_fields=["project", "gateway"])
            for project_id, gateway_id in others:
                new_rows.append(
                    OptOut(
                        phone_number=number,
                        project_id=project_id,
                        gateway_id=gateway_id,
                        opted_out=row.opted_out,
                        can_opt_in=row.can_opt_in,
                        changed_on=row.changed_on,
                        source=row.source,
                    )
                )
        OptOut.objects.bulk_create(new_rows, batch_size=1000)


def backwards(apps, schema_editor):
    """One global row per number again: opted out when any scope is, and opt-in by an admin
    only when every opted-out scope allows it."""
    OptOut = apps.get_model("messaging", "OptOut")
    by_number = defaultdict(list)
    for row in OptOut.objects.order_by("-changed_on", "-pk"):
        by_number[row.phone_number].append(row)
    for rows in by_number.values():
        keep, *drop = rows
        out = [r for r in rows if r.opted_out]
        keep.opted_out = bool(out)
        keep.can_opt_in = all(r.can_opt_in for r in out)
        keep.project_id = keep.gateway_id = None
        keep.save(update_fields=["opted_out", "can_opt_in", "project", "gateway"])
        OptOut.objects.filter(pk__in=[r.pk for r in drop]).delete()


class Migration(migrations.Migration):

    dependencies = [
        ("contacts", "0002_drop_redundant_fk_indexes"),
        ("messaging", "0006_scoped_opt_outs"),
        ("projects", "0001_initial"),
    ]

    operations = [migrations.RunPython(forwards, backwards)]
