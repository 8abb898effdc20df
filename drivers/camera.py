"""The document camera (D7): grab a frame, find the sheet on the desk, flatten it to
the exact A4/A3 pixel size, straighten its text lines, compress it and upload it to
the citizen's case on the hall server.

Sources followed:

* OpenCV 5 ``imgproc`` documentation: ``findContours`` (Suzuki-Abe border following),
  ``approxPolyDP`` (Douglas-Peucker), ``fitLine``, ``getPerspectiveTransform`` /
  ``warpPerspective`` and ``getRotationMatrix2D`` / ``warpAffine``; ``videoio``:
  ``VideoCapture`` with ``CAP_PROP_OPEN_TIMEOUT_MSEC`` / ``CAP_PROP_READ_TIMEOUT_MSEC``.
* ISO 216 paper sizes (A4 210 × 297 mm, A3 297 × 420 mm).
* Skew by projection profiles (Postl's method; Hull, "Document image skew detection:
  survey and annotated bibliography", 1998): the text-line angle is the one whose
  row histogram of ink is the sharpest.
* Pillow's PDF writer (one JPEG-coded page per image, MediaBox = pixels / dpi × 72 pt),
  and the hall's upload endpoint ``POST /api/v1/cases/{case_id}/documents`` whose
  errors are RFC 9457 problem documents.

Coordinates follow OpenCV: pixel centres at integers, so an image of width ``w``
spans ``-0.5 .. w - 0.5``, and a page's corners are the outer corners of its sheet.
"""

from __future__ import annotations

import asyncio
import io
import math
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal
from urllib.parse import quote

import aiohttp
import cv2
import numpy as np
import numpy.typing as npt
from PIL import Image as PILImage

from drivers.errors import DeviceUnavailable, DriverError

Image = npt.NDArray[np.uint8]
Corners = npt.NDArray[np.float32]
Paper = Literal["A4", "A3"]
Orientation = Literal["auto", "portrait", "landscape"]

PAPER_MM: dict[str, tuple[float, float]] = {"A4": (210.0, 297.0), "A3": (297.0, 420.0)}
"""Portrait width and height in millimetres (ISO 216)."""

IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp"})

DETECT_SIDE = 900
"""Detection runs on a copy at most this many pixels on its long side: plenty for a
sheet's outline, and a 12-megapixel frame would cost ten times as long."""
MIN_PAGE_FRACTION = 0.08
"""A quadrilateral smaller than this share of the frame is not the sheet."""
BORDER_MARGIN = 2.0
"""A corner this close (detection pixels) to the frame's edge means the sheet is cut
off: its real corner is outside the picture, so it is not reported as found."""
MAX_SKEW = 10.0
"""Residual skew searched by ``deskew``, in degrees either way; larger turns are the
perspective step's to fix."""
MIN_SKEW = 0.1
"""Below this the page is left as it is: resampling would only blur it."""
UPLOAD_PATH = "/api/v1/cases/{case_id}/documents"


class UploadFailed(DriverError):
    """The server refused the document (a 4xx): retrying the same upload will not
    help. ``code`` is the problem document's stable code when there was one."""

    def __init__(self, message: str, *, status: int | None = None, code: str | None = None):
        super().__init__(message)
        self.status = status
        self.code = code


class ServerUnavailable(UploadFailed, DeviceUnavailable):
    """The server could not be reached, timed out or answered 5xx: keep the scan
    and retry later, as with any device that went away."""


# --- Capture -------------------------------------------------------------------------


