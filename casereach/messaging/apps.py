from django.apps import AppConfig


class MessagingConfig(AppConfig):
    name = "casereach.messaging"
    label = "messaging"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from casereach.contacts.queries import register_profile_hook
        from casereach.messaging.profile import opt_out_profile_hook

        register_profile_hook(opt_out_profile_hook)
