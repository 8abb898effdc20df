"""The cycle collector's policy for a long-running server (hall/collector.py)."""

from __future__ import annotations

import gc
from collections.abc import Iterator
from datetime import datetime
from zoneinfo import ZoneInfo

import pytest

from hall import collector

SHANGHAI = ZoneInfo("Asia/Shanghai")


@pytest.fixture
def policy() -> Iterator[None]:
    collector.install()
    yield
    gc.callbacks.remove(collector._freeze_survivors)
    gc.unfreeze()


class Cycle:
    def __init__(self) -> None:
        self.me = self


def test_what_survives_a_full_collection_is_frozen_out_of_the_next(policy: None) -> None:
    kept = [Cycle() for _ in range(1000)]
    frozen_before = gc.get_freeze_count()
    gc.collect()
    assert gc.get_freeze_count() >= frozen_before + len(kept)


def test_the_nightly_sweep_reclaims_cycles_that_died_frozen(policy: None) -> None:
    garbage = [Cycle() for _ in range(1000)]
    gc.collect()
    del garbage
    assert gc.collect() == 0  # frozen: out of reach of the ordinary passes
    before = gc.get_freeze_count()
    collector.sweep()
    assert gc.get_freeze_count() <= before - 1000


def test_the_sweep_is_due_at_the_next_rollover_hour() -> None:
    evening = datetime(2026, 12, 1, 22, 30, tzinfo=SHANGHAI)
    assert collector.seconds_until(3, SHANGHAI, evening) == 4.5 * 3600
    early = datetime(2026, 12, 1, 2, 0, tzinfo=SHANGHAI)
    assert collector.seconds_until(3, SHANGHAI, early) == 3600
