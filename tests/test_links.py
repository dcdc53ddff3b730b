"""Picture links are fetched by the bot, never handed to IMA (bot.links).

Every spelling of a private address is refused before any connection; names are resolved once by
a resolver the test provides (no test reaches the internet or real DNS); pictures come from an
aiohttp server on 127.0.0.1, reachable only with LinkRules(allow_loopback=True)."""

from __future__ import annotations

import asyncio
import io
import ipaddress
import shutil
import ssl
import subprocess
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote

import pytest
from aiohttp import web
from aiohttp.typedefs import Handler
from PIL import Image

from adapters.base import ImageInput, Incoming
from bot import links
from bot.core import BotCore
from bot.i18n import t
from bot.images import ImageRejected, check_images
from bot.links import LinkRefused, LinkRules, canonical_host, fetch_picture, is_public, parse_link
from bot.sandbox import Sandbox
from tests.conftest import RecordingConversation

LOOPBACK = ipaddress.IPv4Address("127.0.0.1")
CAP = 200_000


def png(size: tuple[int, int] = (40, 30)) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", size, (200, 80, 10)).save(buf, "PNG")
    return buf.getvalue()


@dataclass
class Resolver:
    """DNS as the test says: name -> addresses; every question is kept."""

    answers: dict[str, list[str]]
    asked: list[str] = field(default_factory=list)

    async def __call__(self, host: str, port: int) -> list[str]:
        self.asked.append(host)
        if host not in self.answers:
            raise OSError(f"no such host {host}")
        return self.answers[host]


@dataclass
class Pictures:
    """A picture server on 127.0.0.1 that remembers what it was asked and how much it sent."""

    port: int = 0
    requests: list[tuple[str, str]] = field(default_factory=list)  # (path, Host header)
    sent: int = 0
    finished_endless: bool = False

    def url(self, path: str, host: str = "127.0.0.1") -> str:
        return f"http://{host}:{self.port}{path}"


