from django.apps import AppConfig


class CasesConfig(AppConfig):
    name = "casereach.cases"
    label = "cases"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from casereach.cases.actions import do_resync_project_contacts
        from casereach.projects.settings_change import register_settings_resync

        register_settings_resync("cases", do_resync_project_contacts)
