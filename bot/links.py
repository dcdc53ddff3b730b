"""Picture links are fetched by the bot, never handed to IMA.

A link in a message ("animate this https://…/cat.jpg") names a host the bot would otherwise
reach on a stranger's say-so. So, for every link and every redirect:

1. the host is put in one canonical form first: percent-decoded, NFKC (full-width digits and
   dots), lower case, trailing dots dropped, IDNA; a numeric host is read the way inet_aton
   and browsers read it (``127.1``, ``0177.0.0.1``, ``0x7f.0.0.1``, ``2130706433``);
2. the name is resolved once, and every address it answers must be public: not private,
   loopback, link-local, CGNAT, multicast, reserved, unspecified, nor an IPv6 form that carries
   such an IPv4 address (mapped, compatible, 6to4, NAT64);
3. the connection goes to that checked address only: the URL is rewritten to the address and
   the name travels in the Host header and as the TLS server name (SNI, certificate check), so
   no second DNS answer can send the bot elsewhere;
4. at most ``max_redirects`` redirects, each checked the same way; the body is read with a cap
   while it streams (a declared Content-Length over the cap is refused before reading).

The bytes are then checked like an attached picture (bot.images) and uploaded through the IMA
upload service like any attachment; IMA only ever sees the upload service's URLs.

Tests reach a picture server on 127.0.0.1 with ``LinkRules(allow_loopback=True)`` (and a
resolver of their own for names); the default rules refuse loopback like any private address.
"""

from __future__ import annotations

import asyncio
import ipaddress
import re
import socket
import ssl
import unicodedata
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from urllib.parse import unquote, urljoin, urlsplit

import httpx
import idna

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
#: (host name, port) -> the addresses it resolves to, as strings
Resolver = Callable[[str, int], Awaitable[list[str]]]

MAX_REDIRECTS = 3
_PORTS = {"http": 80, "https": 443}
_REDIRECTS = {301, 302, 303, 307, 308}
#: full stops a host may be spelt with (ideographic, full-width, half-width ideographic)
_DOTS = str.maketrans({"\u3002": ".", "\uff0e": ".", "\uff61": "."})
_LABEL = re.compile(r"[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?")
_DIGITS = {10: re.compile(r"[0-9]+"), 8: re.compile(r"[0-7]+"), 16: re.compile(r"[0-9a-f]+")}

#: IPv4 networks that are not the public internet. Python's is_global misses some (multicast,
#: 192.0.0.0/24 beyond two small blocks, the 6to4 relay anycast), so they are listed here.
_V4_BLOCKED = tuple(
    ipaddress.IPv4Network(n)
    for n in (
        "0.0.0.0/8",
        "10.0.0.0/8",
        "100.64.0.0/10",
        "127.0.0.0/8",
        "169.254.0.0/16",
        "172.16.0.0/12",
        "192.0.0.0/24",
        "192.0.2.0/24",
        "192.88.99.0/24",
        "192.168.0.0/16",
        "198.18.0.0/15",
        "198.51.100.0/24",
        "203.0.113.0/24",
        "224.0.0.0/4",
        "240.0.0.0/4",
    )
)
#: IPv6 networks refused outright (the IPv4-carrying forms are judged by their IPv4 address)
_V6_BLOCKED = tuple(
    ipaddress.IPv6Network(n)
    for n in (
        "::/8",  # unspecified, loopback, IPv4-compatible and other reserved forms
        "64:ff9b:1::/48",  # NAT64 for local use
        "100::/64",  # discard
        "2001::/23",  # IETF protocol assignments, Teredo among them
        "2001:db8::/32",  # documentation
        "fc00::/7",
        "fe80::/10",
        "fec0::/10",  # unique local, link-local, site-local
        "ff00::/8",  # multicast
    )
)
_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")


class LinkRefused(Exception):
    """A link the bot will not fetch; `kind` names the locale message image.<kind>."""

    def __init__(self, kind: str, **values: object) -> None:
        super().__init__(kind)
        self.kind = kind
        self.values = values


async def system_resolver(host: str, port: int) -> list[str]:
    """Every address the system resolver answers for `host`, once."""
    infos = await asyncio.get_running_loop().getaddrinfo(
        host, port, type=socket.SOCK_STREAM, proto=socket.IPPROTO_TCP
    )
    return [str(info[4][0]) for info in infos]


