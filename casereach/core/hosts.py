"""Which ``Host`` headers the server answers to (Django's ``ALLOWED_HOSTS``).

``CASEREACH_ALLOWED_HOSTS`` (comma-separated; ``*`` for any) wins when set. Otherwise the list
is derived: the loopback names (``127.0.0.1``, ``localhost``, ``[::1]``), Django's test client
name (``testserver``), the host of ``CASEREACH_PUBLIC_URL``, and the address ``casereach serve``
listens on (``allow_bind_address``; for a wildcard bind such as ``0.0.0.0``, this machine's
host name). A request naming any other host gets Django's 400.

Imported by ``settings``: no Django imports at module level.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Mapping
from urllib.parse import urlsplit

ALLOWED_HOSTS_ENV = "CASEREACH_ALLOWED_HOSTS"
PUBLIC_URL_ENV = "CASEREACH_PUBLIC_URL"
LOCAL_HOSTS = ("127.0.0.1", "localhost", "[::1]", "testserver")
_WILDCARD_BINDS = frozenset({"", "0.0.0.0", "::", "[::]"})  # noqa: S104 (names, not a bind)


def _host_entry(host: str) -> str:
    host = host.strip().lower()
    if ":" in host and not host.startswith("["):
        return f"[{host}]"  # Django compares IPv6 hosts in brackets
    return host


def allowed_hosts(env: Mapping[str, str] = os.environ) -> list[str]:
    """``ALLOWED_HOSTS`` from the environment (see the module docstring)."""
    explicit = env.get(ALLOWED_HOSTS_ENV, "")
    if explicit.strip():
        return [h.strip() for h in explicit.split(",") if h.strip()]
    hosts = list(LOCAL_HOSTS)
    public = env.get(PUBLIC_URL_ENV, "").strip()
    if public:
        try:
            name = urlsplit(public).hostname
        except ValueError:
            name = None
        if name and _host_entry(name) not in hosts:
            hosts.append(_host_entry(name))
    return hosts


def bind_hosts(bind: str) -> list[str]:
    """The host names a server listening on ``bind`` is reached by."""
    if bind.strip() in _WILDCARD_BINDS:
        names = {socket.gethostname(), socket.getfqdn()}
        return sorted(_host_entry(n) for n in names if n)
    return [_host_entry(bind)]


def allow_bind_address(bind: str, env: Mapping[str, str] = os.environ) -> None:
    """Add the names of ``bind`` to ``settings.ALLOWED_HOSTS`` unless the operator set
    ``CASEREACH_ALLOWED_HOSTS`` (called by ``casereach serve`` once it knows its address)."""
    if env.get(ALLOWED_HOSTS_ENV, "").strip():
        return
    from django.conf import settings

    for host in bind_hosts(bind):
        if host not in settings.ALLOWED_HOSTS:
            settings.ALLOWED_HOSTS.append(host)