class Capture:
    """Frames from a document camera, a recorded clip, a still image or a stream.

    ``source`` is a device index (``0``) or path (``/dev/video0``), an image file
    (every frame is that image), a video file (rewound at its end, so a clip stands
    in for a camera), or a URL (``rtsp://``, ``http://``) that FFmpeg opens. The
    source is opened on the first ``frame()``, and again after a failed read, so a
    camera that was unplugged comes back without a new ``Capture``.

    OpenCV's calls block, so they run in a worker thread; a lock keeps one read at a
    time, and ``close`` waits for a read in progress.
    """

    def __init__(
        self,
        source: str | int,
        *,
        width: int | None = None,
        height: int | None = None,
        timeout: float = 5.0,
    ) -> None:
        self.source = source
        self.width = width
        self.height = height
        self.timeout = timeout
        self._lock = threading.Lock()
        self._video: cv2.VideoCapture | None = None
        self._still: Image | None = None

    async def frame(self) -> Image:
        """The next frame, BGR; DeviceUnavailable when the source cannot be opened
        or read."""
        return await asyncio.to_thread(self._read)

    def close(self) -> None:
        with self._lock:
            self._release()
            self._still = None

    def _read(self) -> Image:
        with self._lock:
            if self._is_image_file():
                return self._read_still()
            if self._video is None:
                self._video = self._open()
            ok, frame = self._video.read()
            if not ok and self._is_file():
                self._video.set(cv2.CAP_PROP_POS_FRAMES, 0)
                ok, frame = self._video.read()
            if not ok or frame is None:
                self._release()
                raise DeviceUnavailable(f"camera {self.source!r} gave no frame")
            return np.ascontiguousarray(frame, dtype=np.uint8)

    def _read_still(self) -> Image:
        if self._still is None:
            still = cv2.imread(str(self.source), cv2.IMREAD_COLOR)
            if still is None:
                raise DeviceUnavailable(f"cannot read image {self.source!r}")
            self._still = np.asarray(still, dtype=np.uint8)
        return self._still.copy()

    def _open(self) -> cv2.VideoCapture:
        video = self._video_capture()
        if not video.isOpened():
            video.release()
            raise DeviceUnavailable(f"cannot open camera {self.source!r}")
        if not self._is_file():
            video.set(cv2.CAP_PROP_BUFFERSIZE, 1)  # a scan wants the page now, not a queued frame
        if self.width is not None:
            video.set(cv2.CAP_PROP_FRAME_WIDTH, self.width)
        if self.height is not None:
            video.set(cv2.CAP_PROP_FRAME_HEIGHT, self.height)
        return video

    def _video_capture(self) -> cv2.VideoCapture:
        source = self.source
        if isinstance(source, int) or source.isdigit():
            return cv2.VideoCapture(int(source))
        if source.startswith("/dev/"):
            return cv2.VideoCapture(source, cv2.CAP_V4L2)
        if not self._is_file() and not Path(source).exists() and "://" not in source:
            return cv2.VideoCapture()
        ms = int(self.timeout * 1000)
        params = [cv2.CAP_PROP_OPEN_TIMEOUT_MSEC, ms, cv2.CAP_PROP_READ_TIMEOUT_MSEC, ms]
        return cv2.VideoCapture(source, cv2.CAP_FFMPEG, params)

    def _is_file(self) -> bool:
        return isinstance(self.source, str) and Path(self.source).is_file()

    def _is_image_file(self) -> bool:
        return self._is_file() and Path(str(self.source)).suffix.lower() in IMAGE_SUFFIXES

    def _release(self) -> None:
        if self._video is not None:
            self._video.release()
            self._video = None


# --- Finding the sheet ----------------------------------------------------------------


def find_document(image: Image) -> Corners | None:
    """The sheet's four corners (TL, TR, BR, BL, float32), or None when no sheet
    shows whole in the picture.

    Two masks are tried in turn: Otsu's threshold, which separates a light sheet
    from a darker desk even under a mild lighting gradient, and dilated Canny edges,
    for a desk close to the sheet's brightness. The largest convex quadrilateral
    that Douglas-Peucker leaves of a mask's outer contours is the sheet; its sides
    are then fitted as lines through the contour's points, which places each corner
    to a fraction of a pixel even where the corner itself is rounded by blur.
    """
    gray = _gray(image)
    scale = min(1.0, DETECT_SIDE / max(gray.shape))
    small = gray if scale == 1.0 else np.asarray(cv2.resize(
        gray, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA), dtype=np.uint8)
    small = np.asarray(cv2.GaussianBlur(small, (5, 5), 0), dtype=np.uint8)
    for mask in _masks(small):
        found = _largest_quad(mask)
        if found is not None:
            quad, contour = found
            refined = _fit_sides(quad, contour)
            return _order((refined + 0.5) / scale - 0.5)
    return None


def _gray(image: Image) -> Image:
    """Grey levels of a grey, BGR or BGRA frame; DriverError for anything else (an
    empty or broken frame must fail the scan, not crash OpenCV's caller)."""
    if image.size == 0 or image.dtype != np.uint8 or image.ndim not in (2, 3):
        raise DriverError(f"not an 8-bit image: shape {image.shape}, {image.dtype}")
    if image.ndim == 2:
        return image
    channels = image.shape[2]
    if channels not in (1, 3, 4):
        raise DriverError(f"an image of {channels} channels")
    if channels == 1:
        return np.ascontiguousarray(image[:, :, 0])
    code = cv2.COLOR_BGR2GRAY if channels == 3 else cv2.COLOR_BGRA2GRAY
    return np.asarray(cv2.cvtColor(image, code), dtype=np.uint8)


