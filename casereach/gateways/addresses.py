"""Which hosts a gateway may connect to, and connecting only to the address that was checked.

Every gateway type's every outgoing connection obeys ``CASEREACH_GATEWAY_ALLOW_PRIVATE``. When
the operator sets it to ``0``/``false``/``no``/``off``:

* **at save time** (``check_host``, used by the config validators) a host is refused when it is
  spelled oddly (a trailing dot, ``localhost``/``*.localhost``, an IPv4 address written as one
  integer or in octal/hex/short form such as ``2130706433``, ``0x7f.1``, ``017700000001``,
  ``127.1``), when it is an address of a refused range, or when it resolves to one. A name that
  does not resolve is accepted (DNS may be briefly down while a config is loaded);
* **at connect time** the host is resolved *once* (``resolve_checked``), every address is
  checked, and the connection goes to that checked address: ``PinnedTransport`` for httpx
  (the ``Host`` header and the TLS server name keep the host name, so certificates are still
  verified against it), ``open_tcp`` for SMPP and SMTP sockets, ``WirePool`` for the
  dispatcher's lean client. A second lookup, which DNS rebinding would answer differently, is
  never made.

Refused ranges (``refusal``)::

    IPv4  anything not globally routable: private (10/8, 172.16/12, 192.168/16), loopback
          (127/8), link-local (169.254/16, cloud metadata), carrier-grade NAT (100.64/10),
          "this network" (0/8), documentation and benchmarking nets, reserved (240/4),
          broadcast; and multicast (224/4)
    IPv6  loopback, unspecified, unique-local (fc00::/7), link-local (fe80::/10), site-local,
          multicast, reserved (::/8 etc.), documentation; every IPv4-mapped (::ffff:a.b.c.d)
          and IPv4-compatible (::a.b.c.d) form; 6to4 (2002::/16) and NAT64 (64:ff9b::/96)
          addresses whose embedded IPv4 address is refused

With the variable unset (the default) nothing is refused and names are resolved as usual.
"""

from __future__ import annotations

import ipaddress
import os
import socket
from collections.abc import Callable

import httpx

ALLOW_PRIVATE_ENV = "CASEREACH_GATEWAY_ALLOW_PRIVATE"

_FALSE_WORDS = frozenset({"0", "false", "no", "off"})
_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")
_CGNAT = ipaddress.IPv4Network("100.64.0.0/10")

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


class AddressRefused(ValueError):
    """The host is, or resolves to, an address the operator forbids (or is spelled oddly)."""


class UnresolvableHost(ValueError):
    """The host did not resolve while private addresses are forbidden (maybe DNS is down)."""


def private_addresses_allowed() -> bool:
    """Whether gateways may connect to private/loopback/link-local addresses (default yes)."""
    return os.environ.get(ALLOW_PRIVATE_ENV, "1").strip().lower() not in _FALSE_WORDS


def refusal(address: IPAddress) -> str | None:
    """Why ``address`` is refused when private addresses are forbidden (a short noun such as
    ``"loopback"``), or None if it is not."""
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return "IPv4-mapped IPv6"
        if address.sixtofour is not None and refusal(address.sixtofour):
            return "6to4 of a private or local IPv4 address"
        if address in _NAT64 and refusal(ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)):
            return "NAT64 of a private or local IPv4 address"
        if int(address) >> 32 == 0 and int(address) > 1:
            return "IPv4-compatible IPv6"
        if address.is_site_local:
            return "site-local"
    if address.is_loopback:
        return "loopback"
    if address.is_unspecified:
        return "unspecified"
    if address.is_link_local:
        return "link-local"
    if address.is_multicast:
        return "multicast"
    if isinstance(address, ipaddress.IPv4Address) and address in _CGNAT:
        return "carrier-grade NAT"
    if address.is_private:
        return "private"
    if address.is_reserved or not address.is_global:
        return "reserved"
    return None


def _literal(host: str) -> IPAddress | None:
    try:
        return ipaddress.ip_address(host.removeprefix("[").removesuffix("]"))
    except ValueError:
        return None


def _numeric_label(label: str) -> bool:
    lowered = label.lower()
    if lowered.startswith("0x"):
        return all(c in "0123456789abcdef" for c in lowered[2:])
    return label.isdigit()


def _spelling(host: str) -> str | None:
    """Why a host's spelling is refused (no lookup made), or None."""
    if not host:
        return "is empty"
    if host.endswith("."):
        return "ends with a dot; write it without the trailing dot"
    try:
        ascii_host = host.encode("idna").decode("ascii").lower()
    except UnicodeError:
        return "is not a valid host name"
    if ascii_host != host.lower() and (_literal(ascii_host) or _spelling(ascii_host)):
        return "is an address written with non-ASCII characters"
    if ascii_host == "localhost" or ascii_host.endswith(".localhost"):
        return "is a local name"
    if _literal(host) is not None:
        return None
    labels = ascii_host.split(".")
    if _numeric_label(labels[-1]):
        return "is an address in a non-standard form; write IPv4 addresses as a.b.c.d"
    return None


