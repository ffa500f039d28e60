from django.apps import AppConfig


class WorkersConfig(AppConfig):
    name = "casereach.workers"
    label = "workers"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from casereach.contacts.queries import register_profile_hook
        from casereach.projects.settings_change import register_settings_resync
        from casereach.workers.actions import do_resync_project_workers
        from casereach.workers.queries import worker_phone_profile_hook

        register_settings_resync("workers", do_resync_project_workers)
        register_profile_hook(worker_phone_profile_hook)