def _masks(small: Image) -> list[Image]:
    kernel = cv2.getStructuringElement(cv2.MORPH_RECT, (5, 5))
    _, otsu = cv2.threshold(small, 0, 255, cv2.THRESH_BINARY + cv2.THRESH_OTSU)
    otsu = cv2.morphologyEx(otsu, cv2.MORPH_OPEN, kernel)
    median = float(np.median(small))
    edges = cv2.Canny(small, 0.5 * median, 1.2 * median)
    edges = cv2.dilate(edges, cv2.getStructuringElement(cv2.MORPH_RECT, (3, 3)))
    return [np.asarray(otsu, np.uint8), np.asarray(edges, np.uint8)]


def _largest_quad(
    mask: Image,
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]] | None:
    height, width = mask.shape
    contours, _ = cv2.findContours(mask, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
    for contour in sorted(contours, key=cv2.contourArea, reverse=True)[:5]:
        if cv2.contourArea(contour) < MIN_PAGE_FRACTION * width * height:
            return None
        hull = cv2.convexHull(contour)
        perimeter = cv2.arcLength(hull, True)
        for epsilon in (0.01, 0.02, 0.04):
            approx = cv2.approxPolyDP(hull, epsilon * perimeter, True)
            if len(approx) == 4 and cv2.isContourConvex(approx):
                quad = approx.reshape(4, 2).astype(np.float64)
                if _inside(quad, width, height):
                    return quad, contour.reshape(-1, 2).astype(np.float64)
                break
    return None


def _inside(quad: npt.NDArray[np.float64], width: int, height: int) -> bool:
    xs, ys = quad[:, 0], quad[:, 1]
    return bool(
        xs.min() >= BORDER_MARGIN and ys.min() >= BORDER_MARGIN
        and xs.max() <= width - 1 - BORDER_MARGIN and ys.max() <= height - 1 - BORDER_MARGIN
    )


def _fit_sides(
    quad: npt.NDArray[np.float64], contour: npt.NDArray[np.float64]
) -> npt.NDArray[np.float64]:
    """Corners as the intersections of lines fitted to each side's contour points,
    leaving out the fifth of the side nearest each corner; the Douglas-Peucker
    vertex is kept for a side with too few points to fit."""
    lines = []
    for i in range(4):
        start, end = quad[i], quad[(i + 1) % 4]
        side = end - start
        length = float(np.hypot(*side))
        if length < 1:
            return quad
        direction = side / length
        offset = contour - start
        along = offset @ direction
        across = np.abs(offset[:, 0] * direction[1] - offset[:, 1] * direction[0])
        near = (along > 0.2 * length) & (along < 0.8 * length) & (across < 4 + 0.02 * length)
        points = contour[near]
        if len(points) < 8:
            return quad
        vx, vy, x0, y0 = cv2.fitLine(points.astype(np.float32), cv2.DIST_HUBER, 0, 0.01,
                                     0.01).ravel()
        lines.append((np.array([x0, y0], np.float64), np.array([vx, vy], np.float64)))
    corners = []
    for i in range(4):
        corner = _intersect(lines[i - 1], lines[i])
        if corner is None or float(np.hypot(*(corner - quad[i]))) > 0.1 * float(
                np.hypot(*(quad[2] - quad[0]))):
            return quad
        corners.append(corner)
    return np.array(corners)


def _intersect(
    first: tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]],
    second: tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]],
) -> npt.NDArray[np.float64] | None:
    (p, r), (q, s) = first, second
    cross = r[0] * s[1] - r[1] * s[0]
    if abs(cross) < 1e-6:
        return None
    t = ((q - p)[0] * s[1] - (q - p)[1] * s[0]) / cross
    return np.asarray(p + t * r, dtype=np.float64)


def _order(points: npt.NDArray[np.float64]) -> Corners:
    """Clockwise on screen from the top-left: sorted by angle about the centroid,
    then rolled to start at the corner with the least x + y (unambiguous for a
    sheet turned less than 45°)."""
    centre = points.mean(axis=0)
    angles = np.arctan2(points[:, 1] - centre[1], points[:, 0] - centre[0])
    clockwise = points[np.argsort(angles)]
    first = int(np.argmin(clockwise.sum(axis=1)))
    return np.roll(clockwise, -first, axis=0).astype(np.float32)


