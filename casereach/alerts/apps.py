from django.apps import AppConfig


class AlertsConfig(AppConfig):
    name = "casereach.alerts"
    label = "alerts"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from casereach.alerts.actions import on_cases_changed
        from casereach.alerts.profile import data_quality_hook, upcoming_profile_hook
        from casereach.alerts.replywait import on_inbound
        from casereach.alerts.replywait_queries import PROBE
        from casereach.alerts.zones import on_zones_changed
        from casereach.cases.actions import register_case_change_hook
        from casereach.contacts.actions import register_zone_change_hook
        from casereach.contacts.queries import register_data_quality_hook, register_profile_hook
        from casereach.messaging.inbound_conversations import register_conversation_hook

        register_case_change_hook(on_cases_changed)
        register_profile_hook(upcoming_profile_hook)
        register_data_quality_hook(data_quality_hook)
        register_zone_change_hook(on_zones_changed)
        # Before the surveys' hook (apps load in order): it never takes the message.
        register_conversation_hook(on_inbound, PROBE)
