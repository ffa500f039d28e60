from django.apps import AppConfig


class WebConfig(AppConfig):
    name = "casereach.web"
    label = "web"
    default_auto_field = "django.db.models.BigAutoField"
