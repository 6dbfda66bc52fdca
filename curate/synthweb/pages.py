"""HTML5 pages that embed the images the way real sites do.

Each page mixes the ways an <img> names its source: absolute, root-relative, relative to the page,
protocol-relative, relative to a <base href>, lazy-loaded through data-src behind a placeholder, and
srcset. A crawler that resolves all of them finds exactly the page's images with their alt texts;
a decorative 1x1 pixel with an empty alt is there to be skipped.
"""

from __future__ import annotations

import html
import posixpath
from dataclasses import dataclass
from urllib.parse import urlsplit

import numpy as np

from curate.synthweb.content import ImageSpec

PIXEL_PATH = "/static/pixel.gif"
PLACEHOLDER = "data:image/gif;base64,R0lGODlhAQABAIAAAAAAAP///yH5BAEAAAAALAAAAAABAAEAAAIBRAA7"

_TITLES = {
    "en": "Photo gallery",
    "de": "Fotogalerie",
    "fr": "Galerie de photos",
    "es": "Galería de fotos",
    "it": "Galleria fotografica",
    "pt": "Galeria de fotos",
    "nl": "Fotogalerij",
    "ru": "Фотогалерея",
    "ja": "フォトギャラリー",
    "zh": "图片库",
}
_INTRO = {
    "en": "Here are some of the pictures we took this week. Click a photo to see it in full size.",
    "de": "Hier sind einige der Bilder, die wir diese Woche gemacht haben. Klicken Sie auf ein Foto.",
    "fr": "Voici quelques-unes des photos prises cette semaine. Cliquez sur une photo pour l'agrandir.",
    "es": "Estas son algunas de las fotos que hicimos esta semana. Haz clic en una foto para ampliarla.",
    "it": "Ecco alcune delle foto scattate questa settimana. Fai clic su una foto per ingrandirla.",
    "pt": "Aqui estão algumas das fotos que tiramos esta semana. Clique em uma foto para ampliá-la.",
    "nl": "Hier zijn enkele foto's die we deze week hebben gemaakt. Klik op een foto om hem te vergroten.",
    "ru": "Вот несколько фотографий, которые мы сделали на этой неделе. Нажмите на фото, чтобы увеличить.",
    "ja": "今週撮影した写真の一部です。写真をクリックすると拡大表示されます。",
    "zh": "这是我们本周拍摄的一些照片。点击照片查看大图。",
}


def page_path(p: int) -> str:
    """URL path of page p: a mix of flat files and folder-style pages, so relative srcs differ."""
    return f"/pages/page-{p:04d}.html" if p % 3 else f"/blog/{2020 + p % 5}/post-{p:04d}/"


def _relative(target: str, from_dir: str) -> str:
    path, sep, query = target.partition("?")
    rel = posixpath.relpath(path, from_dir)
    return rel + sep + query


# Legacy charsets some pages are served in (declared in <meta charset> and in the Content-Type header).
_LEGACY_CHARSET = {
    "de": "windows-1252",
    "fr": "windows-1252",
    "es": "iso-8859-1",
    "it": "windows-1252",
    "pt": "iso-8859-1",
    "nl": "windows-1252",
    "ru": "windows-1251",
    "ja": "shift_jis",
    "zh": "gb18030",
    "en": "windows-1252",
}


@dataclass(frozen=True)
class RenderedPage:
    """A page's bytes plus what a crawl's metadata extract (WAT) records about it."""

    html: bytes
    encoding: str
    title: str
    base: str | None
    links: tuple[dict, ...]  # WAT-style {"path": "IMG@/src" | "A@/href", "url": raw attribute, "alt"/"text"}
    lazy: tuple[str, ...]  # absolute URLs of images named only by data-src (a src-only extractor misses them)


