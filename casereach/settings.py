"""Django settings, configured only by CASEREACH_* environment variables (SPEC 7.2)."""

from __future__ import annotations

import os
import secrets
import tempfile
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

BASE_DIR = Path(__file__).resolve().parent


def database_from_url(url: str) -> dict[str, Any]:
    """Turn CASEREACH_DATABASE_URL into a Django DATABASES entry."""
    if url.startswith(("postgres://", "postgresql://")):
        parsed = urlparse(url)
        return {
            "ENGINE": "django.db.backends.postgresql",
            "NAME": unquote(parsed.path.lstrip("/")) or "casereach",
            "USER": unquote(parsed.username or "postgres"),
            "PASSWORD": unquote(parsed.password or ""),
            "HOST": parsed.hostname or "127.0.0.1",
            "PORT": str(parsed.port or 5432),
            "CONN_MAX_AGE": 60,
            "CONN_HEALTH_CHECKS": True,
            # One test database per test process, so parallel runs never share one.
            "TEST": {
                "NAME": f"test_{unquote(parsed.path.lstrip('/')) or 'casereach'}_{os.getpid()}"
            },
        }
    path = url[len("sqlite:///") :] if url.startswith("sqlite:///") else url
    return {
        "ENGINE": "casereach.core.sqlite3",  # Django's, its placeholder conversion cached
        "NAME": str(Path(path).expanduser().absolute()),
        # Keep each thread's connection between requests: opening one (and its PRAGMAs) and
        # closing it (the last close checkpoints the WAL) cost more than a whole /healthz.
        "CONN_MAX_AGE": 600,
        "OPTIONS": {
            # Writers take the lock at BEGIN, so concurrent writers queue instead of failing
            # with "database is locked" when a read transaction upgrades.
            "transaction_mode": "IMMEDIATE",
            "timeout": 60,
            "init_command": (
                "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL; "
                "PRAGMA foreign_keys=ON; PRAGMA cache_size=-64000; PRAGMA temp_store=MEMORY"
            ),
        },
        "TEST": {"NAME": f"{Path(path).expanduser().absolute()}.test-{os.getpid()}"},
    }


DATABASE_URL = os.environ.get("CASEREACH_DATABASE_URL", "").strip() or "./casereach.sqlite3"
DATABASES = {"default": database_from_url(DATABASE_URL)}


def _secret_key() -> str:
    env = os.environ.get("CASEREACH_SECRET_KEY", "").strip()
    if env:
        return env
    if DATABASES["default"]["ENGINE"].endswith("sqlite3"):
        key_file = Path(str(DATABASES["default"]["NAME"]) + ".secret-key")
    else:
        key_file = Path.home() / ".casereach-secret-key"
    try:
        return key_file.read_text().strip()
    except FileNotFoundError:
        key = secrets.token_urlsafe(48)
        try:
            key_file.parent.mkdir(parents=True, exist_ok=True)
            key_file.write_text(key)
            key_file.chmod(0o600)
        except OSError:
            pass
        return key


SECRET_KEY = _secret_key()
DEBUG = os.environ.get("CASEREACH_DEBUG", "").lower() in {"1", "true", "yes", "on"}
# ALLOWED_HOSTS: see the "network security" block at the end of this file.

INSTALLED_APPS = [
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "ninja",  # ships Swagger UI's files, so /api/docs needs no CDN
    "casereach.projects",
    "casereach.contacts",
    "casereach.cases",
    "casereach.workers",
    "casereach.gateways",
    "casereach.billing",
    "casereach.messaging",
    "casereach.alerts",
    "casereach.surveys",
    "casereach.web",
    "casereach.scaleout",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "casereach.core.guards.RejectOversizeBodyMiddleware",
    "casereach.core.guards.RejectInvalidTextMiddleware",
    "casereach.core.middleware.RejectNulMiddleware",
    # Provider callbacks skip the rest (sessions, CSRF, login, messages): see its docstring.
    "casereach.core.middleware.ProviderCallbackMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "casereach.urls"
APPEND_SLASH = False
WSGI_APPLICATION = "casereach.wsgi.application"
TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ]
        },
    }
]

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
USE_TZ = True
TIME_ZONE = "UTC"
LANGUAGE_CODE = "en"
USE_I18N = False
STATIC_URL = "/static/"
# Static files are served from the installed package (no collectstatic step, no CDN).
WHITENOISE_USE_FINDERS = True
WHITENOISE_AUTOREFRESH = False
SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SAMESITE = "Lax"
CSRF_COOKIE_SAMESITE = "Lax"
SESSION_COOKIE_AGE = 12 * 3600
LOGIN_URL = "web:login"
LOGIN_REDIRECT_URL = "web:home"