# --- Flattening and straightening -----------------------------------------------------


def paper_size(paper: Paper, dpi: int, orientation: Literal["portrait", "landscape"]
               ) -> tuple[int, int]:
    """Width and height in pixels of a sheet at ``dpi``."""
    if paper not in PAPER_MM:
        raise ValueError(f"unknown paper {paper!r}; A4 or A3")
    if dpi <= 0:
        raise ValueError("dpi must be positive")
    width_mm, height_mm = PAPER_MM[paper]
    width, height = round(width_mm / 25.4 * dpi), round(height_mm / 25.4 * dpi)
    return (width, height) if orientation == "portrait" else (height, width)


def rectify(
    image: Image,
    corners: Corners,
    *,
    paper: Paper = "A4",
    dpi: int = 150,
    orientation: Orientation = "auto",
) -> Image:
    """The sheet seen head-on, exactly the paper's size in pixels at ``dpi``.

    ``auto`` keeps the sheet as it lies: landscape when its outline is wider than
    tall. Forcing the other orientation turns the result a quarter turn clockwise
    (the camera cannot tell which edge is the top of a sheet lying sideways).
    """
    quad = np.asarray(corners, dtype=np.float32).reshape(4, 2)
    if abs(cv2.contourArea(quad)) < 16:
        raise ValueError("the corners enclose no page")
    tl, tr, br, bl = quad.astype(np.float64)
    wide = (np.hypot(*(tr - tl)) + np.hypot(*(br - bl))) > (
        np.hypot(*(bl - tl)) + np.hypot(*(br - tr)))
    lying: Literal["portrait", "landscape"] = "landscape" if wide else "portrait"
    wanted = lying if orientation == "auto" else orientation
    if wanted != lying:
        quad = np.roll(quad, 1, axis=0)
    width, height = paper_size(paper, dpi, wanted)
    target = np.array(
        [[-0.5, -0.5], [width - 0.5, -0.5], [width - 0.5, height - 0.5], [-0.5, height - 0.5]],
        dtype=np.float32,
    )
    homography = cv2.getPerspectiveTransform(quad, target)
    flat = cv2.warpPerspective(image, homography, (width, height), flags=cv2.INTER_LINEAR,
                               borderMode=cv2.BORDER_REPLICATE)
    return np.asarray(flat, dtype=np.uint8)