@dataclass(frozen=True)
class LinkRules:
    """What a link may reach. Production uses the defaults; tests pass their own resolver and
    allow loopback (their picture server runs on 127.0.0.1) — never anything else private."""

    allow_loopback: bool = False
    resolver: Resolver = system_resolver
    max_redirects: int = MAX_REDIRECTS
    #: the whole fetch, redirects included
    timeout_s: float = 20.0
    #: certificate authorities for https (None: the system's); tests trust their own
    tls: ssl.SSLContext | None = None


#: the rules `check_images` uses when given none (looked up at call time)
RULES = LinkRules()


# -- the host, in one spelling -----------------------------------------------------------------
def _ipv4_number(part: str) -> int:
    base = 10
    if part[:2] == "0x":
        base, part = 16, part[2:]
        if not part:
            return 0
    elif len(part) > 1 and part[0] == "0":
        base, part = 8, part[1:]
    if not _DIGITS[base].fullmatch(part):
        raise ValueError(part)
    return int(part, base)


def _ends_in_a_number(host: str) -> bool:
    last = host.split(".")[-1]
    return bool(last) and (bool(_DIGITS[10].fullmatch(last)) or bool(re.fullmatch(r"0x[0-9a-f]*", last)))


def parse_ipv4(host: str) -> ipaddress.IPv4Address:
    """A numeric host read as browsers and inet_aton read it: one to four parts, each decimal,
    octal (leading 0) or hex (0x); the last part fills the bytes that remain (127.1 = 127.0.0.1,
    2130706433 = 127.0.0.1). ValueError when it is not such a number."""
    parts = host.split(".")
    if not 1 <= len(parts) <= 4 or any(p == "" for p in parts):
        raise ValueError(host)
    numbers = [_ipv4_number(p) for p in parts]
    *head, last = numbers
    if any(n > 255 for n in head) or last >= 256 ** (5 - len(numbers)):
        raise ValueError(host)
    value = last
    for i, n in enumerate(head):
        value += n << (8 * (3 - i))
    return ipaddress.IPv4Address(value)


def canonical_host(raw: str) -> str | IPAddress:
    """The host of a link in one spelling: an address, or an ASCII (IDNA) name.
    ValueError for a host no browser would accept."""
    host = unquote(raw, errors="strict")
    host = unicodedata.normalize("NFKC", host).translate(_DOTS).lower()
    if ":" in host:  # only an IPv6 literal has colons here (urlsplit took the port off)
        return ipaddress.IPv6Address(host)
    host = host.rstrip(".")
    if not host:
        raise ValueError(raw)
    if _ends_in_a_number(host):
        return parse_ipv4(host)  # 1.2.3.999 or example.123: no name, and no address either
    if not host.isascii():
        host = idna.encode(host, uts46=True).decode("ascii").lower()
        if _ends_in_a_number(host):
            return parse_ipv4(host)
    if len(host) > 253 or not all(_LABEL.fullmatch(label) for label in host.split(".")):
        raise ValueError(raw)
    return host


def is_public(ip: IPAddress, *, allow_loopback: bool = False) -> bool:
    """True for an address on the public internet (with allow_loopback, also 127/8 and ::1)."""
    if allow_loopback and ip.is_loopback:
        return True
    if isinstance(ip, ipaddress.IPv6Address):
        carried = ip.ipv4_mapped or ip.sixtofour
        if carried is None and ip in _NAT64:
            carried = ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
        if carried is not None:
            return is_public(carried)  # the IPv4 address is where the packets go
        if any(ip in net for net in _V6_BLOCKED):
            return False
    elif any(ip in net for net in _V4_BLOCKED):
        return False
    return ip.is_global and not (
        ip.is_multicast
        or ip.is_reserved
        or ip.is_private
        or ip.is_loopback
        or ip.is_link_local
        or ip.is_unspecified
    )


# -- one link ------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Link:
    """A link taken apart: where to connect, and what to say in Host and SNI."""

    url: str
    scheme: str
    host: str | IPAddress
    port: int
    target: str  # path and query, as sent

    @property
    def name(self) -> str | None:
        """The DNS name (None for an address)."""
        return self.host if isinstance(self.host, str) else None

    def host_header(self) -> str:
        host = (
            self.host
            if isinstance(self.host, str)
            else (f"[{self.host}]" if self.host.version == 6 else str(self.host))
        )
        return host if self.port == _PORTS[self.scheme] else f"{host}:{self.port}"

    def pinned_url(self, ip: IPAddress) -> str:
        """This link with the host replaced by the checked address."""
        host = f"[{ip}]" if ip.version == 6 else str(ip)
        return f"{self.scheme}://{host}:{self.port}{self.target}"