def _flag(name: str, default: bool = False) -> bool:
    raw = os.environ.get(name, "").strip().lower()
    if not raw:
        return default
    return raw in {"1", "true", "yes", "on"}


# Production behind HTTPS (SPEC 7.2): CASEREACH_HTTPS=1 makes the session and CSRF cookies
# secure, sends HSTS and redirects plain HTTP to HTTPS. Behind a proxy that terminates TLS,
# CASEREACH_PROXY_SSL_HEADER=1 trusts its X-Forwarded-Proto; CASEREACH_SSL_REDIRECT=0 leaves
# the redirect to the proxy. The demo and tests run on plain http://127.0.0.1 without it.
HTTPS = _flag("CASEREACH_HTTPS")
SESSION_COOKIE_SECURE = HTTPS
CSRF_COOKIE_SECURE = HTTPS
SECURE_SSL_REDIRECT = HTTPS and _flag("CASEREACH_SSL_REDIRECT", True)
SECURE_REDIRECT_EXEMPT = [r"^healthz$"]
SECURE_HSTS_SECONDS = int(os.environ.get("CASEREACH_HSTS_SECONDS", "31536000")) if HTTPS else 0
SECURE_HSTS_INCLUDE_SUBDOMAINS = HTTPS and _flag("CASEREACH_HSTS_SUBDOMAINS", True)
SECURE_HSTS_PRELOAD = HTTPS and _flag("CASEREACH_HSTS_PRELOAD", True)
if _flag("CASEREACH_PROXY_SSL_HEADER"):
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
CSRF_TRUSTED_ORIGINS = [
    o.strip() for o in os.environ.get("CASEREACH_CSRF_TRUSTED_ORIGINS", "").split(",") if o.strip()
]
DATA_UPLOAD_MAX_MEMORY_SIZE = 10 * 1024 * 1024
# Imports through the web UI: the largest upload, and where each user's full error report
# is kept for download (the page shows the first rows only).
IMPORT_MAX_BYTES = int(os.environ.get("CASEREACH_IMPORT_MAX_BYTES", str(100 * 1024 * 1024)))
IMPORT_DIR = os.environ.get("CASEREACH_IMPORT_DIR", "").strip() or str(
    Path(tempfile.gettempdir()) / "casereach-imports"
)

# LOGGING: see the "network security" block at the end of this file.


# The server's own SMTP server (SPEC 4.1: email "with the project's SMTP settings or the
# server's"): CASEREACH_SMTP_URL=smtp://user:pass@host:587?starttls=1 (smtps:// = implicit
# TLS). `casereach init` and `casereach serve` turn it into the global gateway SERVER-EMAIL.
def _smtp_settings(url: str) -> dict[str, object]:
    from urllib.parse import parse_qs, unquote, urlsplit

    parts = urlsplit(url)
    if parts.scheme not in ("smtp", "smtps") or not parts.hostname:
        raise ValueError("CASEREACH_SMTP_URL must look like smtp://user:pass@host:587?starttls=1")
    query = parse_qs(parts.query)
    ssl = parts.scheme == "smtps"
    starttls = query.get("starttls", ["0"])[0].lower() in {"1", "true", "yes", "on"}
    return {
        "EMAIL_HOST": parts.hostname,
        "EMAIL_PORT": parts.port or (465 if ssl else 587 if starttls else 25),
        "EMAIL_HOST_USER": unquote(parts.username or ""),
        "EMAIL_HOST_PASSWORD": unquote(parts.password or ""),
        "EMAIL_USE_SSL": ssl,
        "EMAIL_USE_TLS": starttls,
    }


EMAIL_HOST = ""
_SMTP_URL = os.environ.get("CASEREACH_SMTP_URL", "").strip()
if _SMTP_URL:
    globals().update(_smtp_settings(_SMTP_URL))
