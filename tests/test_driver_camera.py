"""The document camera driver against synthetic desk photos whose truth is known.

Tolerances, all measured against the simulator's exact page corners and marks:
corners within 0.5 % of the page's diagonal; fiducial centres on the flattened page
within 2 mm at 150 dpi; the flattened page's normalized cross-correlation with the
printed one (both Gaussian-smoothed, sigma 1.5 px) at least 0.90; residual skew
recovered within 0.5°.
"""

from __future__ import annotations

import socket
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import numpy.typing as npt
import pytest
from PIL import PdfParser

from drivers import camera
from drivers.errors import DeviceUnavailable, DriverError
from drivers.simulators import camera as sim

DESK = (1280, 960)
CORNER_TOLERANCE = 0.005
FIDUCIAL_TOLERANCE_MM = 2.0
MIN_CORRELATION = 0.90
SKEW_TOLERANCE = 0.5


@pytest.fixture(scope="module")
def page() -> sim.Page:
    return sim.render_page(dpi=100)


@pytest.fixture(scope="module")
def fine_page() -> sim.Page:
    return sim.render_page(dpi=150, seed=3)


def gray(image: npt.NDArray[np.uint8]) -> npt.NDArray[np.float64]:
    if image.ndim == 3:
        return np.asarray(cv2.cvtColor(image, cv2.COLOR_BGR2GRAY), dtype=np.float64)
    return image.astype(np.float64)


def correlation(a: npt.NDArray[np.uint8], b: npt.NDArray[np.uint8]) -> float:
    x = cv2.GaussianBlur(gray(a), (0, 0), 1.5)
    y = cv2.GaussianBlur(gray(b), (0, 0), 1.5)
    x, y = x - x.mean(), y - y.mean()
    return float((x * y).sum() / np.sqrt((x * x).sum() * (y * y).sum()))


def fiducial_centres(
    image: npt.NDArray[np.uint8], expected: npt.NDArray[np.float32], dpi: int
) -> npt.NDArray[np.float64]:
    """The centroid of the largest dark blob within 12 mm of each expected centre."""
    g = gray(image).astype(np.uint8)
    reach = round(12 / 25.4 * dpi)
    found = []
    for cx, cy in expected:
        x0, y0 = max(0, round(cx) - reach), max(0, round(cy) - reach)
        window = g[y0:round(cy) + reach, x0:round(cx) + reach]
        _, dark = cv2.threshold(window, 0, 255, cv2.THRESH_BINARY_INV + cv2.THRESH_OTSU)
        count, _, stats, centroids = cv2.connectedComponentsWithStats(dark)
        assert count > 1, "no fiducial near its expected place"
        biggest = 1 + int(np.argmax(stats[1:, cv2.CC_STAT_AREA]))
        found.append(centroids[biggest] + (x0, y0))
    return np.array(found)


def corner_error(found: npt.NDArray[np.float32], truth: npt.NDArray[np.float32]) -> float:
    """Worst corner distance as a fraction of the page's diagonal."""
    diagonal = float(np.hypot(*(truth[2] - truth[0])))
    return float(np.hypot(*(found - truth).T).max()) / diagonal


SCENES = [
    pytest.param(dict(rotation=3.0), id="3deg"),
    pytest.param(dict(rotation=-3.0, lighting_gradient=0.2, noise=3.0), id="-3deg-light-noise"),
    pytest.param(dict(rotation=10.0, keystone=0.1, noise=4.0, blur=1.0), id="10deg-perspective"),
    pytest.param(dict(rotation=-12.0, keystone=0.15, lighting_gradient=0.3), id="-12deg-shadow"),
    pytest.param(dict(rotation=25.0, lighting_gradient=0.35, noise=6.0, blur=1.5), id="25deg-hard"),
    pytest.param(dict(rotation=-25.0, keystone=0.08, noise=5.0, shift=(0.08, 0.02)),
                 id="-25deg-shifted"),
]


def shoot(
    page: sim.Page,
    *,
    rotation: float = 0.0,
    keystone: float = 0.0,
    shift: tuple[float, float] = (0.0, 0.0),
    lighting_gradient: float = 0.0,
    noise: float = 0.0,
    blur: float = 0.0,
    seed: int = 1,
) -> tuple[npt.NDArray[np.uint8], npt.NDArray[np.float32]]:
    corners = sim.placement(DESK, page.size, keystone=keystone, shift=shift)
    return sim.photograph(page, corners=corners, desk_size=DESK, rotation=rotation,
                          lighting_gradient=lighting_gradient, noise=noise, blur=blur,
                          seed=seed)


