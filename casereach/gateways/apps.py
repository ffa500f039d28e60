from django.apps import AppConfig


class GatewaysConfig(AppConfig):
    name = "casereach.gateways"
    label = "gateways"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from casereach.contacts.queries import (
            register_profile_hook,
            register_unknown_gateways_hook,
        )
        from casereach.gateways.profile import gateway_profile_hook, unknown_gateways_hook

        register_profile_hook(gateway_profile_hook)
        register_unknown_gateways_hook(unknown_gateways_hook)