def deskew(image: Image) -> tuple[Image, float]:
    """The page with its text lines horizontal, and the angle they were at
    (degrees, positive counter-clockwise, the sense of ``getRotationMatrix2D``).

    The ink is found by Otsu's threshold; each trial angle projects the ink onto
    the page's vertical and scores the histogram by its sum of squares, which peaks
    when lines of text fall into as few rows as possible. A coarse pass in half
    degrees over ±``MAX_SKEW`` is refined in twentieths around the best. The page
    is rotated about its centre with white filled in at the corners.
    """
    gray = _gray(image)
    scale = min(1.0, 1000 / max(gray.shape))
    small = gray if scale == 1.0 else cv2.resize(
        gray, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
    _, ink = cv2.threshold(small, 0, 255, cv2.THRESH_BINARY_INV + cv2.THRESH_OTSU)
    ys, xs = np.nonzero(ink)
    if len(xs) < 100 or len(xs) > 0.6 * ink.size:
        return image, 0.0
    xs_f = xs.astype(np.float64) - small.shape[1] / 2
    ys_f = ys.astype(np.float64) - small.shape[0] / 2

    def sharpness(degrees: float) -> float:
        angle = math.radians(degrees)
        rows = np.round(ys_f * math.cos(angle) + xs_f * math.sin(angle)).astype(np.int64)
        counts = np.bincount(rows - rows.min())
        return float(np.dot(counts, counts))

    coarse = max(np.arange(-MAX_SKEW, MAX_SKEW + 0.25, 0.5), key=sharpness)
    fine = float(max(np.arange(coarse - 0.5, coarse + 0.525, 0.05), key=sharpness))
    angle = fine
    if abs(angle) < MIN_SKEW:
        return image, 0.0
    height, width = gray.shape
    matrix = cv2.getRotationMatrix2D(((width - 1) / 2, (height - 1) / 2), -angle, 1.0)
    white = (255, 255, 255) if image.ndim == 3 else 255
    straight = cv2.warpAffine(image, matrix, (width, height), flags=cv2.INTER_LINEAR,
                              borderMode=cv2.BORDER_CONSTANT, borderValue=white)
    return np.asarray(straight, dtype=np.uint8), round(angle, 2)


# --- Scanning --------------------------------------------------------------------------


@dataclass(frozen=True)
class ScannedPage:
    """A flattened, straightened page and what was found on the way."""

    image: Image
    corners: Corners
    """Where the sheet's corners were in the frame (TL, TR, BR, BL)."""
    skew: float
    """Residual text skew that was corrected, degrees counter-clockwise."""
    paper: Paper
    dpi: int

    @property
    def size(self) -> tuple[int, int]:
        """Width and height in pixels."""
        height, width = self.image.shape[:2]
        return width, height


def scan(image: Image, *, paper: Paper = "A4", dpi: int = 150,
         orientation: Orientation = "auto") -> ScannedPage:
    """Detect, rectify, deskew; DriverError("no document found") when there is no
    whole sheet in the frame."""
    corners = find_document(image)
    if corners is None:
        raise DriverError("no document found")
    flat = rectify(image, corners, paper=paper, dpi=dpi, orientation=orientation)
    straight, skew = deskew(flat)
    return ScannedPage(straight, corners, skew, paper, dpi)


# --- Encoding --------------------------------------------------------------------------


def encode_jpeg(image: Image, quality: int = 80) -> bytes:
    """Baseline JPEG at ``quality`` (1-100)."""
    if not 1 <= quality <= 100:
        raise ValueError("JPEG quality is 1 to 100")
    ok, data = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:
        raise DriverError("OpenCV could not encode the image as JPEG")
    return bytes(data.tobytes())


def encode_pdf(images: Sequence[Image], *, dpi: int, quality: int = 80) -> bytes:
    """One page per image, each page the image's size at ``dpi`` (an A4 scan at
    150 dpi makes a 595 × 842 pt page), its picture stored as JPEG."""
    if not images:
        raise ValueError("a PDF needs at least one page")
    if dpi <= 0:
        raise ValueError("dpi must be positive")
    pages = [_pil(image) for image in images]
    buffer = io.BytesIO()
    pages[0].save(buffer, format="PDF", save_all=True, append_images=pages[1:],
                  resolution=float(dpi), quality=quality)
    return buffer.getvalue()


def _pil(image: Image) -> PILImage.Image:
    if image.ndim == 2:
        return PILImage.fromarray(image, mode="L")
    return PILImage.fromarray(cv2.cvtColor(image, cv2.COLOR_BGR2RGB), mode="RGB")


# --- Upload ---------------------------------------------------------------------------


async def upload(
    pages: bytes,
    *,
    content_type: str,
    case_id: str,
    server_url: str,
    token: str,
    filename: str,
    timeout: float = 30.0,
) -> dict[str, Any]:
    """POST the encoded scan to the case; the server's description of the stored
    document (id, sha256, size, pages...) on success.

    The upload is idempotent on the server (same case, same bytes: the same
    document), so after ServerUnavailable the caller simply sends it again.
    """
    url = server_url.rstrip("/") + UPLOAD_PATH.format(case_id=quote(case_id, safe=""))
    headers = {"Authorization": f"Bearer {token}", "Content-Type": content_type}
    try:
        async with (
            aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=timeout)) as http,
            http.post(url, data=pages, headers=headers, params={"filename": filename}) as response,
        ):
            if response.status >= 300:
                raise await _refusal(response)
            try:
                answer = await response.json(content_type=None)
            except ValueError as error:
                raise UploadFailed(f"the server's answer is not JSON: {error}",
                                   status=response.status) from error
    except (aiohttp.ClientError, TimeoutError) as error:
        raise ServerUnavailable(f"hall server {server_url} unreachable: {error}") from error
    if not isinstance(answer, dict):
        raise UploadFailed("the server's answer is not a JSON object", status=response.status)
    return answer


async def _refusal(response: aiohttp.ClientResponse) -> UploadFailed:
    """An UploadFailed carrying the problem document's code, title and detail."""
    text = await response.text(errors="replace")
    code = None
    message = text[:500]
    if response.content_type in ("application/problem+json", "application/json"):
        try:
            problem = await response.json(content_type=None)
        except ValueError:
            problem = None
        if isinstance(problem, dict):
            code = problem.get("code")
            parts = [str(problem[key]) for key in ("title", "detail") if problem.get(key)]
            message = ": ".join(parts) or message
    summary = f"upload refused ({response.status}{' ' + code if code else ''}): {message}"
    kind = ServerUnavailable if response.status >= 500 else UploadFailed
    return kind(summary, status=response.status, code=code)