@pytest.mark.parametrize("scene", SCENES)
def test_page_corners_are_found_within_half_a_percent_of_the_diagonal(
    page: sim.Page, scene: dict[str, Any]
) -> None:
    photo, truth = shoot(page, **scene)
    found = camera.find_document(photo)
    assert found is not None
    assert found.dtype == np.float32 and found.shape == (4, 2)
    assert corner_error(found, truth) <= CORNER_TOLERANCE


def test_a_grayscale_photo_is_searched_like_a_colour_one(page: sim.Page) -> None:
    photo, truth = shoot(page, rotation=7.0, noise=3.0)
    found = camera.find_document(np.asarray(cv2.cvtColor(photo, cv2.COLOR_BGR2GRAY), np.uint8))
    assert found is not None and corner_error(found, truth) <= CORNER_TOLERANCE


@pytest.mark.parametrize("scene", [SCENES[2], SCENES[4]])
def test_the_flattened_page_matches_the_printed_one(
    fine_page: sim.Page, scene: dict[str, Any]
) -> None:
    photo, _ = shoot(fine_page, **scene)
    flat = camera.scan(photo, paper="A4", dpi=150).image
    centres = fiducial_centres(flat, fine_page.fiducials, 150)
    worst_mm = float(np.hypot(*(centres - fine_page.fiducials).T).max()) / 150 * 25.4
    assert worst_mm <= FIDUCIAL_TOLERANCE_MM
    assert correlation(flat, fine_page.image) >= MIN_CORRELATION


def test_an_empty_desk_has_no_document() -> None:
    rng = np.random.default_rng(5)
    desk = np.clip(rng.normal(70, 12, (DESK[1], DESK[0], 3)), 0, 255).astype(np.uint8)
    assert camera.find_document(desk) is None


def test_a_page_cut_off_by_the_frame_is_not_a_document(page: sim.Page) -> None:
    corners = sim.placement(DESK, page.size, shift=(0.0, 0.2))
    photo, truth = sim.photograph(page, corners=corners, desk_size=DESK)
    assert truth[:, 1].max() > DESK[1]
    assert camera.find_document(photo) is None


@pytest.mark.parametrize("frame", [
    np.zeros((0, 0, 3), np.uint8), np.zeros((4, 4, 2), np.uint8), np.zeros((4, 4), np.float32),
])
def test_a_broken_frame_is_a_driver_error(frame: npt.NDArray[np.uint8]) -> None:
    with pytest.raises(DriverError, match="image"):
        camera.scan(frame)


def test_scanning_a_photo_without_a_page_raises_driver_error() -> None:
    desk = np.full((480, 640, 3), 60, np.uint8)
    with pytest.raises(DriverError, match="no document found"):
        camera.scan(desk)


@pytest.mark.parametrize(("paper", "dpi", "size"), [
    ("A4", 100, (827, 1169)), ("A4", 150, (1240, 1754)), ("A3", 100, (1169, 1654)),
    ("A3", 150, (1754, 2480)),
])
def test_the_flattened_page_is_exactly_the_paper_size_at_the_dpi(
    page: sim.Page, paper: camera.Paper, dpi: int, size: tuple[int, int]
) -> None:
    photo, truth = shoot(page, rotation=-6.0, keystone=0.1)
    flat = camera.rectify(photo, truth, paper=paper, dpi=dpi)
    assert (flat.shape[1], flat.shape[0]) == size


def test_a_sheet_lying_sideways_comes_out_landscape_or_turned_upright(page: sim.Page) -> None:
    photo, _ = shoot(page, rotation=90.0, noise=2.0)
    corners = camera.find_document(photo)
    assert corners is not None
    lying = camera.rectify(photo, corners, dpi=100)
    upright = camera.rectify(photo, corners, dpi=100, orientation="portrait")
    assert (lying.shape[1], lying.shape[0]) == (1169, 827)
    assert (upright.shape[1], upright.shape[0]) == page.size
    assert correlation(upright, page.image) >= MIN_CORRELATION


@pytest.mark.parametrize("skew", [-3.0, -1.2, 0.7, 2.5])
def test_deskew_recovers_a_known_text_rotation_within_half_a_degree(skew: float) -> None:
    tilted = sim.render_page(dpi=100, skew=skew, seed=2)
    straight, found = camera.deskew(tilted.image)
    assert abs(found - skew) <= SKEW_TOLERANCE
    assert correlation(straight, sim.render_page(dpi=100, seed=2).image) >= 0.95


def test_corners_that_enclose_nothing_are_refused(page: sim.Page) -> None:
    with pytest.raises(ValueError, match="enclose no page"):
        camera.rectify(page.image, np.zeros((4, 2), np.float32))


