"""The hall's pages in a real headless Chromium (Debian's, driven by Playwright through
``executable_path``), against a real hall server on a real port.

``open_page`` fails the test on any JavaScript error or failed request the page makes,
so a page that half-works cannot pass; ``shot`` saves a screenshot under artifacts/ for a
person to look at.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from aiohttp.test_utils import TestServer
from playwright.async_api import Browser, Page, Request, async_playwright, expect

from hall.config import HallConfig
from hall.http import build_app
from hall.server import HallServer
from tests.hall_kit import ManualClock, serving

ROOT = Path(__file__).resolve().parent.parent
ARTIFACTS = ROOT / "artifacts"

KIOSK = (1080, 1920)
BOARD = (1920, 1080)
WINDOW_PC = (1366, 768)
WINDOW_SCREEN = (800, 480)
PHONE = (390, 844)

# Playwright gives an expectation 5 s, time to spare on a quiet machine but not on a busy
# 2-core CI runner (the reports view's four Plotly charts take 3.3 s on a quiet one here).
# An expectation that holds returns as soon as it does, so only a failure waits longer.
expect.set_options(timeout=15_000)


def chromium_path() -> str:
    path = os.environ.get("CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
    if not Path(path).exists():
        pytest.fail("chromium is missing: install the Debian package chromium")
    return path


# What Playwright's own launch passes Chromium (seen in ps), so a browser started here
# behaves as one Playwright starts: timers keep running in pages nobody looks at, pointer
# and hover media queries match a mouse, screenshots use sRGB.
CHROMIUM_FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
    "--disable-background-networking", "--disable-background-timer-throttling",
    "--disable-backgrounding-occluded-windows", "--disable-back-forward-cache",
    "--disable-breakpad", "--disable-component-update", "--disable-default-apps",
    "--disable-dev-shm-usage", "--disable-extensions", "--disable-hang-monitor",
    "--disable-ipc-flooding-protection", "--disable-popup-blocking",
    "--disable-prompt-on-repost", "--disable-renderer-backgrounding", "--disable-sync",
    "--force-color-profile=srgb", "--metrics-recording-only", "--password-store=basic",
    "--use-mock-keychain", "--no-service-autorun", "--hide-scrollbars", "--mute-audio",
    "--blink-settings=primaryHoverType=2,availableHoverTypes=2,"
    "primaryPointerType=4,availablePointerTypes=4",
]


class SharedChromium:
    """One Chromium per test process, which each page test reaches over CDP in browser
    contexts of its own. A launch and close per test cost 2.0-2.5 s here, on some 100
    page tests; a test's browser now costs 1.4-1.5 s, most of it Playwright's own driver
    starting (0.85 s; it is bound to the test's event loop). Started again when it has
    died."""

    def __init__(self, profile: Path) -> None:
        self._profile = profile
        self._process: subprocess.Popen[bytes] | None = None
        self._endpoint = ""

    def endpoint(self) -> str:
        if self._process is None or self._process.poll() is not None:
            self._start()
        return self._endpoint

    def _start(self) -> None:
        active_port = self._profile / "DevToolsActivePort"
        active_port.unlink(missing_ok=True)
        with (self._profile.parent / "chromium.log").open("ab") as log:
            self._process = subprocess.Popen(
                [chromium_path(), *CHROMIUM_FLAGS, "--remote-debugging-port=0",
                 f"--user-data-dir={self._profile}", "about:blank"],
                stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            lines = active_port.read_text().split() if active_port.exists() else []
            if len(lines) == 2:
                self._endpoint = f"ws://127.0.0.1:{lines[0]}{lines[1]}"
                return
            if self._process.poll() is not None:
                break
            time.sleep(0.05)
        self.close()
        pytest.fail(f"chromium did not open its DevTools port: {self._profile.parent}")

    def close(self) -> None:
        process, self._process = self._process, None
        if process is not None and process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


@contextlib.asynccontextmanager
async def chromium(shared: SharedChromium) -> AsyncIterator[Browser]:
    async with async_playwright() as playwright:
        browser = await playwright.chromium.connect_over_cdp(shared.endpoint())
        try:
            yield browser
        finally:
            for context in browser.contexts[1:]:  # the first is the browser's own
                with contextlib.suppress(Exception):
                    await context.close()
            await browser.close()


@dataclass
class LiveHall:
    server: HallServer
    http: TestServer
    clock: ManualClock
    problems: list[str] = field(default_factory=list)

    def url(self, path: str) -> str:
        return str(self.http.make_url(path))


@contextlib.asynccontextmanager
async def live_hall(pool: asyncpg.Pool, config: HallConfig,
                    clock: ManualClock | None = None) -> AsyncIterator[LiveHall]:
    clock = clock or ManualClock()
    server = await serving(pool, clock, config)
    http = TestServer(build_app(server), host="127.0.0.1")
    await http.start_server()
    try:
        yield LiveHall(server, http, clock)
    finally:
        await http.close()
        await server.stop()


async def open_page(browser: Browser, hall: LiveHall, path: str,
                    viewport: tuple[int, int] = WINDOW_PC, **context: Any) -> Page:
    """A fresh browser context (its own localStorage) showing ``path``."""
    width, height = viewport
    ctx = await browser.new_context(viewport={"width": width, "height": height}, **context)
    page = await ctx.new_page()
    page.on("pageerror", lambda error: hall.problems.append(f"{path}: {error}"))
    page.on("console", lambda message: hall.problems.append(f"{path}: console: {message.text}")
            if message.type == "error" else None)
    page.on("requestfailed", lambda request: _failed(hall, path, request))
    await page.goto(hall.url(path))
    return page


def _failed(hall: LiveHall, path: str, request: Request) -> None:
    """A request the page itself gave up (a reload or navigation aborts what was in
    flight) is not the server failing it; the event stream's socket closing at the
    end of a test is not either."""
    failure = request.failure or ""
    if "ERR_ABORTED" in failure or request.url.split("?")[0].endswith("/events"):
        return
    hall.problems.append(f"{path}: request failed: {request.url} ({failure})")


def no_page_errors(hall: LiveHall, allowed: tuple[str, ...] = ()) -> None:
    """``allowed`` are substrings of console errors a test provokes on purpose (a refused
    request's 4xx shows as a console error in Chromium)."""
    left = [p for p in hall.problems if not any(a in p for a in allowed)]
    assert not left, "\n".join(left)


async def shot(page: Page, name: str) -> Path:
    ARTIFACTS.mkdir(exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    await page.screenshot(path=str(path), full_page=False)
    return path
