"""HTML5 pages that embed the images the way real sites do.

Each page mixes the ways an <img> names its source: absolute, root-relative, relative to the page,
protocol-relative, relative to a <base href>, lazy-loaded through data-src behind a placeholder, and
srcset. A crawler that resolves all of them finds exactly the page's images with their alt texts;
a decorative 1x1 pixel with an empty alt is there to be skipped.
"""

from __future__ import annotations

import html
import posixpath
from urllib.parse import urlsplit

import numpy as np

from curate.synthweb.content import ImageSpec

PIXEL_PATH = "/static/pixel.gif"
PLACEHOLDER = "data:image/gif;base64,R0lGODlhAQABAIAAAAAAAP///yH5BAEAAAAALAAAAAABAAEAAAIBRAA7"

_TITLES = {
    "en": "Photo gallery", "de": "Fotogalerie", "fr": "Galerie de photos", "es": "Galería de fotos",
    "it": "Galleria fotografica", "pt": "Galeria de fotos", "nl": "Fotogalerij", "ru": "Фотогалерея",
    "ja": "フォトギャラリー", "zh": "图片库",
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


def _img_tag(spec: ImageSpec, style: str, base_url: str, page_dir: str, base_dir: str | None) -> str:
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
    src = html.escape(src, quote=True)
    size = f'width="{spec.width}" height="{spec.height}"'
    if style == "lazy":
        return f'<img class="lazyload" src="{PLACEHOLDER}" data-src="{src}" alt="{alt}" {size}>'
    if style == "srcset":
        return f'<img src="{src}" srcset="{src} 1x, {src} 2x" alt="{alt}" {size} loading="lazy">'
    return f'<img src="{src}" alt="{alt}" {size} decoding="async">'


def render_page(p: int, n_pages: int, lang: str, specs: list[ImageSpec], base_url: str, seed: int) -> bytes:
    """The UTF-8 HTML of page p embedding `specs`."""
    rng = np.random.default_rng([seed, 7, p])
    path = page_path(p)
    page_dir = path if path.endswith("/") else posixpath.dirname(path)
    base_dir = "/img/" if p % 4 == 1 else None  # some pages resolve their image srcs against <base href>
    head = [
        "<!DOCTYPE html>",
        f'<html lang="{lang}">',
        "<head>",
        '<meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{_TITLES[lang]} {p + 1}</title>",
    ]
    if base_dir is not None:
        head.append(f'<base href="{base_url}{base_dir}">')
    links = [f'<a href="{base_url}/">Home</a>']
    if p > 0:
        links.append(f'<a href="{base_url}{page_path(p - 1)}">&laquo; {p}</a>')
    if p + 1 < n_pages:
        links.append(f'<a href="{base_url}{page_path(p + 1)}">{p + 2} &raquo;</a>')
    body = ["</head>", "<body>", f"<header><nav>{' | '.join(links)}</nav></header>", "<main>", "<article>",
            f"<h1>{_TITLES[lang]} {p + 1}</h1>", f"<p>{_INTRO[lang]}</p>"]
    styles = ("absolute", "root", "relative", "protocol", "lazy", "srcset")
    for spec in specs:
        style = styles[int(rng.integers(len(styles)))]
        body.append(f"<figure>{_img_tag(spec, style, base_url, page_dir, base_dir)}</figure>")
    if p % 3 == 0:
        body.append(f'<img src="{base_url}{PIXEL_PATH}" alt="" width="1" height="1">')
    body += ["</article>", "</main>", f"<footer><p>&copy; 2024 Synthetic Web {p}</p></footer>", "</body>",
             "</html>", ""]
    return "\n".join(head + body).encode("utf-8")


def render_index(page_paths: list[str], base_url: str) -> bytes:
    """The site's home page: a plain list of links to every page."""
    items = "\n".join(f'<li><a href="{base_url}{path}">{path}</a></li>' for path in page_paths)
    return (f'<!DOCTYPE html>\n<html lang="en">\n<head><meta charset="utf-8"><title>Synthetic Web</title></head>\n'
            f"<body><h1>Synthetic Web</h1>\n<ul>\n{items}\n</ul>\n</body>\n</html>\n").encode()
