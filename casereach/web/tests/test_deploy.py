"""``manage.py check --deploy`` passes with the production environment, and fails without
it (so the test can tell the difference)."""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]


def _check_deploy(tmp_path: Path, **env: str) -> subprocess.CompletedProcess[str]:
    base = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("CASEREACH_") or k == "CASEREACH_DATABASE_URL"
    }
    base["CASEREACH_DATABASE_URL"] = str(tmp_path / "deploy.sqlite3")
    base["PYTHONPATH"] = os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])
    return subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        cwd=ROOT,
        env={**base, **env},
        capture_output=True,
        text=True,
        timeout=120,
    )


PRODUCTION = {
    "CASEREACH_SECRET_KEY": secrets.token_urlsafe(64),
    "CASEREACH_ALLOWED_HOSTS": "casereach.example.org",
    "CASEREACH_HTTPS": "1",
}


def test_check_deploy_passes_with_production_settings(tmp_path: Path) -> None:
    result = _check_deploy(tmp_path, **PRODUCTION)
    assert 0 == result.returncode, result.stdout + result.stderr
    assert "no issues" in result.stdout


def test_check_deploy_passes_behind_a_tls_proxy(tmp_path: Path) -> None:
    result = _check_deploy(
        tmp_path,
        **PRODUCTION,
        CASEREACH_PROXY_SSL_HEADER="1",
        CASEREACH_CSRF_TRUSTED_ORIGINS="https://casereach.example.org",
    )
    assert 0 == result.returncode, result.stdout + result.stderr


def test_check_deploy_fails_without_https_or_with_debug(tmp_path: Path) -> None:
    plain = _check_deploy(tmp_path, **{**PRODUCTION, "CASEREACH_HTTPS": ""})
    assert 0 != plain.returncode
    assert "SESSION_COOKIE_SECURE" in plain.stdout + plain.stderr
    debug = _check_deploy(tmp_path, **PRODUCTION, CASEREACH_DEBUG="1")
    assert 0 != debug.returncode
    assert "DEBUG" in debug.stdout + debug.stderr