DEFAULT_FROM_EMAIL = os.environ.get("CASEREACH_EMAIL_FROM", "").strip() or "casereach@localhost"


# --- network security (issue 15: allowed hosts, CSP, log masking) --------------------------
# Host headers answered: CASEREACH_ALLOWED_HOSTS, else derived from CASEREACH_PUBLIC_URL and
# the loopback names; `casereach serve` adds the address it listens on (core/hosts.py).
from casereach.core.hosts import allowed_hosts as _allowed_hosts  # noqa: E402

ALLOWED_HOSTS = _allowed_hosts()

# Content-Security-Policy on every response (core/middleware.py).
MIDDLEWARE.insert(
    MIDDLEWARE.index("django.middleware.security.SecurityMiddleware") + 1,
    "casereach.core.middleware.ContentSecurityPolicyMiddleware",
)

# Phone numbers are masked in every log line (core/masking.py): the filter sits on each
# handler (so every logger's records are masked on output) and on Django's and waitress's
# loggers (so their records are masked for any handler, e.g. pytest's caplog, too).
_MASKED_LOGGERS = (
    "django.request",
    "django.server",
    "django.security",
    "django.security.DisallowedHost",
    "waitress",
    "casereach",
)
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {"mask_phone_numbers": {"()": "casereach.core.masking.MaskPhoneNumbers"}},
    "formatters": {
        "django.server": {
            "()": "django.utils.log.ServerFormatter",
            "format": "[{server_time}] {message}",
            "style": "{",
        }
    },
    "handlers": {
        "console": {"class": "logging.StreamHandler", "filters": ["mask_phone_numbers"]},
        "django.server": {
            "class": "logging.StreamHandler",
            "formatter": "django.server",
            "filters": ["mask_phone_numbers"],
        },
    },
    "loggers": {
        **{name: {"filters": ["mask_phone_numbers"]} for name in _MASKED_LOGGERS},
        "django.server": {
            "handlers": ["django.server"],
            "filters": ["mask_phone_numbers"],
            "level": "INFO",
            "propagate": False,
        },
    },
    "root": {
        "handlers": ["console"],
        "level": os.environ.get("CASEREACH_LOG_LEVEL", "WARNING").upper(),
    },
}
# --- end network security ------------------------------------------------------------------


# --- Login throttling (django-axes; issue 15 item 9) -------------------------------------
# CASEREACH_LOGIN_FAILURES wrong passwords for one username, or from one client address, lock
# web logins for CASEREACH_LOGIN_LOCKOUT_MINUTES (the right password is refused meanwhile).
# The client address is REMOTE_ADDR, or the last value of CASEREACH_CLIENT_IP_HEADER (e.g.
# X-Forwarded-For) behind a reverse proxy; bad API keys are throttled per the same address.
def _positive(name: str, default: int) -> int:
    try:
        return max(1, int(os.environ.get(name, "").strip() or default))
    except ValueError:
        return default


INSTALLED_APPS += ["axes"]
MIDDLEWARE += ["axes.middleware.AxesMiddleware"]  # axes wants to be last
AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",
    "django.contrib.auth.backends.ModelBackend",
]
AXES_FAILURE_LIMIT = _positive("CASEREACH_LOGIN_FAILURES", 10)
AXES_COOLOFF_TIME = _positive("CASEREACH_LOGIN_LOCKOUT_MINUTES", 15) / 60  # hours
AXES_LOCKOUT_PARAMETERS = ["username", "ip_address"]  # either one locks
AXES_RESET_ON_SUCCESS = True
AXES_LOCKOUT_TEMPLATE = "web/locked.html"
AXES_CLIENT_IP_CALLABLE = "casereach.projects.auth.client_address"
AXES_VERBOSE = False
# Not a password rule: keeps each web user's HTTP Digest secret when their password is set
# (casereach.projects.digest, decisions/0011).
AUTH_PASSWORD_VALIDATORS = [{"NAME": "casereach.projects.digest.DigestPasswordHook"}]
CASEREACH_CLIENT_IP_HEADER = os.environ.get("CASEREACH_CLIENT_IP_HEADER", "").strip()
# --- end of login throttling --------------------------------------------------------------
