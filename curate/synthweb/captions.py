"""Alt texts as web pages write them: grammatical phrases in several languages, plus junk.

Noun phrases are written out per language (no grammar engine), so gender and case agreement are right:
"ein roter Kreis", "une croix blanche", "красный круг". Background phrases are complete prepositional
phrases, so combining them never changes the noun phrase's case.
"""

from __future__ import annotations

import numpy as np

from curate.synthweb.photos import BACKGROUNDS, CLASSES

# Language -> share of pages written in it (English is the majority, as on the web).
LANGUAGE_WEIGHTS: dict[str, float] = {
    "en": 0.50,
    "de": 0.07,
    "fr": 0.07,
    "es": 0.07,
    "it": 0.05,
    "pt": 0.05,
    "nl": 0.04,
    "ru": 0.05,
    "ja": 0.05,
    "zh": 0.05,
}
LANGUAGES: tuple[str, ...] = tuple(LANGUAGE_WEIGHTS)

# Indefinite noun phrase of each class, in CLASSES order.
_NP: dict[str, tuple[str, ...]] = {
    "en": (
        "a red circle",
        "a blue square",
        "a green triangle",
        "a yellow star",
        "a purple hexagon",
        "an orange diamond",
        "a white cross",
        "a pink heart",
        "a black ring",
        "a turquoise crescent",
    ),
    "de": (
        "ein roter Kreis",
        "ein blaues Quadrat",
        "ein grünes Dreieck",
        "ein gelber Stern",
        "ein violettes Sechseck",
        "eine orangefarbene Raute",
        "ein weißes Kreuz",
        "ein rosa Herz",
        "ein schwarzer Ring",
        "ein türkisfarbener Halbmond",
    ),
    "fr": (
        "un cercle rouge",
        "un carré bleu",
        "un triangle vert",
        "une étoile jaune",
        "un hexagone violet",
        "un losange orange",
        "une croix blanche",
        "un cœur rose",
        "un anneau noir",
        "un croissant turquoise",
    ),
    "es": (
        "un círculo rojo",
        "un cuadrado azul",
        "un triángulo verde",
        "una estrella amarilla",
        "un hexágono morado",
        "un rombo naranja",
        "una cruz blanca",
        "un corazón rosa",
        "un anillo negro",
        "una media luna turquesa",
    ),
    "it": (
        "un cerchio rosso",
        "un quadrato blu",
        "un triangolo verde",
        "una stella gialla",
        "un esagono viola",
        "un rombo arancione",
        "una croce bianca",
        "un cuore rosa",
        "un anello nero",
        "una mezzaluna turchese",
    ),
    "pt": (
        "um círculo vermelho",
        "um quadrado azul",
        "um triângulo verde",
        "uma estrela amarela",
        "um hexágono roxo",
        "um losango laranja",
        "uma cruz branca",
        "um coração rosa",
        "um anel preto",
        "uma meia-lua turquesa",
    ),
    "nl": (
        "een rode cirkel",
        "een blauw vierkant",
        "een groene driehoek",
        "een gele ster",
        "een paarse zeshoek",
        "een oranje ruit",
        "een wit kruis",
        "een roze hart",
        "een zwarte ring",
        "een turquoise halve maan",
    ),
    "ru": (
        "красный круг",
        "синий квадрат",
        "зелёный треугольник",
        "жёлтая звезда",
        "фиолетовый шестиугольник",
        "оранжевый ромб",
        "белый крест",
        "розовое сердце",
        "чёрное кольцо",
        "бирюзовый полумесяц",
    ),
    "ja": (
        "赤い丸",
        "青い四角",
        "緑の三角形",
        "黄色い星",
        "紫の六角形",
        "オレンジ色のひし形",
        "白い十字",
        "ピンクのハート",
        "黒いリング",
        "ターコイズ色の三日月",
    ),
    "zh": (
        "红色圆形",
        "蓝色正方形",
        "绿色三角形",
        "黄色星星",
        "紫色六边形",
        "橙色菱形",
        "白色十字",
        "粉色爱心",
        "黑色圆环",
        "青绿色新月",
    ),
}

