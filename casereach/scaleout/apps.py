from django.apps import AppConfig


class ScaleoutConfig(AppConfig):
    name = "casereach.scaleout"
    label = "scaleout"

    def ready(self) -> None:
        from casereach.scaleout import config

        if not config.broker_mode():
            return
        from casereach.alerts.actions import register_evaluation_runner
        from casereach.messaging.inbound_queue import register_inbound_kick
        from casereach.scaleout.app import send

        # Activating or editing an alert re-evaluates every open case of its type: in this
        # mode a worker does it (by alert id), and the alert shows its progress meanwhile.
        register_evaluation_runner(lambda alert_id: send("casereach.reevaluate_alert", alert_id))
        # Inbound SMS: the webhook stores what it accepted and a worker handles it.
        register_inbound_kick(
            lambda: send("casereach.handle_inbound", expires=config.KICK_INTERVAL_S * 3)
        )
