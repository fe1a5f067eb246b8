"""A short seeded sweep of byte-level mutations over the files the embed
wheel reads (issue 10, item 7): every mutated file gives a clean
``RuVectorError`` or an embedder whose vectors are finite; anything else
(``PanicException``, another exception, a crash) fails the test.

The targets and mutations are those of ``tests/fuzz/fuzz_embed.py`` (the
fuzzing harness); see there for the folders they use. Counts are kept small
so the sweep takes seconds; a fuzzer runs the same targets for longer.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "fuzz"))

import fuzz_embed


@pytest.mark.parametrize(
    ("target", "count"),
    [
        # The real MiniLM tokenizer.json (on a tiny checkpoint of the same
        # vocabulary, so that an accepted file loads in milliseconds).
        ("tokenizer.json", 200),
        # The real MiniLM safetensors header, over a data section of its size.
        ("model.safetensors.header", 200),
        # The real MiniLM config.json re-dimensioned to the tiny checkpoint,
        # and a few mutations of it as it is, on the real weights.
        ("tiny-config.json", 200),
        ("config.json", 20),
        ("sentence_bert_config.json", 50),
        ("modules.json", 50),
        ("1_Pooling/config.json", 50),
        ("model.safetensors", 50),
        ("image.safetensors.header", 50),
    ],
)
def test_mutated_files_give_clean_errors_or_finite_vectors(target: str, count: int) -> None:
    outcome = fuzz_embed.sweep(target, count, seed=20240611)
    assert outcome["refused"] + outcome["accepted"] == count
    # The sweep reaches the checks: most mutations are refused.
    assert outcome["refused"] > 0


def test_seeds_load() -> None:
    """Every target accepts its own seed (the sweep starts from working files)."""
    for name, target in fuzz_embed.targets().items():
        before = fuzz_embed.STATS["accepted"]
        target(fuzz_embed.seeds()[name])
        assert fuzz_embed.STATS["accepted"] == before + 1, name
