"""Web logins are throttled by username and by client address (issue 15 item 9)."""

from __future__ import annotations

from django.test import Client

from casereach.projects.actions import do_create_web_user
from casereach.projects.models import Project, Role

LOGIN = "/login"


def _login(client: Client, username: str, password: str, address: str = "10.0.0.1") -> int:
    r = client.post(LOGIN, {"username": username, "password": password}, REMOTE_ADDR=address)
    return r.status_code


def test_sixty_wrong_passwords_then_the_right_one_is_refused_while_locked(
    project: Project,
) -> None:
    do_create_web_user(project, "pm", "pm-password-1", role=Role.ADMIN)
    client = Client()
    statuses = [_login(client, "pm", f"wrong-{i}") for i in range(60)]
    # the form again nine times; the tenth failure locks, and the page says so
    assert [200] * 9 + [429] * 51 == statuses
    r = client.post(LOGIN, {"username": "pm", "password": "pm-password-1"}, REMOTE_ADDR="10.0.0.1")
    assert 429 == r.status_code
    page = r.content.decode()
    assert "Logging in is locked for now" in page
    assert "0:15:00" in page
    assert "_auth_user_id" not in client.session
    # by username: another address cannot log in as pm either
    assert 429 == _login(Client(), "pm", "pm-password-1", address="10.9.9.9")


def test_one_address_trying_many_usernames_is_locked(project: Project) -> None:
    do_create_web_user(project, "amina", "amina-password", role=Role.MEMBER)
    client = Client()
    statuses = [_login(client, f"user{i}", "guess", address="10.0.0.2") for i in range(10)]
    assert [200] * 9 + [429] == statuses
    assert 429 == _login(client, "amina", "amina-password", address="10.0.0.2")
    ok = Client()
    assert 302 == _login(ok, "amina", "amina-password", address="10.0.0.3")


def test_a_success_before_the_limit_starts_the_count_again(project: Project) -> None:
    do_create_web_user(project, "pm", "pm-password-1", role=Role.ADMIN)
    for _ in range(9):
        assert 200 == _login(Client(), "pm", "wrong")
    assert 302 == _login(Client(), "pm", "pm-password-1")
    for _ in range(9):
        assert 200 == _login(Client(), "pm", "wrong")
    assert 302 == _login(Client(), "pm", "pm-password-1")