def _img_tag(
    spec: ImageSpec, style: str, base_url: str, page_dir: str, base_dir: str | None
) -> tuple[str, str]:
    """The <img> markup for one image and its raw src attribute value."""
    netloc = urlsplit(base_url).netloc
    alt = html.escape(spec.caption, quote=True)
    if base_dir is not None:
        src = _relative(spec.path, base_dir)
    elif style == "absolute":
        src = base_url + spec.path
    elif style == "relative":
        src = _relative(spec.path, page_dir)
    elif style == "protocol":
        src = f"//{netloc}{spec.path}"
    else:
        src = spec.path
    esc = html.escape(src, quote=True)
    size = f'width="{spec.width}" height="{spec.height}"'
    if style == "lazy":
        return f'<img class="lazyload" src="{PLACEHOLDER}" data-src="{esc}" alt="{alt}" {size}>', PLACEHOLDER
    if style == "srcset":
        return f'<img src="{esc}" srcset="{esc} 1x, {esc} 2x" alt="{alt}" {size} loading="lazy">', src
    return f'<img src="{esc}" alt="{alt}" {size} decoding="async">', src


def render_page(
    p: int, n_pages: int, lang: str, specs: list[ImageSpec], base_url: str, seed: int
) -> RenderedPage:
    """Page p embedding `specs`: UTF-8 mostly, a legacy charset on every seventh page."""
    rng = np.random.default_rng([seed, 7, p])
    path = page_path(p)
    page_dir = path if path.endswith("/") else posixpath.dirname(path)
    base_dir = "/img/" if p % 4 == 1 else None  # some pages resolve their image srcs against <base href>
    encoding = _LEGACY_CHARSET[lang] if p % 7 == 5 else "utf-8"
    title = f"{_TITLES[lang]} {p + 1}"
    head = [
        "<!DOCTYPE html>",
        f'<html lang="{lang}">',
        "<head>",
        f'<meta charset="{encoding}">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{title}</title>",
    ]
    base = None if base_dir is None else base_url + base_dir
    if base is not None:
        head.append(f'<base href="{base}">')
    nav = [(f"{base_url}/", "Home")]
    if p > 0:
        nav.append((f"{base_url}{page_path(p - 1)}", f"\u00ab {p}"))
    if p + 1 < n_pages:
        nav.append((f"{base_url}{page_path(p + 1)}", f"{p + 2} \u00bb"))
    links = [{"path": "A@/href", "url": url, "text": text} for url, text in nav]
    anchors = " | ".join(f'<a href="{url}">{html.escape(text)}</a>' for url, text in nav)
    body = [
        "</head>",
        "<body>",
        f"<header><nav>{anchors}</nav></header>",
        "<main>",
        "<article>",
        f"<h1>{title}</h1>",
        f"<p>{_INTRO[lang]}</p>",
    ]
    styles = ("absolute", "root", "relative", "protocol", "lazy", "srcset")
    lazy = []
    for spec in specs:
        style = styles[int(rng.integers(len(styles)))]
        tag, src = _img_tag(spec, style, base_url, page_dir, base_dir)
        body.append(f"<figure>{tag}</figure>")
        links.append({"path": "IMG@/src", "url": src, "alt": spec.caption})
        if style == "lazy":
            lazy.append(base_url + spec.path)
    if p % 3 == 0:
        body.append(f'<img src="{base_url}{PIXEL_PATH}" alt="" width="1" height="1">')
        links.append({"path": "IMG@/src", "url": base_url + PIXEL_PATH, "alt": ""})
    body += [
        "</article>",
        "</main>",
        f"<footer><p>&copy; 2024 Synthetic Web {p}</p></footer>",
        "</body>",
        "</html>",
        "",
    ]
    data = "\n".join(head + body).encode(encoding, errors="xmlcharrefreplace")
    return RenderedPage(
        html=data, encoding=encoding, title=title, base=base, links=tuple(links), lazy=tuple(lazy)
    )


def render_index(page_paths: list[str], base_url: str) -> bytes:
    """The site's home page: a plain list of links to every page."""
    items = "\n".join(f'<li><a href="{base_url}{path}">{path}</a></li>' for path in page_paths)
    return (
        f'<!DOCTYPE html>\n<html lang="en">\n'
        f'<head><meta charset="utf-8"><title>Synthetic Web</title></head>\n'
        f"<body><h1>Synthetic Web</h1>\n<ul>\n{items}\n</ul>\n</body>\n</html>\n"
    ).encode()
