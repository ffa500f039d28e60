from django.apps import AppConfig


class MessagingConfig(AppConfig):
    name = "casereach.messaging"
    label = "messaging"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from casereach.contacts.queries import (
            register_profile_hook,
            register_unknown_gateways_hook,
        )
        from casereach.gateways.hooks import register_before_delete
        from casereach.messaging.gateway_profile import gateway_profile_hook, unknown_gateways_hook
        from casereach.messaging.optouts import keep_opt_outs_of
        from casereach.messaging.profile import opt_out_profile_hook

        # The gateway part first, as when gateways registered it (its app comes first).
        register_profile_hook(gateway_profile_hook)
        register_unknown_gateways_hook(unknown_gateways_hook)
        register_profile_hook(opt_out_profile_hook)
        register_before_delete(keep_opt_outs_of)