class PictureRoutes:
    """What the picture server answers at each path; what it was asked and sent goes to `state`."""

    def __init__(self, state: Pictures) -> None:
        self.state = state
        self.body = png()

    def app(self) -> web.Application:
        """The server's application: every path the tests ask for, each request remembered."""
        app = web.Application(middlewares=[self.remember])
        app.router.add_get("/cat.png", self.cat)
        app.router.add_get("/photos/cat.png", self.cat)
        app.router.add_get("/hops/{n}", self.hops)
        app.router.add_get("/to", self.to)
        app.router.add_get("/endless.png", self.endless)
        app.router.add_get("/declared.png", self.declared)
        app.router.add_get("/page.png", self.text)
        app.router.add_get("/missing.png", self.missing)
        return app

    @web.middleware
    async def remember(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        self.state.requests.append((request.path, request.headers.get("Host", "")))
        return await handler(request)

    async def cat(self, request: web.Request) -> web.Response:
        return web.Response(body=self.body, content_type="image/png")

    async def hops(self, request: web.Request) -> web.Response:
        n = int(request.match_info["n"])
        raise web.HTTPFound("/cat.png" if n == 0 else f"/hops/{n - 1}")

    async def to(self, request: web.Request) -> web.Response:
        raise web.HTTPFound(request.query["where"])

    async def endless(self, request: web.Request) -> web.StreamResponse:
        # no Content-Length: only the reader's cap can stop this
        response = web.StreamResponse(headers={"Content-Type": "image/png"})
        await response.prepare(request)
        chunk = b"\x89PNG" + b"\0" * 65_532
        try:
            for _ in range(1600):  # 100 MB if nobody stops reading
                await response.write(chunk)
                self.state.sent += len(chunk)
            self.state.finished_endless = True
        except (ConnectionError, asyncio.CancelledError):
            pass
        return response

    async def declared(self, request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(
            headers={"Content-Type": "image/png", "Content-Length": str(50 * 1024 * 1024)}
        )
        await response.prepare(request)
        await response.write(self.body)
        self.state.sent += len(self.body)
        return response

    async def text(self, request: web.Request) -> web.Response:
        return web.Response(text="<html>not a picture</html>", content_type="text/html")

    async def missing(self, request: web.Request) -> web.Response:
        raise web.HTTPNotFound()


@pytest.fixture
async def pictures() -> AsyncIterator[Pictures]:
    state = Pictures()
    runner = web.AppRunner(PictureRoutes(state).app())
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    state.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    yield state
    await runner.cleanup()


def loopback_rules(**answers: list[str]) -> LinkRules:
    return LinkRules(allow_loopback=True, resolver=Resolver({"pictures.test": ["127.0.0.1"], **answers}))


async def refused(url: str, rules: LinkRules | None = None, max_bytes: int = CAP) -> LinkRefused:
    with pytest.raises(LinkRefused) as e:
        await fetch_picture(url, max_bytes, rules=rules)
    return e.value


# -- every spelling of a host, in one form --------------------------------------------------------
@pytest.mark.parametrize(
    "spelling",
    [
        "127.0.0.1",
        "127.1",
        "127.0.1",
        "0177.0.0.1",
        "0177.1",
        "0x7f.0.0.1",
        "0x7F.0.0.1",
        "0x7f.1",
        "2130706433",
        "0x7f000001",
        "017700000001",
        "0x7f.0x0.0x0.0x1",
        "00000177.0.0.01",
        "%31%32%37.0.0.1",
        "%31%32%37%2e%30%2e%30%2e%31",
        "１２７．０．０．１",
        "１２７.０.０.１",
        "127。0。0。1",
        "127.0.0.1.",
        "127.0.0.1..",
        "１２７.1.",
        "0x7f.1.",
    ],
)
def test_every_spelling_of_loopback_is_one_address(spelling: str) -> None:
    assert canonical_host(spelling) == LOOPBACK


@pytest.mark.parametrize(
    "name, ascii_name",
    [
        ("Example.COM.", "example.com"),
        ("bücher.example", "xn--bcher-kva.example"),
        ("ｌｏｃａｌｔｅｓｔ．ｍｅ", "localtest.me"),
        ("%6c%6f%63%61%6c%74%65%73%74.me", "localtest.me"),
        ("BÜCHER.example", "xn--bcher-kva.example"),
        ("cdn_1.example.com", "cdn_1.example.com"),
    ],
)
def test_names_are_lower_case_ascii_idna(name: str, ascii_name: str) -> None:
    assert canonical_host(name) == ascii_name


@pytest.mark.parametrize(
    "host",
    [
        "1.2.3.999",
        "256.0.0.1",
        "example.123",
        "0x7g.0.0.1",
        "1.2.3.4.5",
        "089.0.0.1",
        "%2531%2532%2537.0.0.1",
        "exa mple.com",
        "a..b.com",
        "-bad-.com",
        "",
    ],
)
def test_hosts_no_browser_would_take_are_refused(host: str) -> None:
    with pytest.raises(ValueError):
        canonical_host(host)


# -- which addresses are public -------------------------------------------------------------------
@pytest.mark.parametrize(
    "address",
    [
        "127.0.0.1",
        "127.255.255.254",
        "10.0.0.1",
        "172.16.0.1",
        "172.31.255.255",
        "192.168.1.1",
        "169.254.169.254",
        "100.64.0.1",
        "100.127.255.254",
        "0.0.0.0",
        "0.1.2.3",
        "224.0.0.1",
        "239.255.255.250",
        "240.0.0.1",
        "255.255.255.255",
        "192.0.0.1",
        "192.0.2.1",
        "198.18.0.1",
        "198.51.100.1",
        "203.0.113.9",
        "192.88.99.1",
        "::",
        "::1",
        "fe80::1",
        "fc00::1",
        "fd12:3456::1",
        "fec0::1",
        "ff02::1",
        "ff0e::1",
        "2001:db8::1",
        "100::1",
        "2001::1",  # Teredo
        "::ffff:127.0.0.1",
        "::ffff:7f00:1",
        "::ffff:10.0.0.1",
        "::ffff:169.254.169.254",  # IPv4-mapped
        "::127.0.0.1",
        "::10.0.0.1",
        "::8.8.8.8",  # IPv4-compatible (deprecated, reserved)
        "2002:7f00:1::",
        "2002:a00:1::1",
        "2002:c0a8:101::",  # 6to4 of private addresses
        "64:ff9b::127.0.0.1",
        "64:ff9b::a00:1",
        "64:ff9b::169.254.169.254",  # NAT64 of private addresses
        "64:ff9b:1::8.8.8.8",  # NAT64 for local use
    ],
)
def test_private_and_special_addresses_are_not_public(address: str) -> None:
    assert not is_public(ipaddress.ip_address(address))


@pytest.mark.parametrize(
    "address",
    [
        "8.8.8.8",
        "93.184.216.34",
        "1.1.1.1",
        "2606:4700:4700::1111",
        "2a00:1450:4001:80b::200e",
        "::ffff:8.8.8.8",
        "64:ff9b::808:808",
        "2002:808:808::1",  # carrying a public IPv4 address
    ],
)
def test_public_addresses_are_public(address: str) -> None:
    assert is_public(ipaddress.ip_address(address))


def test_allow_loopback_allows_loopback_and_nothing_else() -> None:
    assert is_public(ipaddress.ip_address("127.0.0.1"), allow_loopback=True)
    assert is_public(ipaddress.ip_address("::1"), allow_loopback=True)
    for other in ("10.0.0.1", "169.254.169.254", "::ffff:127.0.0.1", "192.168.0.1", "fe80::1"):
        assert not is_public(ipaddress.ip_address(other), allow_loopback=True), other


# -- refused before any connection ----------------------------------------------------------------
@pytest.mark.parametrize(
    "host",
    [
        "127.1",
        "0x7f.0.0.1",
        "0177.0.0.1",
        "%31%32%37.0.0.1",
        "１２７．０．０．１",
        "127.0.0.1.",
        "2130706433",
        "[::1]",
        "[::ffff:127.0.0.1]",
        "[::ffff:7f00:1]",
        "[::127.0.0.1]",
        "[2002:7f00:1::]",
        "[64:ff9b::7f00:1]",
        "10.0.0.8",
        "169.254.169.254",
        "100.64.1.1",
        "224.0.0.251",
        "0.0.0.0",
        "[fe80::1%25eth0]",
    ],
)
async def test_every_spelling_of_a_private_address_is_refused(host: str, pictures: Pictures) -> None:
    error = await refused(f"http://{host}:{pictures.port}/cat.png")
    assert error.kind == "link_private"
    assert pictures.requests == []


@pytest.mark.parametrize(
    "name, addresses",
    [
        ("localtest.me", ["127.0.0.1"]),
        ("a.127.0.0.1.nip.io", ["127.0.0.1"]),
        ("127.0.0.1.nip.io", ["127.0.0.1"]),
        ("10.0.0.1.nip.io", ["10.0.0.1"]),
        ("metadata.example", ["169.254.169.254"]),
        ("v6.example", ["::1"]),
        ("mapped.example", ["::ffff:127.0.0.1"]),
        ("both.example", ["93.184.216.34", "10.0.0.1"]),  # one private answer is enough to refuse
    ],
)
async def test_names_that_resolve_to_private_addresses_are_refused(name: str, addresses: list[str]) -> None:
    resolver = Resolver({name: addresses})
    error = await refused(f"https://{name}/cat.png", LinkRules(resolver=resolver))
    assert error.kind == "link_private"
    assert resolver.asked == [name]


async def test_a_full_width_name_is_resolved_in_its_ascii_form() -> None:
    resolver = Resolver({"localtest.me": ["127.0.0.1"]})
    error = await refused("https://ｌｏｃａｌｔｅｓｔ．ｍｅ./cat.png", LinkRules(resolver=resolver))
    assert error.kind == "link_private" and resolver.asked == ["localtest.me"]


async def test_loopback_is_refused_by_default(pictures: Pictures) -> None:
    assert links.RULES.allow_loopback is False
    error = await refused(pictures.url("/cat.png"))
    assert error.kind == "link_private" and pictures.requests == []


@pytest.mark.parametrize(
    "url",
    [
        "file:///etc/passwd.png",
        "ftp://example.com/a.png",
        "gopher://example.com/a.png",
        "https://user:pw@example.com/a.png",
        "https://user@example.com/a.png",
        "https:///a.png",
        "https://[::1/a.png",
        "https://1.2.3.999/a.png",
        "https://example.com:99999/a.png",
        "javascript:alert(1)//a.png",
    ],
)
async def test_links_that_are_not_http_are_refused(url: str) -> None:
    resolver = Resolver({})
    error = await refused(url, LinkRules(resolver=resolver))
    assert error.kind == "bad_url" and resolver.asked == []


async def test_an_unknown_name_is_unreachable() -> None:
    error = await refused("https://no-such-host.example/a.png", LinkRules(resolver=Resolver({})))
    assert error.kind == "link_unreachable"


# -- fetched from the checked address only --------------------------------------------------------
async def test_a_picture_is_fetched_from_the_checked_address_with_its_name_as_host(
    pictures: Pictures,
) -> None:
    rules = loopback_rules()
    data = await fetch_picture(pictures.url("/cat.png", host="pictures.test"), CAP, rules=rules)
    assert data == png()
    assert rules.resolver.asked == ["pictures.test"]  # type: ignore[attr-defined]
    assert pictures.requests == [("/cat.png", f"pictures.test:{pictures.port}")]


def test_the_request_goes_to_the_address_and_keeps_the_name() -> None:
    link = parse_link("https://Pictures.Example:8443/a%20b.png?w=1#frag")
    assert (
        link.pinned_url(ipaddress.ip_address("93.184.216.34")) == "https://93.184.216.34:8443/a%20b.png?w=1"
    )
    assert (
        link.pinned_url(ipaddress.ip_address("2606:4700::1")) == "https://[2606:4700::1]:8443/a%20b.png?w=1"
    )
    assert link.host_header() == "pictures.example:8443" and link.name == "pictures.example"
    assert parse_link("https://pictures.example/a.png").host_header() == "pictures.example"
    assert parse_link("http://[2606:4700::1]/a.png").host_header() == "[2606:4700::1]"


async def test_redirects_are_followed_up_to_three(pictures: Pictures) -> None:
    data = await fetch_picture(pictures.url("/hops/2", host="pictures.test"), CAP, rules=loopback_rules())
    assert data == png() and [p for p, _ in pictures.requests] == [
        "/hops/2",
        "/hops/1",
        "/hops/0",
        "/cat.png",
    ]


async def test_a_fourth_redirect_is_refused(pictures: Pictures) -> None:
    error = await refused(pictures.url("/hops/3", host="pictures.test"), loopback_rules())
    assert error.kind == "link_redirects" and error.values == {"limit": 3}
    assert "/cat.png" not in [p for p, _ in pictures.requests]


@pytest.mark.parametrize(
    "where, kind",
    [
        ("http://10.0.0.8/cat.png", "link_private"),
        ("http://169.254.169.254/latest/meta-data", "link_private"),
        ("http://0xa.0.0.8/cat.png", "link_private"),
        ("http://%31%30.0.0.8/cat.png", "link_private"),
        ("http://１０.0.0.8/cat.png", "link_private"),
        ("http://167772168/cat.png", "link_private"),
        ("http://[::ffff:10.0.0.1]/cat.png", "link_private"),
        ("http://internal.example/cat.png", "link_private"),
        ("file:///etc/passwd", "bad_url"),
    ],
)
async def test_a_redirect_to_a_private_address_is_refused(pictures: Pictures, where: str, kind: str) -> None:
    # loopback is allowed for the picture server itself; nothing else private is
    rules = loopback_rules(**{"internal.example": ["192.168.0.10"]})
    error = await refused(pictures.url(f"/to?where={quote(where, safe='')}", host="pictures.test"), rules)
    assert error.kind == kind
    assert [p for p, _ in pictures.requests] == ["/to"]


async def test_a_redirect_to_a_loopback_spelling_is_refused_by_default() -> None:
    # a public first hop (its address checked) whose redirect names 127.1: refused before connecting
    link = parse_link("http://127.1/cat.png")
    with pytest.raises(LinkRefused) as e:
        await links.checked_addresses(link, LinkRules())
    assert e.value.kind == "link_private"


# -- the size is capped while streaming ----------------------------------------------------------
async def test_an_endless_body_is_stopped_at_the_cap(pictures: Pictures) -> None:
    error = await refused(pictures.url("/endless.png"), loopback_rules())
    assert error.kind == "link_too_large"
    await asyncio.sleep(0.2)  # let the server notice the reader has gone
    assert not pictures.finished_endless, pictures.sent
    assert pictures.sent < 20 * 1024 * 1024  # of 100 MB: stopped early, not read to the end


async def test_a_declared_length_over_the_cap_is_refused_before_reading(pictures: Pictures) -> None:
    error = await refused(pictures.url("/declared.png"), loopback_rules())
    assert error.kind == "link_too_large"


async def test_a_picture_just_under_the_cap_is_read(pictures: Pictures) -> None:
    assert await fetch_picture(pictures.url("/cat.png"), len(png()), rules=loopback_rules()) == png()
    assert (
        await refused(pictures.url("/cat.png"), loopback_rules(), max_bytes=len(png()) - 1)
    ).kind == "link_too_large"


async def test_an_error_status_is_said(pictures: Pictures) -> None:
    error = await refused(pictures.url("/missing.png"), loopback_rules())
    assert error.kind == "link_status" and error.values == {"status": 404}


async def test_a_server_that_does_not_answer_is_unreachable() -> None:
    error = await refused("http://127.0.0.1:9/cat.png", LinkRules(allow_loopback=True))
    assert error.kind == "link_unreachable"


# -- https: the name is the server name, the connection goes to the checked address ---------------
@pytest.fixture
def certificate(tmp_path: Path) -> tuple[Path, Path]:
    if shutil.which("openssl") is None:
        pytest.skip("openssl is not installed")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "1",
            "-subj",
            "/CN=pictures.test",
            "-addext",
            "subjectAltName=DNS:pictures.test",
            "-keyout",
            str(key),
            "-out",
            str(cert),
        ],
        check=True,
        capture_output=True,
    )
    return cert, key