def resolve(host: str) -> list[IPAddress]:
    """Every address ``host`` resolves to, in the resolver's order (an address: itself).

    Raises:
        OSError: the name does not resolve.
    """
    literal = _literal(host)
    if literal is not None:
        return [literal]
    out: list[IPAddress] = []
    for text in lookup(host):
        address = ipaddress.ip_address(text.split("%", 1)[0])
        if address not in out:
            out.append(address)
    return out


def lookup(host: str) -> list[str]:
    """The resolver's answer for a name (the one place DNS is asked; tests replace it).

    Raises:
        OSError: the name does not resolve.
    """
    infos = socket.getaddrinfo(host, None, proto=socket.IPPROTO_TCP)
    return [str(info[4][0]) for info in infos]


def _spelling_refused(host: str, problem: str) -> AddressRefused:
    return AddressRefused(
        f"host {host} {problem}; it may name a private or local address, which "
        f"{ALLOW_PRIVATE_ENV} forbids"
    )


def _refuse(host: str, addresses: list[IPAddress]) -> None:
    for address in addresses:
        reason = refusal(address)
        if reason is not None:
            raise AddressRefused(
                f"host {host} resolves to a private or local address ({address}), which "
                f"{ALLOW_PRIVATE_ENV} forbids: {reason}"
            )


def check_host(host: str) -> str:
    """Refuse ``host`` at save time when the operator forbids private addresses.

    Returns:
        ``host`` unchanged, so the function can be used as a pydantic validator body.

    Raises:
        AddressRefused: oddly spelled, a refused address, or resolving to one.
    """
    if private_addresses_allowed():
        return host
    problem = _spelling(host)
    if problem is not None:
        raise _spelling_refused(host, problem)
    try:
        addresses = resolve(host)
    except (OSError, UnicodeError):
        return host  # checked again, strictly, when connecting
    _refuse(host, addresses)
    return host


def check_host_without_lookup(host: str) -> None:
    """``check_host`` without DNS: the spelling and a literal address (a cheap pre-check)."""
    if private_addresses_allowed():
        return
    problem = _spelling(host)
    if problem is not None:
        raise _spelling_refused(host, problem)
    literal = _literal(host)
    if literal is not None:
        _refuse(host, [literal])


def resolve_checked(host: str) -> list[str]:
    """The addresses to connect to for ``host``: resolved once and every one checked.

    With private addresses allowed, ``[host]`` unchanged (the socket library resolves it).

    Raises:
        AddressRefused: see ``check_host``.
        UnresolvableHost: the name does not resolve (retry later).
    """
    if private_addresses_allowed():
        return [host.strip("[]")]
    problem = _spelling(host)
    if problem is not None:
        raise _spelling_refused(host, problem)
    try:
        addresses = resolve(host)
    except (OSError, UnicodeError):
        raise UnresolvableHost(f"host {host} does not resolve") from None
    if not addresses:
        raise UnresolvableHost(f"host {host} does not resolve")
    _refuse(host, addresses)
    return [str(a) for a in addresses]


def open_tcp(host: str, port: int, timeout: float) -> socket.socket:
    """A TCP connection to ``host`` through ``resolve_checked`` (for SMPP and SMTP).

    Raises:
        AddressRefused: the host is refused (a configuration problem: do not retry).
        OSError: the host does not resolve or no address accepted the connection.
    """
    try:
        addresses = resolve_checked(host)
    except UnresolvableHost as exc:
        raise socket.gaierror(str(exc)) from None
    last: OSError | None = None
    for address in addresses:
        try:
            return socket.create_connection((address, port), timeout=timeout)
        except OSError as exc:
            last = exc
    assert last is not None
    raise last


class RefusedConnect(httpx.ConnectError):
    """httpx's face of ``AddressRefused``: nothing was sent, and retrying will not help."""


class PinnedTransport(httpx.BaseTransport):
    """An httpx transport that connects to the address ``resolve_checked`` approved.

    The request goes to ``scheme://<address>:port/...`` with its ``Host`` header unchanged and
    the TLS server name (``sni_hostname``, also the name the certificate is checked against)
    set to the host name.
    """

    def __init__(
        self,
        inner: httpx.BaseTransport,
        resolver: Callable[[str], list[str]] = resolve_checked,
    ) -> None:
        self.inner = inner
        self.resolver = resolver

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        if private_addresses_allowed():
            return self.inner.handle_request(request)
        host = request.url.host
        try:
            address = self.resolver(host)[0]
        except AddressRefused as exc:
            raise RefusedConnect(str(exc), request=request) from None
        except UnresolvableHost as exc:
            raise httpx.ConnectError(str(exc), request=request) from None
        pinned = httpx.Request(
            request.method,
            request.url.copy_with(host=address),
            headers=request.headers,  # keeps Host: the name, not the address
            stream=request.stream,
            extensions={**request.extensions, "sni_hostname": host},
        )
        return self.inner.handle_request(pinned)

    def close(self) -> None:
        self.inner.close()
