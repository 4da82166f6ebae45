"""Real pixels for the embedded sample: photographs and textures shipped inside scikit-image, and region fills.

Only images that ``skimage.data`` loads from its own package directory are used (no pooch downloads), so the
sample builds offline. Each photograph comes with hand-traced outlines of its objects and parts in the photo's own
pixel coordinates; the sample rasterises those outlines at the pasted scale, so every pasted pixel has an exact
label. Fills return float32 (H, W, 3) arrays in 0..255.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from PIL import Image, ImageDraw

from broden.errors import BrodenError

Shape = tuple[str, tuple[float, ...]]  # ("poly", (x0, y0, x1, y1, ...)) or ("ellipse", (left, top, right, bottom))
Fill = Callable[[int, int, np.random.Generator], np.ndarray]  # (height, width, rng) -> float32 (h, w, 3) pixels


@lru_cache(maxsize=None)
def asset(name: str) -> np.ndarray:
    """A scikit-image data image by name (``stereo_motorcycle`` gives the left view), read-only."""
    try:
        import skimage.data as skdata

        img = getattr(skdata, name)()
    except Exception as exc:  # missing package, or a file that would need a download
        raise BrodenError(
            f"scikit-image image {name!r} does not load offline ({exc}); reinstall scikit-image (pip install "
            "--force-reinstall scikit-image)"
        ) from exc
    if isinstance(img, tuple):
        img = img[0]
    arr = np.asarray(img)
    arr.setflags(write=False)
    return arr


def rasterize(shapes: Sequence[Shape], height: int, width: int, scale: float = 1.0,
              origin: tuple[float, float] = (0.0, 0.0)) -> np.ndarray:
    """Union of polygons/ellipses as an (height, width) bool mask; coordinates are shifted by ``origin``, scaled."""
    canvas = Image.new("L", (width, height), 0)
    draw = ImageDraw.Draw(canvas)
    ox, oy = origin
    for kind, coords in shapes:
        pts = [((x - ox) * scale, (y - oy) * scale) for x, y in zip(coords[0::2], coords[1::2])]
        if kind == "poly":
            draw.polygon(pts, fill=1)
        else:
            (x0, y0), (x1, y1) = pts
            draw.ellipse((min(x0, x1), min(y0, y1), max(x0, x1), max(y0, y1)), fill=1)
    return np.asarray(canvas, dtype=bool)


def ellipse(box: tuple[float, float, float, float]) -> Shape:
    return ("ellipse", tuple(box))


def poly(*xy: float) -> Shape:
    return ("poly", tuple(xy))


@dataclass(frozen=True)
class PhotoPart:
    name: str
    layer: int  # 0: part of the object; 1: part of a part (ADE's second part level)
    shapes: tuple[Shape, ...]


@dataclass(frozen=True)
class PhotoObject:
    name: str
    shapes: tuple[Shape, ...]
    parts: tuple[PhotoPart, ...] = ()


@dataclass(frozen=True)
class Cutout:
    """Objects traced in one scikit-image photograph, painted in order (later ones in front)."""

    asset: str
    box: tuple[int, int, int, int]  # crop (left, top, right, bottom) in photo pixels
    objects: tuple[PhotoObject, ...]


_HEAD = ellipse((150, 15, 300, 180))
CUTOUTS: dict[str, Cutout] = {
    "cat": Cutout("chelsea", (0, 0, 400, 300), (
        PhotoObject("cat", (poly(0, 0, 355, 0, 390, 40, 372, 120, 360, 200, 395, 300, 0, 300),), (
            PhotoPart("eye", 0, (ellipse((140, 85, 210, 145)), ellipse((295, 110, 345, 165)))),
            PhotoPart("nose", 0, (ellipse((240, 222, 292, 262)),)),
        )),
    )),
    "coffee": Cutout("coffee", (70, 10, 485, 390), (
        PhotoObject("plate", (ellipse((75, 90, 482, 388)),)),
        PhotoObject("cup", (poly(175, 75, 200, 35, 290, 18, 380, 35, 410, 80, 400, 180, 370, 230, 330, 270, 255, 290,
                                 215, 302, 195, 240, 185, 180),),
                    (PhotoPart("handle", 0, (poly(195, 225, 252, 225, 256, 302, 200, 302),)),)),
        PhotoObject("spoon", (poly(398, 68, 424, 72, 402, 200, 396, 248, 406, 300, 380, 326, 340, 322, 325, 282,
                                   345, 246, 372, 232, 390, 150),)),
    )),
    "rocket": Cutout("rocket", (300, 120, 345, 410), (
        PhotoObject("rocket", (poly(322, 126, 331, 135, 336, 160, 337, 405, 307, 405, 308, 160, 313, 135),)),
    )),
    "person": Cutout("astronaut", (10, 10, 512, 512), (
        PhotoObject(
            "person",
            (poly(150, 55, 175, 22, 225, 12, 280, 25, 302, 70, 295, 150, 335, 205, 360, 280, 385, 512, 15, 512,
                  30, 330, 50, 260, 110, 215, 150, 165),),
            (
                PhotoPart("head", 0, (_HEAD,)),
                PhotoPart("torso", 0, (poly(0, 175, 512, 175, 512, 512, 0, 512),)),
                PhotoPart("hair", 1, (poly(150, 100, 155, 40, 200, 15, 260, 15, 300, 50, 300, 100, 280, 70, 240, 60,
                                           190, 65, 165, 100),)),
                PhotoPart("eye", 1, (ellipse((190, 100, 215, 115)), ellipse((240, 100, 265, 115)))),
                PhotoPart("mouth", 1, (ellipse((205, 135, 248, 155)),)),
            ),
        ),
        PhotoObject("helmet", (ellipse((278, 322, 514, 558)),)),
    )),
    "motorbike": Cutout("stereo_motorcycle", (90, 85, 690, 460), (
        PhotoObject(
            "motorbike",
            (poly(95, 205, 150, 165, 300, 160, 470, 150, 500, 100, 560, 110, 590, 150, 560, 200, 620, 270, 640, 300,
                  600, 300, 550, 320, 480, 380, 330, 400, 280, 400, 230, 340, 130, 240, 95, 225),
             ellipse((120, 252, 282, 408)), ellipse((512, 305, 685, 455)), ellipse((505, 120, 565, 185))),
            (
                PhotoPart("wheel", 0, (ellipse((120, 252, 282, 408)), ellipse((512, 305, 685, 455)))),
                PhotoPart("headlight", 0, (ellipse((505, 120, 565, 185)),)),
                PhotoPart("seat", 0, (poly(150, 165, 200, 158, 300, 162, 355, 185, 330, 205, 240, 205, 160, 200),)),
            ),
        ),
    )),
}


def _crop(img: np.ndarray, h: int, w: int, rng: np.random.Generator, zoom: tuple[float, float]) -> np.ndarray:
    """A random window of ``img`` resized to (h, w): ``zoom`` source pixels per output pixel (clipped to fit)."""
    s = float(rng.uniform(*zoom))
    ch = int(min(img.shape[0], max(8, round(h * s))))
    cw = int(min(img.shape[1], max(8, round(w * s))))
    y = int(rng.integers(0, img.shape[0] - ch + 1))
    x = int(rng.integers(0, img.shape[1] - cw + 1))
    window = np.ascontiguousarray(img[y : y + ch, x : x + cw])
    return np.asarray(Image.fromarray(window.astype(np.uint8)).resize((w, h), Image.BILINEAR), dtype=np.float32)


def tinted(asset_name: str, color: Sequence[float], contrast: float = 1.0,
           zoom: tuple[float, float] = (0.6, 1.4)) -> Fill:
    """A grayscale scikit-image texture, colored: mean brightness -> ``color``, detail scaled by ``contrast``."""

    def fill(h: int, w: int, rng: np.random.Generator) -> np.ndarray:
        g = _crop(asset(asset_name), h, w, rng, zoom) / 255.0
        g = (g - g.mean()) * contrast
        jitter = rng.uniform(0.85, 1.15, 3)
        return np.clip(np.asarray(color, np.float32) * jitter * (1.0 + 1.6 * g)[..., None], 0, 255)

    return fill


def photo(asset_name: str, box: tuple[int, int, int, int], zoom: tuple[float, float] = (0.5, 1.0)) -> Fill:
    """Pixels from a window ``box`` (left, top, right, bottom) of a color photograph."""

    def fill(h: int, w: int, rng: np.random.Generator) -> np.ndarray:
        left, top, right, bottom = box
        return _crop(asset(asset_name)[top:bottom, left:right], h, w, rng, zoom)

    return fill


def flat(color: Sequence[float], noise: float = 6.0) -> Fill:
    """A painted surface: one color with a little grain."""

    def fill(h: int, w: int, rng: np.random.Generator) -> np.ndarray:
        base = np.asarray(color, np.float32) * rng.uniform(0.92, 1.08)
        grain = rng.standard_normal((h, w, 1), dtype=np.float32) * np.float32(noise)
        return np.broadcast_to(np.clip(base + grain, 0, 255), (h, w, 3))

    return fill


def sky(h: int, w: int, rng: np.random.Generator) -> np.ndarray:
    """Blue sky: a vertical gradient, lighter at the horizon, with faint clouds."""
    top = np.array([60, 110, 210], np.float32) * rng.uniform(0.85, 1.1)
    bottom = np.array([175, 205, 240], np.float32)
    t = np.linspace(0, 1, h, dtype=np.float32)[:, None, None]
    grad = top * (1 - t) + bottom * t
    clouds = _crop(asset("moon"), h, w, rng, (1.0, 2.0)) / 255.0
    c = np.clip((clouds - 0.55) * 2.5, 0, 1)[..., None] * rng.uniform(0.2, 0.6)
    return np.clip(grad * (1 - c) + 245 * c, 0, 255) * np.ones((1, w, 1), np.float32)


def tiles(color: Sequence[float]) -> Fill:
    """Square tiles with light grout lines."""

    def fill(h: int, w: int, rng: np.random.Generator) -> np.ndarray:
        step = int(rng.integers(18, 40))
        yy, xx = np.mgrid[0:h, 0:w]
        grout = ((yy % step) < 3) | ((xx % step) < 3)
        base = np.asarray(color, np.float32) * rng.uniform(0.9, 1.1)
        out = np.empty((h, w, 3), np.float32)
        out[:] = base
        out[grout] = 225
        return np.clip(out + rng.standard_normal((h, w, 1), dtype=np.float32) * np.float32(4), 0, 255)

    return fill

#: Surfaces (material name -> fills), used for scene backgrounds and the OpenSurfaces-like images.
MATERIALS: dict[str, tuple[Fill, ...]] = {
    "brick": (tinted("brick", (165, 75, 55), 1.3), tinted("brick", (150, 95, 80), 1.1)),
    "stone": (tinted("gravel", (135, 130, 125), 1.1), tinted("gravel", (165, 150, 125), 0.9)),
    "foliage": (tinted("grass", (60, 120, 45), 1.2), tinted("grass", (85, 140, 40), 1.0)),
    "wood": (photo("coffee", (440, 100, 600, 400)), photo("coffee", (0, 250, 90, 400))),
    "fur": (photo("chelsea", (0, 150, 130, 300), (0.3, 0.6)), photo("chelsea", (190, 0, 330, 80), (0.3, 0.6))),
    "fabric": (photo("astronaut", (45, 300, 130, 480), (0.3, 0.5)),),
    "metal": (tinted("coins", (150, 150, 155), 1.2, (0.5, 1.0)),
              photo("stereo_motorcycle", (370, 245, 460, 335), (0.3, 0.6))),
    "paper": (tinted("page", (235, 232, 225), 0.6, (0.4, 0.8)), tinted("text", (240, 240, 235), 0.5, (0.4, 0.8))),
    "food": (photo("coffee", (230, 110, 350, 180), (0.15, 0.3)),),
    "painted": (flat((200, 30, 30)), flat((30, 60, 190)), flat((240, 200, 30)), flat((40, 150, 60)),
                flat((240, 240, 235)), flat((245, 140, 20)), flat((235, 150, 190)), flat((120, 50, 150))),
    "tile": (tiles((200, 200, 195)), tiles((90, 120, 170)), tiles((180, 60, 50))),
}