async def test_https_checks_the_certificate_against_the_name_not_the_address(
    certificate: tuple[Path, Path],
) -> None:
    cert, key = certificate
    server_tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_tls.load_cert_chain(cert, key)
    seen: list[str] = []

    async def cat(request: web.Request) -> web.Response:
        seen.append(request.headers["Host"])
        return web.Response(body=png(), content_type="image/png")

    app = web.Application()
    app.router.add_get("/cat.png", cat)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=server_tls)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        trust = ssl.create_default_context(cafile=str(cert))
        resolver = Resolver({"pictures.test": ["127.0.0.1"], "other.test": ["127.0.0.1"]})
        rules = LinkRules(allow_loopback=True, resolver=resolver, tls=trust)
        assert await fetch_picture(f"https://pictures.test:{port}/cat.png", CAP, rules=rules) == png()
        assert seen == [f"pictures.test:{port}"]
        # the same address under a name the certificate does not carry: refused by TLS
        assert (await refused(f"https://other.test:{port}/cat.png", rules)).kind == "link_unreachable"
        assert (await refused(f"https://127.0.0.1:{port}/cat.png", rules)).kind == "link_unreachable"
    finally:
        await runner.cleanup()


# -- through check_images: bytes like an attachment, never a URL -----------------------------------
async def test_a_linked_picture_becomes_checked_bytes(pictures: Pictures) -> None:
    link = ImageInput(url=pictures.url("/photos/cat.png", host="pictures.test"), filename="cat.png")
    [checked] = await check_images((link,), CAP, rules=loopback_rules())
    assert checked.url is None and checked.data == png() and checked.content_type == "image/png"


