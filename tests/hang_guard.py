"""A test that hangs fails with every thread's stack printed; the run goes on.

pytest-timeout (``timeout`` in pyproject.toml, its "signal" method) raises in a test
that runs too long, once. If the test's teardown then hangs too (asyncio's executor
shutdown on Python 3.11 waits for a stuck thread without a limit, a fixture waits for
a process that never ends), nothing else would ever end it, and a whole CI run would
wait for its outer limit with no word of where. So while a test is past its timeout,
this plugin prints every thread's stack to stderr (which the CI log keeps, also under
xdist) and makes the main thread raise again (a signal of its own), every
``hang_guard_again_s`` (ini, 30 s); after ``GIVE_UP_AFTER`` tries it ends the process,
as a last resort, with every process it started. A test stopped this way may leave a
thread that never ends, which would keep the interpreter from exiting after the run:
the process then ends itself with the run's exit status (an xdist worker is ended by
its controller instead). xdist would run the ended test again on the worker that
replaces it (and hang again): the test's id is left in a file for the run, and a
worker that is handed it fails it without running it.

Why a hang can outlive pytest-timeout's alarm at all: a signal's Python handler runs
only when the main thread is back in the interpreter, and some C calls never come back
(pcsc-lite asking a pcscd that stopped answering waits without a limit, measured).
"""

from __future__ import annotations

import contextlib
import faulthandler
import os
import signal
import sys
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest
import pytest_timeout

GIVE_UP_AFTER = 4
STOP_SIGNAL = signal.SIGUSR1

_hung = threading.Event()
_stopped: list[str] = []


def _timeout_of(item: pytest.Item) -> float:
    """pytest-timeout's own reading of the item's timeout (marker, ``--timeout``,
    PYTEST_TIMEOUT, the ini), so the guard never starts before the alarm it follows up."""
    return float(pytest_timeout._get_item_settings(item).timeout or 0)


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addini("hang_guard_again_s", "seconds between tries to stop a test past its "
                  "timeout (tests/hang_guard.py)", default="30")


def _stop_the_hung_test(signum: int, frame: object) -> None:
    """Installed for the whole session, so a late signal after the test ended is harmless."""
    if _hung.is_set():
        pytest.fail("still running after its timeout: stopped again by tests/hang_guard.py")


def pytest_configure(config: pytest.Config) -> None:
    if threading.current_thread() is threading.main_thread():
        signal.signal(STOP_SIGNAL, _stop_the_hung_test)


def _ended_tests_file(config: pytest.Config) -> Path | None:
    """Shared by the workers of one xdist run; None outside xdist."""
    workerinput = getattr(config, "workerinput", None)
    if workerinput is None:
        return None
    return Path(tempfile.gettempdir()) / f"smarthall-ended-tests-{workerinput['testrunuid']}"


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item: pytest.Item) -> None:
    ended = _ended_tests_file(item.config)
    if ended is not None and ended.exists() and item.nodeid in ended.read_text().splitlines():
        pytest.fail("this test hung its test worker, which was ended (its stacks are "
                    "printed above): not run again")


def _watch(item: pytest.Item, first_s: float, again_s: float, done: threading.Event) -> None:
    if done.wait(first_s + again_s):
        return
    _hung.set()
    _stopped.append(item.nodeid)
    for attempt in range(1, GIVE_UP_AFTER + 1):
        print(f"\n+++ {item.nodeid} still runs {again_s:.0f} s after its timeout "
              f"(try {attempt} of {GIVE_UP_AFTER}); every thread's stack:",
              file=sys.__stderr__, flush=True)
        faulthandler.dump_traceback(file=sys.__stderr__, all_threads=True)
        signal.pthread_kill(threading.main_thread().ident or 0, STOP_SIGNAL)
        if done.wait(again_s):
            return
    print(f"\n+++ {item.nodeid} cannot be stopped: ending this test process and the "
          "processes it started", file=sys.__stderr__, flush=True)
    ended = _ended_tests_file(item.config)
    if ended is not None:
        with ended.open("a") as file:
            file.write(item.nodeid + "\n")
    _kill_children()
    os._exit(3)


def _kill_children() -> None:
    """A daemon left behind (a stuck pcscd, a broker) would hang the test worker that
    replaces this one."""
    for child in psutil.Process().children(recursive=True):
        with contextlib.suppress(psutil.Error):
            child.kill()


@pytest.hookimpl(hookwrapper=True, tryfirst=True)
def pytest_runtest_protocol(item: pytest.Item) -> Iterator[None]:
    timeout = _timeout_of(item)
    if timeout <= 0:
        yield
        return
    again_s = float(item.config.getini("hang_guard_again_s"))
    done = threading.Event()
    watcher = threading.Thread(target=_watch, args=(item, timeout, again_s, done),
                               name=f"hang-guard {item.nodeid}", daemon=True)
    watcher.start()
    try:
        yield
    finally:
        done.set()
        watcher.join()
        _hung.clear()


@pytest.hookimpl(trylast=True)
def pytest_unconfigure(config: pytest.Config) -> None:
    if _stopped and not hasattr(config, "workerinput"):
        print(f"+++ {len(_stopped)} test(s) had to be stopped and may have left threads "
              "running: ending the process", file=sys.__stderr__, flush=True)
        os._exit(int(getattr(config, "_hang_guard_status", 1)))


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    session.config._hang_guard_status = exitstatus  # type: ignore[attr-defined]
