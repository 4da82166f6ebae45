"""Drawing the sample's images at full resolution, each pixel's labels known exactly.

Three sources imitate Broden's: ``scenes`` (ADE20K-like: a background of sky/ground or wall/floor with objects and
their parts in two levels, and a scene label), ``surfaces`` (OpenSurfaces-like: material regions) and ``textures``
(DTD-like: whole-image texture labels, one to three per image). Objects are either photographs with traced outlines
(:data:`broden.sample.assets.CUTOUTS`) or drawn from shapes filled with real textures. Everything depends only on
the ``numpy`` Generator passed in, so a seed reproduces an image exactly.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
from PIL import Image

from broden.sample.assets import (
    CUTOUTS,
    MATERIALS,
    Fill,
    asset,
    ellipse,
    flat,
    photo,
    poly,
    rasterize,
    sky,
    tinted,
)

#: Label-map layers of each pixel category the drawing fills (color is computed from the finished pixels).
PIXEL_LAYERS = {"object": 1, "part": 2, "material": 1}

STRONG_COLORS = (
    (200, 25, 30), (25, 60, 200), (245, 205, 20), (30, 150, 50), (245, 245, 240), (20, 20, 22), (250, 130, 10),
    (240, 150, 195), (120, 40, 150), (120, 75, 40), (130, 130, 130),
)


def paint(rgb: np.ndarray, mask: np.ndarray, fill: Fill, rng: np.random.Generator) -> tuple[slice, slice] | None:
    """Fill the pixels of ``mask`` (a fill the size of the mask's bounding box); returns that box."""
    rows, cols = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
    if rows.size == 0:
        return None
    box = (slice(rows[0], rows[-1] + 1), slice(cols[0], cols[-1] + 1))
    sub = mask[box]
    np.copyto(rgb[box], fill(sub.shape[0], sub.shape[1], rng), where=sub[..., None])
    return box


@dataclass
class Canvas:
    """A full-resolution image with its label maps; label ids are local to the canvas (``names``)."""

    height: int
    width: int
    rgb: np.ndarray = field(init=False)
    maps: dict[str, np.ndarray] = field(init=False)
    names: list[str] = field(default_factory=lambda: [""])
    image_labels: dict[str, list[str]] = field(default_factory=lambda: {"scene": [], "texture": []})

    def __post_init__(self) -> None:
        self.rgb = np.zeros((self.height, self.width, 3), np.float32)
        self.maps = {c: np.zeros((n, self.height, self.width), np.int16) for c, n in PIXEL_LAYERS.items()}

    def id(self, name: str) -> int:
        if name not in self.names:
            self.names.append(name)
        return self.names.index(name)

    def fill(self, mask: np.ndarray, fill: Fill, rng: np.random.Generator, **labels: str) -> None:
        """Paint ``mask`` with a fill and give it labels, e.g. ``object="sky"`` or ``material="brick"``."""
        box = paint(self.rgb, mask, fill, rng)
        if box is not None:
            for category, name in labels.items():
                np.copyto(self.maps[category][0][box], self.id(name), where=mask[box])

    def paste(self, sprite: "Sprite", left: int, top: int) -> None:
        """Put a sprite in front of everything, clipped to the canvas; it hides the object and parts behind it."""
        h, w = sprite.rgb.shape[:2]
        y0, x0, y1, x1 = max(top, 0), max(left, 0), min(top + h, self.height), min(left + w, self.width)
        if y1 <= y0 or x1 <= x0:
            return
        src = (slice(y0 - top, y1 - top), slice(x0 - left, x1 - left))
        dst = (slice(y0, y1), slice(x0, x1))
        np.copyto(self.rgb[dst], sprite.rgb[src], where=sprite.alpha[src][..., None])
        objects, parts = self.maps["object"][0][dst], self.maps["part"][:, dst[0], dst[1]]
        for obj in sprite.objects:
            m = obj.mask[src]
            np.copyto(objects, self.id(obj.name), where=m)
            np.copyto(parts, 0, where=m)
            for layer, name, pm in obj.parts:
                np.copyto(parts[layer], self.id(name), where=pm[src] & m)

    def image(self) -> np.ndarray:
        return np.clip(np.rint(self.rgb), 0, 255).astype(np.uint8)


@dataclass
class SpriteObject:
    name: str
    mask: np.ndarray
    parts: list[tuple[int, str, np.ndarray]]  # (layer, part name, mask), painted in order


@dataclass
class Sprite:
    """An object (or a few, front ones last) with its pixels and exact masks."""

    rgb: np.ndarray
    objects: list[SpriteObject]

    @property
    def alpha(self) -> np.ndarray:
        return np.logical_or.reduce([o.mask for o in self.objects])

    def flipped(self) -> "Sprite":
        return Sprite(
            self.rgb[:, ::-1],
            [SpriteObject(o.name, o.mask[:, ::-1], [(l, n, m[:, ::-1]) for l, n, m in o.parts]) for o in self.objects],
        )


# -- objects ---------------------------------------------------------------------------------------------------------
def _rect(h: int, w: int, x0: float, y0: float, x1: float, y1: float) -> np.ndarray:
    return rasterize([poly(x0, y0, x1, y0, x1, y1, x0, y1)], h, w)


def _choice(rng: np.random.Generator, options: Sequence):
    return options[int(rng.integers(len(options)))]


def cutout_sprite(key: str, height: int) -> Sprite:
    """A traced photograph scaled to ``height`` pixels; masks are rasterised at that scale, so they fit exactly."""
    cut = CUTOUTS[key]
    left, top, right, bottom = cut.box
    scale = height / (bottom - top)
    width = max(1, round((right - left) * scale))
    window = np.ascontiguousarray(asset(cut.asset)[top:bottom, left:right])
    rgb = np.asarray(Image.fromarray(window).resize((width, height), Image.BILINEAR), np.float32)

    def draw(shapes):
        return rasterize(shapes, height, width, scale, (left, top))

    objects = []
    for obj in cut.objects:
        mask = draw(obj.shapes)
        level0 = [(0, p.name, draw(p.shapes) & mask) for p in obj.parts if p.layer == 0]
        in_parts = np.logical_or.reduce([m for _, _, m in level0]) if level0 else mask
        level1 = [(1, p.name, draw(p.shapes) & in_parts) for p in obj.parts if p.layer == 1]  # parts of parts
        objects.append(SpriteObject(obj.name, mask, level0 + level1))
    return Sprite(rgb, objects)


def house(h: int, w: int, rng: np.random.Generator) -> Sprite:
    """Walls, a roof, a door with a knob and windows with panes (parts of parts)."""
    rgb = np.zeros((h, w, 3), np.float32)
    roof_y = h * rng.uniform(0.3, 0.42)
    wall = _rect(h, w, 0.06 * w, roof_y * 0.8, 0.94 * w, h)
    roof = rasterize([poly(0, roof_y, 0.5 * w, 0, w, roof_y)], h, w)
    dx = rng.uniform(0.4, 0.6) * w
    door = _rect(h, w, dx - 0.08 * w, 0.62 * h, dx + 0.08 * w, h)
    knob = rasterize([ellipse((dx + 0.035 * w, 0.8 * h, dx + 0.06 * w, 0.8 * h + 0.025 * w))], h, w)
    windows = np.zeros((h, w), bool)
    panes = np.zeros((h, w), bool)
    wy0, wy1 = rng.uniform(0.46, 0.52) * h, rng.uniform(0.68, 0.74) * h
    for x0 in (0.12 * w, 0.70 * w):
        x1 = x0 + 0.18 * w
        windows |= _rect(h, w, x0, wy0, x1, wy1)
        mx, my, bar = (x0 + x1) / 2, (wy0 + wy1) / 2, max(1.0, 0.012 * w)
        for px0, px1 in ((x0 + bar, mx - bar), (mx + bar, x1 - bar)):
            for py0, py1 in ((wy0 + bar, my - bar), (my + bar, wy1 - bar)):
                panes |= _rect(h, w, px0, py0, px1, py1)
    wall_fill = _choice(rng, MATERIALS["brick"] + MATERIALS["painted"][:6])
    paint(rgb, wall, wall_fill, rng)
    paint(rgb, roof, tinted("gravel", _choice(rng, ((120, 45, 35), (70, 70, 75), (95, 60, 40))), 1.0), rng)
    paint(rgb, door, _choice(rng, MATERIALS["wood"]), rng)
    paint(rgb, knob, flat((225, 185, 40)), rng)
    paint(rgb, windows, flat((238, 238, 232)), rng)
    paint(rgb, panes, flat((150, 190, 225), 10), rng)
    parts = [(0, "wall", wall & ~roof), (0, "roof", roof), (0, "door", door), (0, "window", windows),
             (1, "pane", panes), (1, "knob", knob)]
    return Sprite(rgb, [SpriteObject("house", wall | roof, parts)])


def car(h: int, w: int, rng: np.random.Generator) -> Sprite:
    """A car body in a strong color with windows, wheels (with rims) and a headlight."""
    rgb = np.zeros((h, w, 3), np.float32)
    body = rasterize([poly(0, 0.42 * h, 0.2 * w, 0.38 * h, 0.32 * w, 0.05 * h, 0.7 * w, 0.05 * h, 0.84 * w, 0.38 * h,
                          w, 0.45 * h, w, 0.8 * h, 0, 0.8 * h)], h, w)
    windows = rasterize([poly(0.25 * w, 0.38 * h, 0.35 * w, 0.11 * h, 0.5 * w, 0.11 * h, 0.5 * w, 0.38 * h),
                         poly(0.54 * w, 0.38 * h, 0.54 * w, 0.11 * h, 0.67 * w, 0.11 * h, 0.78 * w, 0.38 * h)], h, w)
    r = 0.2 * h
    wheels = rasterize([ellipse((cx - r, 0.8 * h - r, cx + r, 0.8 * h + r)) for cx in (0.22 * w, 0.78 * w)], h, w)
    rims = rasterize([ellipse((cx - 0.5 * r, 0.8 * h - 0.5 * r, cx + 0.5 * r, 0.8 * h + 0.5 * r))
                      for cx in (0.22 * w, 0.78 * w)], h, w)
    light = rasterize([ellipse((0.94 * w, 0.47 * h, 1.0 * w, 0.57 * h))], h, w)
    paint(rgb, body, flat(_choice(rng, STRONG_COLORS), 5), rng)
    paint(rgb, windows, flat((140, 175, 205), 8), rng)
    paint(rgb, wheels, flat((28, 28, 30), 4), rng)
    paint(rgb, rims, flat((175, 175, 180), 6), rng)
    paint(rgb, light, flat((250, 240, 200), 3), rng)
    parts = [(0, "window", windows), (0, "wheel", wheels), (0, "headlight", light), (1, "rim", rims)]
    return Sprite(rgb, [SpriteObject("car", body | wheels, parts)])


def tree(h: int, w: int, rng: np.random.Generator) -> Sprite:
    """A trunk of bark and a crown of leaves (grass texture)."""
    rgb = np.zeros((h, w, 3), np.float32)
    trunk = _rect(h, w, 0.43 * w, 0.5 * h, 0.57 * w, h)
    lobes = ((0.05, 0.15, 0.6, 0.65), (0.4, 0.12, 0.95, 0.62), (0.2, 0, 0.8, 0.45))
    crown = rasterize([ellipse((x0 * w, y0 * h, x1 * w, y1 * h)) for x0, y0, x1, y1 in lobes], h, w)
    paint(rgb, trunk, tinted("gravel", (100, 72, 48), 0.9), rng)
    paint(rgb, crown, tinted("grass", _choice(rng, ((45, 110, 40), (70, 130, 35), (40, 90, 45))), 1.3), rng)
    return Sprite(rgb, [SpriteObject("tree", trunk | crown, [(0, "trunk", trunk & ~crown), (0, "foliage", crown)])])


def horse(h: int, w: int, rng: np.random.Generator) -> Sprite:
    """scikit-image's horse silhouette with a coat; head, tail and legs are regions of the silhouette."""
    src = ~asset("horse")
    sh, sw = src.shape
    mask = np.asarray(Image.fromarray(src.astype(np.uint8) * 255).resize((w, h), Image.NEAREST)) > 127
    sx, sy = w / sw, h / sh
    head = _rect(h, w, 300 * sx, 0, w, 115 * sy) & mask
    tail = _rect(h, w, 0, 80 * sy, 68 * sx, h) & mask
    legs = _rect(h, w, 68 * sx, 205 * sy, w, h) & mask
    rgb = np.zeros((h, w, 3), np.float32)
    coat = _choice(rng, ((125, 70, 35), (45, 35, 30), (210, 205, 195), (150, 110, 70)))
    paint(rgb, mask, tinted("grass", coat, 0.35), rng)
    return Sprite(rgb, [SpriteObject("horse", mask, [(0, "head", head), (0, "tail", tail), (0, "leg", legs)])])


def table(h: int, w: int, rng: np.random.Generator) -> Sprite:
    rgb = np.zeros((h, w, 3), np.float32)
    top = _rect(h, w, 0, 0, w, 0.16 * h)
    legs = _rect(h, w, 0.05 * w, 0.16 * h, 0.12 * w, h) | _rect(h, w, 0.88 * w, 0.16 * h, 0.95 * w, h)
    paint(rgb, top | legs, _choice(rng, MATERIALS["wood"]), rng)
    return Sprite(rgb, [SpriteObject("table", top | legs, [(0, "top", top), (0, "leg", legs)])])


PAINTING_FILLS: tuple[Fill, ...] = (
    photo("astronaut", (0, 0, 512, 512), (0.6, 1.0)), photo("hubble_deep_field", (0, 0, 1000, 872), (0.5, 1.5)),
    photo("chelsea", (0, 0, 451, 300), (0.6, 1.0)), photo("colorwheel", (0, 0, 371, 370), (0.8, 1.2)),
    photo("retina", (200, 200, 1200, 1200), (1.0, 2.0)),
)


def painting(h: int, w: int, rng: np.random.Generator) -> Sprite:
    rgb = np.zeros((h, w, 3), np.float32)
    full = np.ones((h, w), bool)
    inner = _rect(h, w, 0.09 * w, 0.09 * h, 0.91 * w, 0.91 * h)
    paint(rgb, full, _choice(rng, MATERIALS["wood"]), rng)
    paint(rgb, inner, _choice(rng, PAINTING_FILLS), rng)
    return Sprite(rgb, [SpriteObject("painting", full, [(0, "frame", full & ~inner)])])


@dataclass(frozen=True)
class Kind:
    """How to make one kind of object and where it stands: ``ground``, ``wall`` or ``table``."""

    make: Callable[[int, int, np.random.Generator], Sprite] | None  # None: a cutout, key = the kind's name
    height: tuple[float, float]  # fraction of the image height
    aspect: tuple[float, float] = (1.0, 1.0)  # width / height (cutouts keep their own)
    place: str = "ground"


KINDS: dict[str, Kind] = {
    "house": Kind(house, (0.4, 0.65), (1.0, 1.5)),
    "car": Kind(car, (0.2, 0.35), (1.8, 2.3)),
    "tree": Kind(tree, (0.45, 0.8), (0.55, 0.8)),
    "horse": Kind(horse, (0.3, 0.5), (1.1, 1.35)),
    "table": Kind(table, (0.3, 0.42), (1.4, 2.0)),
    "painting": Kind(painting, (0.2, 0.32), (0.8, 1.5), "wall"),
    "cat": Kind(None, (0.3, 0.5)),
    "coffee": Kind(None, (0.22, 0.35), place="table"),
    "rocket": Kind(None, (0.55, 0.85)),
    "person": Kind(None, (0.45, 0.8)),
    "motorbike": Kind(None, (0.3, 0.5)),
}


@dataclass(frozen=True)
class Scene:
    """A scene type: what fills the upper and lower background, and which objects stand in it."""

    upper: str
    upper_fills: tuple[Fill, ...]
    lower: str
    lower_fills: tuple[Fill, ...]
    required: tuple[str, ...]
    optional: tuple[str, ...]


SCENES: dict[str, Scene] = {
    "pasture-s": Scene("sky", (sky,), "grass", MATERIALS["foliage"], ("tree",), ("tree", "horse", "house", "cat")),
    "street-s": Scene("sky", (sky,), "road", (tinted("gravel", (95, 95, 100), 0.7),), ("house", "car"),
                      ("car", "motorbike", "person", "tree", "house")),
    "dining_room-s": Scene("wall", MATERIALS["painted"] + MATERIALS["tile"] + MATERIALS["brick"], "floor",
                           MATERIALS["wood"] + MATERIALS["tile"], ("table", "coffee"), ("painting", "cat", "person")),
    "desert-sand-s": Scene("sky", (sky,), "sand", (tinted("gravel", (215, 185, 130), 0.5),), ("rocket",),
                           ("person", "car", "horse", "motorbike")),
}


def _sprite(kind: str, height: int, rng: np.random.Generator) -> Sprite:
    k = KINDS[kind]
    if k.make is None:
        sprite = cutout_sprite(kind, height)
    else:
        sprite = k.make(height, max(4, round(height * rng.uniform(*k.aspect))), rng)
    return sprite.flipped() if rng.random() < 0.5 else sprite


def draw_scene(canvas: Canvas, name: str, rng: np.random.Generator) -> None:
    """A background split at a horizon, then objects from back to front, each hiding what is behind it."""
    scene = SCENES[name]
    H, W = canvas.height, canvas.width
    horizon = int(H * rng.uniform(0.35, 0.6))
    rows = np.arange(H)[:, None] < horizon
    upper = np.broadcast_to(rows, (H, W))
    canvas.fill(upper, _choice(rng, scene.upper_fills), rng, object=scene.upper)
    canvas.fill(~upper, _choice(rng, scene.lower_fills), rng, object=scene.lower)
    extra = int(rng.integers(0, 3))
    kinds = list(scene.required) + [_choice(rng, scene.optional) for _ in range(extra)]
    placed: list[tuple[float, int, Sprite, int, int]] = []  # (depth, order, sprite, left, top)
    table: tuple[float, int, int, int] | None = None  # depth, top, left, right of the table things stand on
    for kind in kinds:
        k = KINDS[kind]
        sprite = _sprite(kind, max(8, int(H * rng.uniform(*k.height))), rng)
        h, w = sprite.rgb.shape[:2]
        left = int(rng.uniform(-0.15 * w, W - 0.85 * w))
        if k.place == "wall":  # hangs above the horizon, behind everything standing
            bottom = int(rng.uniform(0.03 * H, max(0.04 * H, horizon - h - 0.05 * H))) + h
            depth: float = 0
        elif k.place == "table" and table is not None:  # stands on the table, just in front of it
            depth, bottom = table[0] + 0.5, table[1] + max(1, h // 12)
            left = int(rng.uniform(table[2], max(table[2] + 1, table[3] - w)))
        else:  # stands on the ground: the lower it stands, the nearer it is
            bottom = int(rng.uniform(horizon + 0.15 * (H - horizon), H + 0.08 * h))
            depth = bottom
        placed.append((depth, len(placed), sprite, left, bottom - h))
        if kind == "table":
            table = (depth, bottom - h, left, left + w)
    for _, _, sprite, left, top in sorted(placed, key=lambda p: p[:2]):
        canvas.paste(sprite, left, top)
    canvas.image_labels["scene"].append(name)


def draw_surfaces(canvas: Canvas, first: str, rng: np.random.Generator) -> None:
    """OpenSurfaces-like: 2-4 regions (a stretched Voronoi partition), each one material, the first ``first``;
    some regions are left unlabeled, as in OpenSurfaces."""
    H, W = canvas.height, canvas.width
    n = int(rng.integers(2, 5))
    seeds = rng.uniform(0, 1, (n, 2)) * (H, W)
    stretch = rng.uniform(0.5, 2.0, (n, 2))
    yy, xx = np.mgrid[0:H, 0:W].astype(np.float32)
    dist = np.stack([((yy - sy) * a) ** 2 + ((xx - sx) * b) ** 2 for (sy, sx), (a, b) in zip(seeds, stretch)])
    region = dist.argmin(axis=0)
    others = [m for m in sorted(MATERIALS) if m != first]
    chosen = [first] + [others[int(i)] for i in rng.permutation(len(others))[: n - 1]]
    for i, material in enumerate(chosen):
        labels = {"material": material} if (i == 0 or rng.random() > 0.15) else {}
        canvas.fill(region == i, _choice(rng, MATERIALS[material]), rng, **labels)


# -- textures --------------------------------------------------------------------------------------------------------
def _coords(h: int, w: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Pixel coordinates rotated by a random angle: patterns in any orientation."""
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    a = rng.uniform(0, np.pi)
    return xx * np.cos(a) + yy * np.sin(a), -xx * np.sin(a) + yy * np.cos(a)


def _striped(h, w, rng):
    u, _ = _coords(h, w, rng)
    return (np.sin(u * 2 * np.pi / rng.uniform(14, 40)) > 0).astype(np.float32)


def _banded(h, w, rng):
    u, _ = _coords(h, w, rng)
    return (0.5 + 0.5 * np.sin(u * 2 * np.pi / rng.uniform(70, 140))).astype(np.float32)


def _chequered(h, w, rng):
    u, v = _coords(h, w, rng)
    p = rng.uniform(20, 50)
    return ((np.floor(u / p) + np.floor(v / p)) % 2).astype(np.float32)


def _polka(h, w, rng):
    u, v = _coords(h, w, rng)
    p = rng.uniform(24, 48)
    du, dv = (u % p) - p / 2, (v % p) - p / 2
    return (du**2 + dv**2 < (0.3 * p) ** 2).astype(np.float32)


def _grid(h, w, rng):
    u, v = _coords(h, w, rng)
    p = rng.uniform(18, 40)
    return (((u % p) < 3) | ((v % p) < 3)).astype(np.float32)


def _zigzag(h, w, rng):
    u, v = _coords(h, w, rng)
    p, amp = rng.uniform(20, 40), rng.uniform(8, 20)
    tri = amp * np.abs(((v / p) % 2) - 1)
    return (np.sin((u + tri) * 2 * np.pi / rng.uniform(16, 30)) > 0).astype(np.float32)


def _spiral(h, w, rng):
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    cy, cx = rng.uniform(0.3, 0.7) * h, rng.uniform(0.3, 0.7) * w
    r, t = np.hypot(yy - cy, xx - cx), np.arctan2(yy - cy, xx - cx)
    return (np.sin(r * 2 * np.pi / rng.uniform(18, 30) - t * int(rng.integers(1, 4))) > 0).astype(np.float32)


def _dotted(h, w, rng):
    out = np.zeros((h, w), np.float32)
    n = int(h * w / rng.uniform(150, 400))
    ys, xs = rng.integers(0, h - 2, n), rng.integers(0, w - 2, n)
    for dy in range(3):
        for dx in range(3):
            out[ys + dy, xs + dx] = 1
    return out


#: Texture label -> pattern (an alpha map in 0..1 painted in a color over the base).
PATTERNS: dict[str, Callable[[int, int, np.random.Generator], np.ndarray]] = {
    "striped": _striped, "banded": _banded, "chequered": _chequered, "polka-dotted": _polka, "grid": _grid,
    "zigzagged": _zigzag, "spiralled": _spiral, "dotted": _dotted,
}

#: Texture label -> real photographic texture used as a base.
BASES: dict[str, tuple[Fill, ...]] = {
    "fibrous": (tinted("grass", (90, 140, 60), 1.3), tinted("grass", (190, 170, 120), 1.3)),
    "bumpy": (tinted("gravel", (140, 130, 120), 1.3),),
    "pitted": (tinted("moon", (150, 150, 150), 2.0, (0.8, 1.6)),),
    "studded": (tinted("coins", (160, 150, 120), 1.5, (0.6, 1.0)),),
    "sprinkled": (photo("hubble_deep_field", (0, 0, 1000, 872), (0.6, 1.4)),),
    "veined": (photo("retina", (250, 250, 1150, 1150), (0.6, 1.2)),),
    "blotchy": (photo("immunohistochemistry", (0, 0, 512, 512), (0.6, 1.0)),),
    "matted": (photo("chelsea", (0, 150, 130, 300), (0.25, 0.5)),),
}


#: Every texture label: photographic bases first, then patterns.
TEXTURES: tuple[str, ...] = tuple(sorted(BASES)) + tuple(sorted(PATTERNS))


def draw_texture(canvas: Canvas, first: str, rng: np.random.Generator) -> None:
    """DTD-like: a whole-image texture ``first`` and up to two more texture labels painted over it as patterns."""
    H, W = canvas.height, canvas.width
    everywhere = np.ones((H, W), bool)
    if first in BASES:
        canvas.fill(everywhere, _choice(rng, BASES[first]), rng)
        patterns = []
    else:
        canvas.fill(everywhere, flat(_choice(rng, STRONG_COLORS), 8), rng)
        patterns = [first]
    others = [p for p in sorted(PATTERNS) if p != first]
    patterns += [others[int(i)] for i in rng.permutation(len(others))[: int(rng.integers(0, 3))]]
    for i, name in enumerate(patterns):
        alpha = PATTERNS[name](H, W, rng) * (rng.uniform(0.8, 1.0) if i == 0 else rng.uniform(0.55, 0.75))
        color = np.asarray(_choice(rng, STRONG_COLORS), np.float32)
        canvas.rgb = canvas.rgb * (1 - alpha[..., None]) + color * alpha[..., None]
    canvas.image_labels["texture"].extend(([first] if first in BASES else []) + patterns)