async def test_a_linked_page_that_is_not_a_picture_is_refused(pictures: Pictures) -> None:
    link = ImageInput(url=pictures.url("/page.png"))
    with pytest.raises(ImageRejected) as e:
        await check_images((link,), CAP, rules=loopback_rules())
    assert e.value.kind == "not_image" and e.value.values["name"] == "page.png"


async def test_the_default_rules_are_used_when_none_are_given(
    pictures: Pictures, monkeypatch: pytest.MonkeyPatch
) -> None:
    link = ImageInput(url=pictures.url("/cat.png"))
    with pytest.raises(ImageRejected) as e:
        await check_images((link,), CAP)
    assert e.value.kind == "link_private"
    monkeypatch.setattr(links, "RULES", loopback_rules())
    [checked] = await check_images((link,), CAP)
    assert checked.data == png()


@pytest.mark.parametrize(
    "kind",
    [
        "bad_url",
        "link_private",
        "link_unreachable",
        "link_status",
        "link_redirects",
        "link_too_large",
        "not_image",
        "too_many_pixels",
    ],
)
@pytest.mark.parametrize("language", ["en", "zh", "zh-Hant"])
def test_every_refusal_has_words_in_every_language(kind: str, language: str) -> None:
    text = t(f"image.{kind}", language, name="cat.png", limit="10.0 MB", status=404)
    assert text.startswith("❌") and "{" not in text


