"""The lake's thread pool size, set at runtime (the core's shared code)."""

from __future__ import annotations

import pytest

import ruvector_lake as rl


def test_the_thread_count_is_set_at_runtime_and_checked() -> None:
    before = rl.get_num_threads()
    try:
        rl.set_num_threads(2)
        assert rl.get_num_threads() == 2
        for bad in (0, 1025):
            with pytest.raises(rl.InvalidArgument, match=f"between 1 and 1024, got {bad}"):
                rl.set_num_threads(bad)
        assert rl.get_num_threads() == 2
    finally:
        rl.set_num_threads(before)
