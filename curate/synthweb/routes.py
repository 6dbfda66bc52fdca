"""What the synthetic web answers for each path: images, pages, robots.txt, and the faults."""

from __future__ import annotations

from typing import TYPE_CHECKING
from urllib.parse import unquote

from curate.synthweb import faults
from curate.synthweb.faults import FAULT_PATHS
from curate.synthweb.pages import PIXEL_PATH
from curate.synthweb.photos import MIME

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable

    from curate.synthweb.content import ImageSpec
    from curate.synthweb.server import Handler
    from curate.synthweb.web import SyntheticWeb

    # How a fault answers: (web, handler, the fault's image spec, request path key, HEAD only).
    FaultResponder = Callable[[SyntheticWeb, Handler, ImageSpec, str, bool], None]

_CHUNK = 64 * 1024
_HTML = "text/html; charset=utf-8"
_FAULT_BY_PATH = {path: name for name, path in FAULT_PATHS.items()}
_CACHE = ("Cache-Control", "public, max-age=86400")


def normalize(path: str) -> str:
    """The lookup key of a request path: percent-decoded, so %C3%B6 and ö name the same file."""
    return unquote(path)


def respond(web: SyntheticWeb, h: Handler, head_only: bool) -> None:
    key = normalize(h.path)
    if key == "/robots.txt":
        body = (faults.ROBOTS_TXT if web.faults_enabled else faults.ROBOTS_TXT_OPEN).encode()
        return h.send(200, "text/plain; charset=utf-8", body, head_only)
    fault = _fault_name(key)
    if fault is not None:
        return (
            _fault(web, h, fault, key, head_only)
            if web.faults_enabled
            else _image(web, h, web.fault_spec(fault), head_only)
        )
    spec = web.spec_for_path(key)
    if spec is not None:
        return _image(web, h, spec, head_only)
    page = web.page_html(key)
    if page is not None:
        return h.send(200, f"text/html; charset={page[1]}", page[0], head_only, [_CACHE])
    if key == PIXEL_PATH:
        return h.send(200, "image/gif", faults.PIXEL_GIF, head_only, [_CACHE])
    h.send(404, _HTML, faults.error_page(404, "Not Found"), head_only)


def _fault_name(key: str) -> str | None:
    if key.startswith("/fault/hop/") and key.removeprefix("/fault/hop/").removesuffix(".jpg").isdigit():
        return "redirect_chain"
    if key == "/fault/loop-b.jpg":
        return "redirect_loop"
    if key.startswith("/private/"):
        return "robots_disallowed"
    return _FAULT_BY_PATH.get(key)


def _image(
    web: SyntheticWeb,
    h: Handler,
    spec: ImageSpec,
    head_only: bool,
    extra: Iterable[tuple[str, str]] = (),
    content_type: str | None = None,
) -> None:
    h.send(
        200,
        content_type or MIME[spec.fmt],
        web.image_bytes(spec),
        head_only,
        [_CACHE, ("ETag", f'"{spec.seed:x}-{spec.index}"'), *extra],
    )


def _fault(web: SyntheticWeb, h: Handler, name: str, key: str, head_only: bool) -> None:
    _FAULTS[name](web, h, web.fault_spec(name), key, head_only)


def _error_page(code: int, title: str, retry_after: bool = False) -> FaultResponder:
    """A fault that is an HTTP error page (with the web's Retry-After when the status invites a retry)."""

    def respond(web: SyntheticWeb, h: Handler, spec: ImageSpec, key: str, head_only: bool) -> None:
        h.send(
            code,
            _HTML,
            faults.error_page(code, title),
            head_only,
            [("Retry-After", str(web.retry_after))] if retry_after else [],
        )

    return respond


def _rate_limited(web: SyntheticWeb, h: Handler, spec: ImageSpec, key: str, head_only: bool) -> None:
    """429 until the path's tokens are spent, then the image (a polite client gets it after backing off)."""
    if web.take_rate_limit_token(key):
        _error_page(429, "Too Many Requests", retry_after=True)(web, h, spec, key, head_only)
    else:
        _image(web, h, spec, head_only)


def _slow(web: SyntheticWeb, h: Handler, spec: ImageSpec, key: str, head_only: bool) -> None:
    if not h.server.closing.wait(web.slow_seconds):
        _image(web, h, spec, head_only)