# -- end to end: the core fetches, uploads, and IMA sees the upload service's URL ------------------
async def test_a_picture_link_in_the_text_is_fetched_uploaded_and_animated(
    core: BotCore, sandbox: Sandbox, pictures: Pictures, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(links, "RULES", loopback_rules())
    link = pictures.url("/photos/cat.png", host="pictures.test")
    conv = RecordingConversation()
    job = await core.handle(
        Incoming(platform="console", chat_id="chat", user_id="u1", text=f"把这张图动起来 {link}"), conv
    )
    assert job is not None, conv.events
    await asyncio.wait_for(job.wait(), 60)
    assert conv.kinds()[-1] == "video", conv.events
    [entry] = sandbox.ledger
    assert entry.task_type == "image_to_video"
    [sent] = entry.parameters["input_images"]
    assert sent.startswith(f"{sandbox.base_url}/media/uploads/") and "pictures.test" not in sent
    assert "http" not in entry.prompt and "pictures.test" not in entry.prompt
    assert [p for p, _ in pictures.requests] == ["/photos/cat.png"]


@pytest.mark.parametrize(
    "link",
    [
        "http://127.1/a.png",
        "https://0x7f.0.0.1/a.jpg",
        "https://0177.0.0.1/a.jpg",
        "https://%31%32%37.0.0.1/a.png",
        "https://１２７．０．０．１/a.png",
        "https://localtest.me/a.png",
        "https://app.127.0.0.1.nip.io/a.png",
    ],
)
async def test_a_private_picture_link_is_refused_in_words_and_nothing_is_spent(
    core: BotCore, sandbox: Sandbox, monkeypatch: pytest.MonkeyPatch, link: str
) -> None:
    # the names answer loopback, as they do on the internet (the test asks no real DNS)
    monkeypatch.setattr(
        links,
        "RULES",
        LinkRules(resolver=Resolver({"localtest.me": ["127.0.0.1"], "app.127.0.0.1.nip.io": ["127.0.0.1"]})),
    )
    conv = RecordingConversation()
    job = await core.handle(
        Incoming(platform="console", chat_id="chat", user_id="u1", text=f"animate this {link}"), conv
    )
    assert job is None
    assert conv.texts() == [t("image.link_private", "en")] and sandbox.ledger == []
