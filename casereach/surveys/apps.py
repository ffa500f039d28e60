from django.apps import AppConfig


class SurveysConfig(AppConfig):
    name = "casereach.surveys"
    label = "surveys"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from casereach.alerts.content_hooks import SurveyHooks, register_survey_hooks
        from casereach.messaging.failure_hooks import register_failure_hook
        from casereach.messaging.inbound_batch import register_batch_conversation
        from casereach.messaging.inbound_conversations import register_conversation_hook
        from casereach.messaging.keyword_actions import register_keyword_action
        from casereach.surveys import keyword_start
        from casereach.surveys.session_queries import PROBE
        from casereach.surveys.sessions import on_inbound
        from casereach.surveys.sessions.answer_batch import SurveyAnswers
        from casereach.surveys.sessions.bulk import (
            check_survey,
            describe_survey,
            start_surveys,
        )
        from casereach.surveys.sessions.failures import on_failed

        register_conversation_hook(on_inbound, PROBE)
        register_batch_conversation(PROBE[0], SurveyAnswers())
        register_failure_hook(on_failed)
        register_keyword_action(
            keyword_start.ACTION, keyword_start.validate_survey, keyword_start.start
        )
        register_survey_hooks(
            SurveyHooks(check=check_survey, start=start_surveys, describe=describe_survey)
        )