def parse_link(url: str) -> Link:
    """A link the bot may try to fetch, or LinkRefused("bad_url")."""
    try:
        parts = urlsplit(url.strip())
        port = parts.port
        host = canonical_host(parts.hostname or "")
    except (ValueError, UnicodeError, idna.IDNAError):
        raise LinkRefused("bad_url") from None
    scheme = parts.scheme.lower()
    if scheme not in _PORTS or parts.username is not None or parts.password is not None:
        raise LinkRefused("bad_url")
    if isinstance(host, ipaddress.IPv6Address) and host.scope_id:
        raise LinkRefused("link_private")
    target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    return Link(url, scheme, host, port or _PORTS[scheme], target)


async def checked_addresses(link: Link, rules: LinkRules) -> list[IPAddress]:
    """The addresses to connect to: the literal one, or every answer of one resolution, all
    public (one private answer refuses the name: it may be the one a connection would get)."""
    if not isinstance(link.host, str):
        candidates: list[IPAddress] = [link.host]
    else:
        try:
            answers = await rules.resolver(link.host, link.port)
            candidates = [ipaddress.ip_address(a.split("%", 1)[0]) for a in answers]
        except (OSError, ValueError):
            raise LinkRefused("link_unreachable") from None
        if not candidates:
            raise LinkRefused("link_unreachable")
    if not all(is_public(ip, allow_loopback=rules.allow_loopback) for ip in candidates):
        raise LinkRefused("link_private")
    return candidates


async def _open(http: httpx.AsyncClient, link: Link, addresses: list[IPAddress]) -> httpx.Response:
    """GET the link from the first checked address that answers (never by name)."""
    headers = {
        "Host": link.host_header(),
        "Accept": "image/*",
        "Accept-Encoding": "identity",
        "User-Agent": "ima-video-bot (picture link)",
    }
    extensions = {"sni_hostname": link.name} if link.scheme == "https" and link.name else {}
    error: Exception | None = None
    for ip in addresses:
        request = http.build_request("GET", link.pinned_url(ip), headers=headers, extensions=extensions)
        try:
            return await http.send(request, stream=True)
        except (httpx.ConnectError, httpx.ConnectTimeout) as e:
            error = e
    raise LinkRefused("link_unreachable") from error


async def _read_capped(response: httpx.Response, max_bytes: int) -> bytes:
    declared = response.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > max_bytes:
        raise LinkRefused("link_too_large")  # said before a byte of the body is read
    if response.headers.get("content-encoding", "identity").strip().lower() not in ("", "identity"):
        # identity was asked for: a compressed body could grow past any cap in one chunk
        raise LinkRefused("not_image")
    body = bytearray()
    async for chunk in response.aiter_raw():
        body += chunk
        if len(body) > max_bytes:
            raise LinkRefused("link_too_large")  # the rest is never read
    return bytes(body)


async def fetch_picture(url: str, max_bytes: int, *, rules: LinkRules | None = None) -> bytes:
    """The body at `url`, fetched under the rules above, at most `max_bytes`; LinkRefused when
    the link is not allowed or the download fails. The caller checks it is a picture."""
    rules = rules or RULES
    location = url
    try:
        async with (
            asyncio.timeout(rules.timeout_s),
            httpx.AsyncClient(
                trust_env=False,  # a proxy from the environment would connect by name
                verify=True if rules.tls is None else rules.tls,
                follow_redirects=False,
                timeout=httpx.Timeout(10.0, connect=5.0),
                limits=httpx.Limits(max_keepalive_connections=0),  # one TLS identity per connection
            ) as http,
        ):
            for _ in range(rules.max_redirects + 1):
                link = parse_link(location)
                response = await _open(http, link, await checked_addresses(link, rules))
                try:
                    if response.status_code in _REDIRECTS and response.headers.get("location"):
                        location = urljoin(link.url, response.headers["location"])
                        continue
                    if response.status_code != 200:
                        raise LinkRefused("link_status", status=response.status_code)
                    return await _read_capped(response, max_bytes)
                finally:
                    await response.aclose()
            raise LinkRefused("link_redirects", limit=rules.max_redirects)
    except (TimeoutError, httpx.HTTPError):
        raise LinkRefused("link_unreachable") from None
