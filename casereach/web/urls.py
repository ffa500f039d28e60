"""URLs of the web UI: ``/`` picks a project, ``/a/<project>/…`` are its pages (the API
lives under ``/a/<project>/api/``)."""

from __future__ import annotations

from django.contrib.auth import views as auth_views
from django.urls import path

from casereach.web import (
    views,
    views_admin,
    views_alerts,
    views_connect,
    views_contacts,
    views_import,
    views_messages,
    views_sessions,
    views_surveys,
    views_sysadmin,
)

app_name = "web"

P = "a/<str:project>/"

urlpatterns = [
    path("", views.home, name="home"),
    path("favicon.ico", views.favicon, name="favicon"),
    path("login", views.LoginView.as_view(), name="login"),
    path("logout", auth_views.LogoutView.as_view(next_page="web:login"), name="logout"),
    path(P, views.dashboard, name="dashboard"),
    path(P + "cases", views_contacts.cases, name="cases"),
    path(P + "contacts/<str:contact_id>", views_contacts.contact, name="contact"),
    path(P + "phone-numbers", views_contacts.phone_numbers, name="phone_numbers"),
    path(P + "phone-numbers/<str:number>/transfer", views_contacts.transfer, name="transfer"),
    path(P + "messages", views_messages.messages, name="messages"),
    path(P + "test-phone", views_messages.test_phone, name="test_phone"),
    path(
        P + "test-phone/conversation", views_messages.test_phone_conversation, name="conversation"
    ),
    path(P + "import", views_import.import_cases_page, name="import"),
    path(P + "import/errors.csv", views_import.import_errors_csv, name="import_errors"),
    path(P + "import/progress", views_import.import_progress, name="import_progress"),
    path(P + "alerts", views_alerts.alerts, name="alerts"),
    path(P + "alerts/new", views_alerts.alert_new, name="alert_new"),
    path(P + "alerts/estimate", views_alerts.alert_estimate, name="alert_estimate"),
    path(P + "alerts/<int:alert_id>", views_alerts.alert_detail, name="alert"),
    path(P + "alerts/<int:alert_id>/edit", views_alerts.alert_edit, name="alert_edit"),
    path(P + "alerts/<int:alert_id>/status", views_alerts.alert_status, name="alert_status"),
    path(P + "surveys", views_surveys.surveys, name="surveys"),
    path(P + "surveys/new", views_surveys.survey_new, name="survey_new"),
    path(P + "surveys/preview", views_surveys.survey_preview, name="survey_preview"),
    path(P + "surveys/segments", views_surveys.survey_segments, name="survey_segments"),
    path(P + "surveys/<int:survey_id>/edit", views_surveys.survey_edit, name="survey_edit"),
    path(
        P + "surveys/<int:survey_id>/sessions",
        views_sessions.survey_sessions,
        name="survey_sessions",
    ),
    path(
        P + "survey-sessions/<int:session_id>",
        views_sessions.survey_session,
        name="survey_session",
    ),
    path(P + "settings", views_admin.settings_page, name="settings"),
    path(P + "connect", views_connect.connect, name="connect"),
    path(P + "gateways", views_admin.gateways, name="gateways"),
    path(P + "gateways/new", views_admin.gateway_new, name="gateway_new"),
    path(P + "gateways/<int:gateway_id>", views_admin.gateway_edit, name="gateway"),
    path("sysadmin/gateways", views_sysadmin.gateways, name="sysadmin_gateways"),
    path("sysadmin/gateways/new", views_sysadmin.gateway_new, name="sysadmin_gateway_new"),
    path(
        "sysadmin/gateways/<int:gateway_id>", views_sysadmin.gateway_edit, name="sysadmin_gateway"
    ),
]
