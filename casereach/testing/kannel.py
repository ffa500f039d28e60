"""A real Kannel (Debian's ``kannel`` package: ``bearerbox`` + ``smsbox``) for tests.

``KannelBoxes`` writes its own ``kannel.conf`` into a folder of its own, with every port a free
loopback port: the bearerbox's admin and smsbox ports, the smsbox's ``sendsms`` port, one
``smsc = smpp`` transceiver bound to an SMSC (``casereach.testing.smsc_sim``), one
``sendsms-user`` and a default ``sms-service`` whose ``get-url`` is ours. Delivery reports are
kept in Kannel's memory (``dlr-storage = internal``). Both boxes are started, waited for (the
SMSC bound, the smsbox connected) and stopped by their process ids.

It never skips: a missing Kannel, or one that will not start, raises ``KannelUnavailable``
with the log tail, so the test fails loudly (``scripts/ensure-kannel`` installs it).
"""

from __future__ import annotations

import contextlib
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path
from types import TracebackType

import httpx

USERNAME = "casereach"
PASSWORD = "kannel-pw-5"  # noqa: S105 (a made-up password for a test Kannel)
ADMIN_PASSWORD = "kannel-admin"  # noqa: S105 (ditto)

CONF = """\
# Written by casereach.testing.kannel for one test run.
group = core
admin-port = {admin_port}
admin-password = "{admin_password}"
admin-allow-ip = "127.0.0.1"
smsbox-port = {smsbox_port}
box-allow-ip = "127.0.0.1"
log-file = "{folder}/bearerbox.log"
log-level = 0
access-log = "{folder}/access.log"
dlr-storage = internal

group = smsc
smsc = smpp
smsc-id = sim
host = 127.0.0.1
port = {smsc_port}
receive-port = 0
transceiver-mode = true
smsc-username = "{smsc_user}"
smsc-password = "{smsc_password}"
system-type = ""
enquire-link-interval = 30
reconnect-delay = 1
msg-id-type = 0x00

group = smsbox
bearerbox-host = 127.0.0.1
bearerbox-port = {smsbox_port}
sendsms-port = {sendsms_port}
log-file = "{folder}/smsbox.log"
log-level = 0
mo-recode = true

group = sendsms-user
username = "{username}"
password = "{password}"
max-messages = 10
concatenation = true

group = sms-service
keyword = default
get-url = "{get_url}"
catch-all = true
max-messages = 0
omit-empty = true
"""


class KannelUnavailable(RuntimeError):
    """Kannel is not installed, or did not start; the message says what to do."""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def require_kannel() -> tuple[str, str]:
    """The paths of ``bearerbox`` and ``smsbox``, or KannelUnavailable."""
    found = [
        shutil.which(name) or shutil.which(name, path="/usr/sbin:/usr/local/sbin")
        for name in ("bearerbox", "smsbox")
    ]
    bearerbox, smsbox = found
    if bearerbox is None or smsbox is None:
        raise KannelUnavailable(
            "Kannel's bearerbox/smsbox are not installed: run scripts/ensure-kannel "
            "(apt-get install kannel)"
        )
    return bearerbox, smsbox


class KannelBoxes:
    """bearerbox + smsbox in front of the SMPP server at ``smsc_port``; ``get_url`` is the
    ``sms-service`` URL (with Kannel's escape codes) that receives SMS from phones."""

    def __init__(
        self,
        folder: Path,
        *,
        smsc_port: int,
        smsc_user: str,
        smsc_password: str,
        get_url: str,
        sendsms_port: int | None = None,
    ) -> None:
        self.folder = folder
        folder.mkdir(parents=True, exist_ok=True)
        self.admin_port, self.smsbox_port = free_port(), free_port()
        self.sendsms_port = sendsms_port or free_port()
        self.send_url = f"http://127.0.0.1:{self.sendsms_port}/cgi-bin/sendsms"
        self.conf = folder / "kannel.conf"
        self.conf.write_text(
            CONF.format(
                admin_port=self.admin_port,
                admin_password=ADMIN_PASSWORD,
                smsbox_port=self.smsbox_port,
                sendsms_port=self.sendsms_port,
                smsc_port=smsc_port,
                smsc_user=smsc_user,
                smsc_password=smsc_password,
                username=USERNAME,
                password=PASSWORD,
                get_url=get_url,
                folder=folder,
            )
        )
        self.procs: list[subprocess.Popen[bytes]] = []

    def __enter__(self) -> KannelBoxes:
        try:
            self.start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def _spawn(self, binary: str, name: str) -> subprocess.Popen[bytes]:
        out = (self.folder / f"{name}.out").open("wb")
        try:
            proc = subprocess.Popen(
                [binary, "-v", "1", str(self.conf)],
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
            )
        finally:
            out.close()
        self.procs.append(proc)
        return proc

    def start(self, timeout_s: float = 30.0) -> None:
        bearerbox, smsbox = require_kannel()
        self._spawn(bearerbox, "bearerbox")
        self._wait(lambda: self._listening(self.admin_port), "bearerbox's admin port", timeout_s)
        self._spawn(smsbox, "smsbox")
        self._wait(lambda: self._listening(self.sendsms_port), "smsbox's sendsms port", timeout_s)
        self._wait(self.ready, "the SMSC bound and the smsbox connected", timeout_s)

    def ready(self) -> bool:
        status = self.status()
        return "online" in status and "smsbox:" in status and "sim" in status

    def status(self) -> str:
        """The bearerbox's ``status.txt`` ("" while it does not answer)."""
        try:
            r = httpx.get(
                f"http://127.0.0.1:{self.admin_port}/status.txt",
                params={"password": ADMIN_PASSWORD},
                timeout=2,
            )
        except httpx.HTTPError:
            return ""
        return r.text

    @staticmethod
    def _listening(port: int) -> bool:
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.5):
            return True
        return False

    def _wait(self, condition: object, what: str, timeout_s: float) -> None:
        assert callable(condition)
        deadline = time.monotonic() + timeout_s
        while not condition():
            for proc in self.procs:
                if proc.poll() is not None:
                    raise KannelUnavailable(
                        f"Kannel stopped while waiting for {what}:\n{self.logs()}"
                    )
            if time.monotonic() > deadline:
                raise KannelUnavailable(
                    f"Kannel: no {what} after {timeout_s:.0f} s:\n{self.logs()}"
                )
            time.sleep(0.1)

    def logs(self, tail: int = 30) -> str:
        parts = []
        for name in ("bearerbox.out", "smsbox.out", "bearerbox.log", "smsbox.log"):
            path = self.folder / name
            if path.exists():
                lines = path.read_text(errors="replace").splitlines()[-tail:]
                parts.append(f"--- {name}\n" + "\n".join(lines))
        return "\n".join(parts)

    def stop(self) -> None:
        """smsbox first, then bearerbox; each by its own process id."""
        for proc in reversed(self.procs):
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(10)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait(10)
        self.procs.clear()
