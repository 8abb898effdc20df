"""A document camera without a camera: a synthetic page with known content and a
photograph of it lying on a desk, with the page's true corners known to the pixel.

The page carries what the tests measure against: a frame, rows of text-like bars
and four fiducial squares whose centres are known in page pixels. ``photograph``
maps the page onto the desk with a homography (OpenCV ``getPerspectiveTransform`` /
``warpPerspective``), then adds what a real overhead camera adds: a darker textured
desk, a lighting gradient, blur and sensor noise. Everything is seeded, so a test's
picture is the same at every run.

Coordinates follow OpenCV: a pixel's centre is at integer coordinates, so an image of
width ``w`` spans ``-0.5 .. w - 0.5``; a page's corners are the outer corners of its
corner pixels.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import cv2
import numpy as np
import numpy.typing as npt

Image = npt.NDArray[np.uint8]
Points = npt.NDArray[np.float32]

PAPER_MM = {"A4": (210.0, 297.0), "A3": (297.0, 420.0)}
"""Portrait width and height in millimetres (ISO 216)."""

PAPER_WHITE = 242
INK = 25
FIDUCIAL_MM = 9.0
FIDUCIAL_INSET_MM = 16.0
"""Fiducial squares' size, and their centres' distance from the page's edges."""
FRAME_MM = 8.0


@dataclass(frozen=True)
class Page:
    """A rendered page and where its known marks are, in its own pixels."""

    image: Image
    fiducials: Points
    """Centres of the fiducial squares: top-left, top-right, bottom-right, bottom-left."""
    dpi: int
    paper: str

    @property
    def size(self) -> tuple[int, int]:
        height, width = self.image.shape[:2]
        return width, height


def mm_to_px(mm: float, dpi: int) -> float:
    return mm / 25.4 * dpi


def page_size_px(paper: Literal["A4", "A3"], dpi: int) -> tuple[int, int]:
    width_mm, height_mm = PAPER_MM[paper]
    return round(mm_to_px(width_mm, dpi)), round(mm_to_px(height_mm, dpi))


def page_outline(width: int, height: int) -> Points:
    """The outer corners of an image of this size, TL, TR, BR, BL."""
    return np.array(
        [[-0.5, -0.5], [width - 0.5, -0.5], [width - 0.5, height - 0.5], [-0.5, height - 0.5]],
        dtype=np.float32,
    )


def render_page(
    *, paper: Literal["A4", "A3"] = "A4", dpi: int = 100, seed: int = 0, skew: float = 0.0
) -> Page:
    """A white page with a frame, a heading, text-like bars and four fiducials.

    ``skew`` (degrees, counter-clockwise) rotates the printed content on the page,
    as a sheet fed askew through a printer would be: the page's edges stay square,
    the text lines do not, which is what ``deskew`` has to find. Fiducial centres are
    rotated with the content.
    """
    width, height = page_size_px(paper, dpi)
    rng = np.random.default_rng(seed)
    image = np.full((height, width), PAPER_WHITE, np.uint8)

    def px(mm: float) -> float:
        return mm_to_px(mm, dpi)

    frame = round(px(FRAME_MM))
    cv2.rectangle(image, (frame, frame), (width - 1 - frame, height - 1 - frame), INK,
                  max(1, round(px(0.6))))
    cv2.rectangle(image, (round(px(30)), round(px(22))), (round(px(150)), round(px(30))),
                  INK, -1)
    line_height, pitch = px(2.8), px(6.5)
    left, right = px(25), width - px(25)
    y = px(42)
    while y < height - px(30):
        x = left
        line_end = right - rng.uniform(0, px(50)) if rng.random() < 0.25 else right
        while x < line_end:
            word = rng.uniform(px(4), px(22))
            end = min(x + word, line_end)
            cv2.rectangle(image, (round(x), round(y)), (round(end), round(y + line_height)),
                          int(rng.integers(30, 80)), -1)
            x = end + px(2.5)
        y += pitch * (2 if rng.random() < 0.1 else 1)

    inset, half = px(FIDUCIAL_INSET_MM), px(FIDUCIAL_MM) / 2
    centres = np.array(
        [[inset, inset], [width - inset, inset], [width - inset, height - inset],
         [inset, height - inset]],
        dtype=np.float64,
    ) - 0.5
    for cx, cy in centres:
        cv2.rectangle(image, (round(cx - half), round(cy - half)),
                      (round(cx + half), round(cy + half)), 0, -1)
        cv2.rectangle(image, (round(cx - half / 2.5), round(cy - half / 2.5)),
                      (round(cx + half / 2.5), round(cy + half / 2.5)), 255, -1)
    if skew:
        centre = ((width - 1) / 2, (height - 1) / 2)
        matrix = cv2.getRotationMatrix2D(centre, skew, 1.0)
        image = np.asarray(cv2.warpAffine(
            image, matrix, (width, height), flags=cv2.INTER_LINEAR,
            borderMode=cv2.BORDER_CONSTANT, borderValue=PAPER_WHITE), dtype=np.uint8)
        centres = np.hstack([centres, np.ones((4, 1))]) @ matrix.T
    bgr = np.asarray(cv2.cvtColor(image, cv2.COLOR_GRAY2BGR), dtype=np.uint8)
    return Page(bgr, centres.astype(np.float32), dpi, paper)