def _stall(web: SyntheticWeb, h: Handler, spec: ImageSpec, key: str, head_only: bool) -> None:
    """A quarter of the body, then silence until stall_seconds pass: the client's read timeout must fire."""
    body = web.image_bytes(spec)
    h.wfile.write(
        h.head_bytes(200, [("Content-Type", MIME[spec.fmt]), ("Content-Length", str(len(body)))])
        + body[: len(body) // 4]
    )
    h.server.closing.wait(web.stall_seconds)
    h.abort()


def _truncated(web: SyntheticWeb, h: Handler, spec: ImageSpec, key: str, head_only: bool) -> None:
    """Half the promised Content-Length, then the connection closes."""
    body = web.image_bytes(spec)
    h.wfile.write(
        h.head_bytes(
            200,
            [("Content-Type", MIME[spec.fmt]), ("Content-Length", str(len(body))), ("Connection", "close")],
        )
        + body[: len(body) // 2]
    )
    h.abort()


def _redirect_chain(web: SyntheticWeb, h: Handler, spec: ImageSpec, key: str, head_only: bool) -> None:
    """/fault/hop/N.jpg redirects to hop N-1; hop 0 is the image."""
    hops = int(key.rsplit("/", 1)[1].split(".")[0])
    if hops <= 0:
        return _image(web, h, spec, head_only)
    target = f"/fault/hop/{hops - 1}.jpg"
    # Alternate absolute and relative Location headers, as real redirect chains do.
    _redirect(h, web.base_url + target if hops % 2 else f"{hops - 1}.jpg", head_only)


def _redirect_loop(web: SyntheticWeb, h: Handler, spec: ImageSpec, key: str, head_only: bool) -> None:
    _redirect(h, "/fault/loop-b.jpg" if key.endswith("loop-a.jpg") else "/fault/loop-a.jpg", head_only)


def _redirect_private(web: SyntheticWeb, h: Handler, spec: ImageSpec, key: str, head_only: bool) -> None:
    _redirect(h, web.private_redirect_target, head_only)


def _huge_body(chunked: bool) -> FaultResponder:
    def respond(web: SyntheticWeb, h: Handler, spec: ImageSpec, key: str, head_only: bool) -> None:
        _huge(web, h, chunked=chunked, head_only=head_only)

    return respond


def _exif_rotated(web: SyntheticWeb, h: Handler, spec: ImageSpec, key: str, head_only: bool) -> None:
    body = faults.exif_rotated_jpeg(spec.label, spec.seed, (spec.width, spec.height), spec.background)
    h.send(200, "image/jpeg", body, head_only)


def _image_fault(content_type: str | None = None, extra: tuple[tuple[str, str], ...] = ()) -> FaultResponder:
    """A fault that serves the image itself, with a wrong Content-Type or an extra header."""

    def respond(web: SyntheticWeb, h: Handler, spec: ImageSpec, key: str, head_only: bool) -> None:
        _image(web, h, spec, head_only, extra=extra, content_type=content_type)

    return respond


def _body(content_type: str, make: Callable[[SyntheticWeb], bytes]) -> FaultResponder:
    """A fault that is a 200 with a fixed kind of body (soft 404 page, corrupt JPEG, PNG bomb)."""

    def respond(web: SyntheticWeb, h: Handler, spec: ImageSpec, key: str, head_only: bool) -> None:
        h.send(200, content_type, make(web), head_only)

    return respond


# Each fault of faults.FAULT_PATHS -> what it answers (redirect_too_many is a long redirect_chain, named by
# _fault_name); test_every_fault_happens requests every one.
_FAULTS: dict[str, FaultResponder] = {
    "http_404": _error_page(404, "Not Found"),
    "http_500": _error_page(500, "Internal Server Error"),
    "http_429": _rate_limited,
    "http_503": _error_page(503, "Service Unavailable", retry_after=True),
    "slow": _slow,
    "stall": _stall,
    "truncated": _truncated,
    "redirect_chain": _redirect_chain,
    "redirect_loop": _redirect_loop,
    "redirect_private": _redirect_private,
    "wrong_content_type": _image_fault(content_type=_HTML),
    "html_instead_of_image": _body(_HTML, lambda web: faults.SOFT_404_HTML),
    "corrupt_image": _body("image/jpeg", lambda web: faults.corrupt_jpeg(web.seed)),
    "huge": _huge_body(chunked=False),
    "huge_chunked": _huge_body(chunked=True),
    "decompression_bomb": _body("image/png", lambda web: faults.bomb_png(web.bomb_side)),
    "x_robots_noai": _image_fault(extra=(("X-Robots-Tag", "noai, noimageai"),)),
    "robots_disallowed": _image_fault(),
    "exif_rotated": _exif_rotated,
}


def _redirect(h: Handler, location: str, head_only: bool) -> None:
    h.send(302, _HTML, b"<html><body>Moved</body></html>\n", head_only, [("Location", location)])


def _huge(web: SyntheticWeb, h: Handler, chunked: bool, head_only: bool) -> None:
    """Stream `huge_bytes` of a JPEG-looking body made of one reused chunk: nothing big is ever held."""
    total = web.huge_bytes
    length = ("Transfer-Encoding", "chunked") if chunked else ("Content-Length", str(total))
    h.wfile.write(h.head_bytes(200, [("Content-Type", "image/jpeg"), length]))
    if head_only:
        return
    first = faults.JPEG_HEADER + bytes(_CHUNK - len(faults.JPEG_HEADER))
    zeros = bytes(_CHUNK)
    sent = 0
    try:
        while sent < total and not h.server.closing.is_set():
            piece = (first if sent == 0 else zeros)[: min(_CHUNK, total - sent)]
            h.wfile.write(b"%x\r\n%s\r\n" % (len(piece), piece) if chunked else piece)
            sent += len(piece)
        if chunked:
            h.wfile.write(b"0\r\n\r\n")
    except OSError:  # the client stopped reading past its size cap: exactly what should happen
        h.close_connection = True