def test_a_straight_page_is_left_untouched_by_deskew(page: sim.Page) -> None:
    straight, found = camera.deskew(page.image)
    assert found == 0.0
    assert straight is page.image


def test_scan_reports_the_corners_and_the_skew_it_corrected() -> None:
    tilted = sim.render_page(dpi=100, skew=2.0, seed=4)
    photo, truth = shoot(tilted, rotation=-8.0, keystone=0.05, noise=3.0)
    scanned = camera.scan(photo, paper="A4", dpi=100)
    assert scanned.size == (827, 1169)
    assert abs(scanned.skew - 2.0) <= SKEW_TOLERANCE
    assert corner_error(scanned.corners, truth) <= CORNER_TOLERANCE
    assert (scanned.paper, scanned.dpi) == ("A4", 100)


def test_a_jpeg_decodes_to_the_page_and_is_smaller_than_the_raw_pixels(page: sim.Page) -> None:
    data = camera.encode_jpeg(page.image, quality=80)
    decoded = np.asarray(cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR), np.uint8)
    assert data[:3] == b"\xff\xd8\xff"
    assert decoded.shape == page.image.shape
    assert len(data) < page.image.nbytes / 10
    assert correlation(decoded, page.image) >= 0.99


def test_a_jpeg_quality_outside_1_to_100_is_refused(page: sim.Page) -> None:
    with pytest.raises(ValueError, match="quality"):
        camera.encode_jpeg(page.image, quality=0)


def test_a_pdf_has_one_page_per_image_at_the_paper_size(fine_page: sim.Page) -> None:
    small = sim.render_page(dpi=150, paper="A3")
    data = camera.encode_pdf([fine_page.image, small.image, fine_page.image], dpi=150)
    parser = PdfParser.PdfParser(buf=data)
    boxes = [parser.read_indirect(ref)[b"MediaBox"] for ref in parser.pages]
    a4_pt, a3_pt = (595.28, 841.89), (841.89, 1190.55)
    assert len(boxes) == 3
    for box, expected in zip(boxes, [a4_pt, a3_pt, a4_pt], strict=True):
        assert box[:2] == [0, 0]
        assert abs(box[2] - expected[0]) < 0.5 and abs(box[3] - expected[1]) < 0.5


def test_a_pdf_without_pages_is_refused() -> None:
    with pytest.raises(ValueError, match="at least one page"):
        camera.encode_pdf([], dpi=150)


# --- Capture --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory, page: sim.Page) -> Path:
    frames = [shoot(page, rotation=r, noise=2.0, seed=i)[0]
              for i, r in enumerate((4.0, -6.0, 9.0))]
    return sim.write_video(tmp_path_factory.mktemp("camera") / "desk.avi", frames)


async def test_capture_reads_a_recorded_clip_and_rewinds_at_its_end(clip: Path) -> None:
    capture = camera.Capture(str(clip))
    try:
        frames = [await capture.frame() for _ in range(4)]
    finally:
        capture.close()
    assert all(f.shape == (DESK[1], DESK[0], 3) and f.dtype == np.uint8 for f in frames)
    assert correlation(frames[3], frames[0]) > 0.99
    assert correlation(frames[1], frames[0]) < 0.9


async def test_a_frame_from_the_clip_scans_to_a_page(clip: Path) -> None:
    capture = camera.Capture(str(clip))
    try:
        scanned = camera.scan(await capture.frame(), dpi=100)
    finally:
        capture.close()
    assert scanned.size == (827, 1169)


async def test_capture_serves_a_still_image_as_every_frame(
    tmp_path: Path, page: sim.Page
) -> None:
    path = tmp_path / "desk.png"
    cv2.imwrite(str(path), shoot(page, rotation=5.0)[0])
    capture = camera.Capture(str(path))
    first, second = await capture.frame(), await capture.frame()
    capture.close()
    assert first.shape == (DESK[1], DESK[0], 3)
    assert np.array_equal(first, second)


@pytest.mark.parametrize("source", [9, "9", "/dev/video9", "/no/such/clip.avi"])
async def test_a_missing_camera_is_unavailable(source: str | int) -> None:
    capture = camera.Capture(source)
    with pytest.raises(DeviceUnavailable):
        await capture.frame()
    capture.close()


async def test_an_upload_to_a_server_that_is_down_is_server_unavailable(page: sim.Page) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with pytest.raises(camera.ServerUnavailable) as caught:
        await camera.upload(camera.encode_jpeg(page.image), content_type="image/jpeg",
                            case_id="C1", server_url=f"http://127.0.0.1:{port}", token="t",
                            filename="p.jpg", timeout=3.0)
    assert isinstance(caught.value, DeviceUnavailable)