def placement(
    desk_size: tuple[int, int],
    page_size: tuple[int, int],
    *,
    fill: float = 0.75,
    keystone: float = 0.0,
    shift: tuple[float, float] = (0.0, 0.0),
) -> Points:
    """Where a page lies in a desk photo: centred, ``fill`` of the desk's height,
    its far (top) edge shorter by ``keystone`` (0.1 = 10 %) as a camera looking at
    the desk from the front sees it; ``shift`` moves it by a fraction of the desk."""
    desk_w, desk_h = desk_size
    page_w, page_h = page_size
    height = desk_h * fill
    width = height * page_w / page_h
    cx = desk_w / 2 + shift[0] * desk_w
    cy = desk_h / 2 + shift[1] * desk_h
    top = width * (1 - keystone) / 2
    bottom = width / 2
    return np.array(
        [[cx - top, cy - height / 2], [cx + top, cy - height / 2],
         [cx + bottom, cy + height / 2], [cx - bottom, cy + height / 2]],
        dtype=np.float32,
    )


def rotate_points(points: Points, degrees: float) -> Points:
    """Rotate about the points' centroid, counter-clockwise on screen for positive
    degrees (the sense of ``cv2.getRotationMatrix2D``)."""
    centre = points.mean(axis=0)
    angle = math.radians(degrees)
    cos, sin = math.cos(angle), math.sin(angle)
    rotation = np.array([[cos, sin], [-sin, cos]], dtype=np.float64)
    return np.asarray((points - centre) @ rotation.T + centre, dtype=np.float32)


def photograph(
    page: Page,
    *,
    corners: Sequence[Sequence[float]] | Points | None = None,
    desk_size: tuple[int, int] = (1280, 960),
    rotation: float = 0.0,
    lighting_gradient: float = 0.0,
    noise: float = 0.0,
    blur: float = 0.0,
    seed: int = 0,
) -> tuple[Image, Points]:
    """The page on a desk, as a BGR photo, and the page's true corners in it.

    ``corners`` places the page (TL, TR, BR, BL in desk pixels; default
    ``placement``), ``rotation`` then turns it about its centre (degrees, positive
    counter-clockwise). ``lighting_gradient`` darkens the photo linearly from one
    corner to the opposite one (0.3 = 30 % less light there), ``noise`` is the
    standard deviation of Gaussian sensor noise in grey levels, ``blur`` the sigma
    of a Gaussian defocus in pixels.
    """
    desk_w, desk_h = desk_size
    rng = np.random.default_rng(seed)
    quad = placement(desk_size, page.size) if corners is None else np.asarray(
        corners, dtype=np.float32)
    quad = rotate_points(quad, rotation) if rotation else quad.astype(np.float32)

    desk = _desk(desk_w, desk_h, rng)
    homography = cv2.getPerspectiveTransform(page_outline(*page.size), quad)
    warped = cv2.warpPerspective(page.image, homography, (desk_w, desk_h),
                                 flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT)
    coverage = np.zeros((desk_h * 4, desk_w * 4), np.uint8)
    cv2.fillConvexPoly(coverage, np.round((quad + 0.5) * 4 * 16 - 0.5 * 16).astype(np.int32),
                       255, lineType=cv2.LINE_AA, shift=4)
    alpha = cv2.resize(coverage, (desk_w, desk_h), interpolation=cv2.INTER_AREA)
    alpha_f = (alpha.astype(np.float32) / 255.0)[..., None]
    photo = warped.astype(np.float32) * alpha_f + desk * (1 - alpha_f)

    if lighting_gradient:
        ys, xs = np.mgrid[0:desk_h, 0:desk_w].astype(np.float32)
        ramp = (xs / desk_w + ys / desk_h) / 2
        photo *= (1 - lighting_gradient * ramp)[..., None]
    if blur:
        photo = cv2.GaussianBlur(photo, (0, 0), blur)
    if noise:
        photo += rng.normal(0, noise, photo.shape).astype(np.float32)
    return np.clip(photo, 0, 255).astype(np.uint8), quad


def _desk(width: int, height: int, rng: np.random.Generator) -> npt.NDArray[np.float32]:
    """A dark wooden-brown desk with blotchy low-frequency texture."""
    texture = rng.normal(0, 1, (height // 40 + 2, width // 40 + 2)).astype(np.float32)
    smooth = np.asarray(cv2.resize(texture, (width, height), interpolation=cv2.INTER_CUBIC),
                        dtype=np.float32)
    base = np.array([52, 70, 95], np.float32)
    return np.asarray(np.clip(base + 12 * smooth[..., None], 0, 255), dtype=np.float32)


def write_video(path: Path, frames: Sequence[Image], fps: float = 5.0) -> Path:
    """Frames as a Motion-JPEG AVI, which OpenCV's FFmpeg backend reads back
    anywhere (no codec licence, no extra library)."""
    height, width = frames[0].shape[:2]
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter.fourcc(*"MJPG"), fps, (width, height))
    if not writer.isOpened():
        raise OSError(f"OpenCV cannot write {path}")
    try:
        for frame in frames:
            writer.write(frame)
    finally:
        writer.release()
    return path