# Prepositional phrase of each background, in BACKGROUNDS order (grass, sand, sky, wood, brick, snow,
# concrete, water).
_BG: dict[str, tuple[str, ...]] = {
    "en": (
        "on a grassy background",
        "on the sand",
        "against a blue sky",
        "on a wooden table",
        "in front of a brick wall",
        "in the snow",
        "on a concrete floor",
        "on the water",
    ),
    "de": (
        "auf einer Wiese",
        "im Sand",
        "vor blauem Himmel",
        "auf einem Holztisch",
        "vor einer Backsteinmauer",
        "im Schnee",
        "auf einem Betonboden",
        "auf dem Wasser",
    ),
    "fr": (
        "sur l'herbe",
        "sur le sable",
        "devant un ciel bleu",
        "sur une table en bois",
        "devant un mur de briques",
        "dans la neige",
        "sur un sol en béton",
        "sur l'eau",
    ),
    "es": (
        "sobre la hierba",
        "en la arena",
        "con el cielo azul de fondo",
        "sobre una mesa de madera",
        "delante de una pared de ladrillo",
        "en la nieve",
        "sobre un suelo de hormigón",
        "sobre el agua",
    ),
    "it": (
        "sull'erba",
        "sulla sabbia",
        "contro un cielo azzurro",
        "su un tavolo di legno",
        "davanti a un muro di mattoni",
        "nella neve",
        "su un pavimento di cemento",
        "sull'acqua",
    ),
    "pt": (
        "na grama",
        "na areia",
        "contra um céu azul",
        "sobre uma mesa de madeira",
        "em frente a uma parede de tijolos",
        "na neve",
        "sobre um piso de concreto",
        "na água",
    ),
    "nl": (
        "op het gras",
        "in het zand",
        "tegen een blauwe lucht",
        "op een houten tafel",
        "voor een bakstenen muur",
        "in de sneeuw",
        "op een betonnen vloer",
        "op het water",
    ),
    "ru": (
        "на траве",
        "на песке",
        "на фоне голубого неба",
        "на деревянном столе",
        "на фоне кирпичной стены",
        "на снегу",
        "на бетонном полу",
        "на воде",
    ),
    "ja": (
        "草の上の",
        "砂の上の",
        "青空を背景にした",
        "木のテーブルの上の",
        "レンガの壁の前の",
        "雪の上の",
        "コンクリートの床の上の",
        "水面に浮かぶ",
    ),
    "zh": ("草地上的", "沙滩上的", "蓝天下的", "木桌上的", "砖墙前的", "雪地里的", "水泥地上的", "水面上的"),
}

# Caption templates per language: {np} is the noun phrase, {bg} the background phrase.
_TEMPLATES: dict[str, tuple[str, ...]] = {
    "en": (
        "{np} {bg}",
        "Photo of {np} {bg}",
        "A close-up of {np} {bg}",
        "{NP} {bg}, stock photo",
        "{NP} {bg} - free image",
        "{NP} {bg} | Stock images & photos",
        "My photo: {np} {bg}",
    ),
    "de": ("{NP} {bg}", "Foto: {np} {bg}", "Nahaufnahme: {np} {bg}", "{NP} {bg} - Stockfoto"),
    "fr": ("{NP} {bg}", "Photo d'{np} {bg}", "Gros plan : {np} {bg}", "{NP} {bg} - image libre de droits"),
    "es": ("{NP} {bg}", "Foto de {np} {bg}", "Primer plano de {np} {bg}", "{NP} {bg} - imagen gratis"),
    "it": ("{NP} {bg}", "Foto di {np} {bg}", "Primo piano di {np} {bg}", "{NP} {bg} - foto gratuita"),
    "pt": ("{NP} {bg}", "Foto de {np} {bg}", "Close de {np} {bg}", "{NP} {bg} - imagem grátis"),
    "nl": ("{NP} {bg}", "Foto van {np} {bg}", "Close-up van {np} {bg}", "{NP} {bg} - gratis foto"),
    "ru": ("{NP} {bg}", "Фото: {np} {bg}", "Крупный план: {np} {bg}", "{NP} {bg} — бесплатное фото"),
    "ja": ("{bg}{np}", "{bg}{np}の写真", "{bg}{np}のクローズアップ", "{np}（{bg_bare}）のフリー素材"),
    "zh": ("{bg}{np}", "{bg}{np}的照片", "{bg}{np}特写", "{np}图片（{bg_bare}）"),
}

# Captions that real pages put in alt attributes and that say nothing about the image.
JUNK_CAPTIONS: tuple[str, ...] = (
    "IMG_{n:04d}.jpg",
    "DSC{n:05d}.JPG",
    "image",
    "photo",
    "untitled",
    "thumbnail",
    "click here",
    "https://cdn.example.com/uploads/{n}.jpg",
    "banner",
    "Bild {n}",
    "screenshot-{n}.png",
)


def _first_upper(text: str) -> str:
    return text[:1].upper() + text[1:]


def caption_for(label: str, background: str, lang: str, rng: np.random.Generator) -> str:
    """A grammatical alt text in `lang` describing an image of `label` on `background`."""
    if lang not in _NP:
        raise ValueError(f"no captions for language {lang!r}; choose one of: {', '.join(LANGUAGES)}")
    np_ = _NP[lang][CLASSES.index(label)]
    bg = _BG[lang][BACKGROUNDS.index(background)]
    template = _TEMPLATES[lang][int(rng.integers(len(_TEMPLATES[lang])))]
    # The bare background phrase drops the trailing particle (Japanese の, Chinese 的).
    bg_bare = bg.removesuffix("の").removesuffix("的")
    return template.format(np=np_, NP=_first_upper(np_), bg=bg, bg_bare=bg_bare)


def junk_caption(rng: np.random.Generator) -> str:
    """A caption of the kind that carries no description (file names, 'image', a URL)."""
    return JUNK_CAPTIONS[int(rng.integers(len(JUNK_CAPTIONS)))].format(n=int(rng.integers(1, 99999)))


def choose_language(rng: np.random.Generator) -> str:
    return LANGUAGES[int(rng.choice(len(LANGUAGES), p=np.array(list(LANGUAGE_WEIGHTS.values()))))]
