from django.apps import AppConfig


class SurveysConfig(AppConfig):
    name = "casereach.surveys"
    label = "surveys"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from casereach.messaging.inbound_conversations import register_conversation_hook
        from casereach.messaging.keyword_actions import register_keyword_action
        from casereach.surveys import keyword_start
        from casereach.surveys.session_queries import PROBE
        from casereach.surveys.sessions import on_inbound

        register_conversation_hook(on_inbound, PROBE)
        register_keyword_action(
            keyword_start.ACTION, keyword_start.validate_survey, keyword_start.start
        )
