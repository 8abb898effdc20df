"""The suite's guard against hanging tests (tests/hang_guard.py), run on a tiny suite of its own."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

pytest_plugins = ["pytester"]


def run_guarded(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, suite: str, *options: str,
    timeout: float,
) -> pytest.RunResult:
    """``suite`` as a test file of its own, run in a pytest process of its own with the
    guard, a 1 s timeout and 1 s between the guard's tries."""
    monkeypatch.setenv("PYTHONPATH", str(Path(__file__).parents[1]))
    pytester.makepyfile(test_suite=suite)
    return pytester.runpytest_subprocess(
        "-p", "tests.hang_guard", "-p", "no:cacheprovider", *options,
        "-o", "timeout=1", "-o", "hang_guard_again_s=1", timeout=timeout,
    )

HANGING_SUITE = '''
import asyncio
import threading

import pytest


@pytest.fixture
def stubborn():
    yield
    threading.Event().wait()


def test_whose_teardown_never_ends(stubborn):
    threading.Event().wait()


async def test_whose_thread_never_returns():
    await asyncio.to_thread(threading.Event().wait)


def test_after_them():
    pass
'''


def test_tests_that_hang_past_their_timeout_are_stopped_and_the_run_goes_on(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch,
) -> None:
    started = time.monotonic()
    result = run_guarded(
        pytester, monkeypatch, HANGING_SUITE,
        "-o", "asyncio_mode=auto", "-o", "asyncio_default_fixture_loop_scope=function",
        timeout=60,
    )
    took = time.monotonic() - started
    result.assert_outcomes(passed=1, failed=2, errors=2)
    result.stdout.fnmatch_lines([
        "*+++ *test_whose_teardown_never_ends still runs 1 s after its timeout*",
        "*Failed: still running after its timeout*",
    ])
    result.stderr.fnmatch_lines(["+++ 2 test(s) had to be stopped*ending the process"])
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    assert took < 30


UNSTOPPABLE_SUITE = '''
import signal
import time


def test_that_no_signal_reaches():
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGALRM, signal.SIGUSR1})
    time.sleep(1000)


def test_after_it():
    pass
'''


def test_a_test_that_cannot_be_stopped_ends_its_worker_once_and_the_rest_still_run(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch,
) -> None:
    result = run_guarded(pytester, monkeypatch, UNSTOPPABLE_SUITE, "-n", "1", "--dist", "loadfile",
                         timeout=90)
    result.assert_outcomes(passed=1, failed=1, errors=1)
    result.stdout.fnmatch_lines(["*worker 'gw0' crashed while running*test_that_no_signal*"])
    result.stdout.fnmatch_lines(["*this test hung its test worker, which was ended*not run*"])
