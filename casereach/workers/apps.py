from django.apps import AppConfig


class WorkersConfig(AppConfig):
    name = "casereach.workers"
    label = "workers"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from casereach.contacts.queries import register_profile_hook
        from casereach.workers.queries import worker_phone_profile_hook

        register_profile_hook(worker_phone_profile_hook)
