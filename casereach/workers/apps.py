from django.apps import AppConfig


class WorkersConfig(AppConfig):
    name = "casereach.workers"
    label = "workers"
    default_auto_field = "django.db.models.BigAutoField"
