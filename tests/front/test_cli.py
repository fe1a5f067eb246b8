"""The ``ruvector`` console script, run as a shell user would: exit codes,
--json output, 0.1.4's commands and options, text add/query, embed."""

from __future__ import annotations

import json
import os
import pathlib
import shutil
import subprocess
import sys
from typing import Any, List

import numpy as np
import pytest
from front_helpers import HAS_FILTER, needs_minilm

DATA = pathlib.Path(__file__).parent / "data"
RUVECTOR = shutil.which("ruvector") or ""


def run(*args: str, cwd: pathlib.Path, ok: bool = True) -> subprocess.CompletedProcess[str]:
    command: List[str] = [RUVECTOR] if RUVECTOR else [sys.executable, "-m", "ruvector"]
    proc = subprocess.run([*command, *args], cwd=cwd, capture_output=True, text=True, timeout=300)
    if ok:
        assert proc.returncode == 0, proc.stderr
    return proc


def run_json(*args: str, cwd: pathlib.Path) -> Any:
    return json.loads(run(*args, "--json", cwd=cwd).stdout)


def test_console_script_is_installed() -> None:
    assert RUVECTOR, "the ruvector console script is not on PATH"


def test_help_on_every_command(tmp_path: pathlib.Path) -> None:
    top = run("--help", cwd=tmp_path).stdout
    commands = ["create", "insert-batch", "search", "delete", "export", "import", "info", "benchmark", "serve"]
    commands += ["add", "query", "get", "embed"]
    for name in commands:
        assert name in top
        assert f"usage: ruvector {name}" in run(name, "--help", cwd=tmp_path).stdout


def test_help_loads_no_numpy_and_no_component(tmp_path: pathlib.Path) -> None:
    code = (
        "import sys, runpy\nsys.argv = ['ruvector', '--help']\n"
        "try:\n    runpy.run_module('ruvector', run_name='__main__')\nexcept SystemExit:\n    pass\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('numpy', 'ruvector_rabitq', 'ruvector_embed')))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=tmp_path)
    assert out.stdout.strip().splitlines()[-1] == "[]"


def test_014_workflow(tmp_path: pathlib.Path) -> None:
    vectors = np.random.default_rng(0).standard_normal((50, 8)).astype(np.float32)
    np.save(tmp_path / "vecs.npy", vectors)
    np.save(tmp_path / "q.npy", vectors[7])
    (tmp_path / "meta.json").write_text(json.dumps([{"cat": "news" if i % 2 else "sport"} for i in range(50)]))
    created = run_json("create", "--path", "my.rbpx", "--dim", "8", "--embedder", "none", cwd=tmp_path)
    assert created["dim"] == 8 and created["count"] == 0
    inserted = run_json(
        "insert-batch", "--path", "my.rbpx", "--vectors", "vecs.npy", "--metadata", "meta.json", cwd=tmp_path
    )
    assert inserted == {"ids": list(range(50)), "count": 50}
    hits = run_json("search", "--path", "my.rbpx", "--query", "q.npy", "-k", "3", cwd=tmp_path)
    assert hits[0]["id"] == 7 and hits[0]["metadata"] == {"cat": "news"} and hits[0]["score"] < 1e-5
    table = run("search", "--path", "my.rbpx", "--query", "q.npy", "-k", "3", "--no-color", cwd=tmp_path).stdout
    assert "score" in table and '{"cat": "news"}' in table
    deleted = run_json("delete", "--path", "my.rbpx", "--id", "7", "--id", "8", "--id", "999", "--vacuum", cwd=tmp_path)
    assert deleted == {"deleted": 2, "count": 48, "missing": [999], "vacuumed": 0}
    assert run_json("info", "--path", "my.rbpx", cwd=tmp_path)["count"] == 48
    exported = run_json("export", "--path", "my.rbpx", "--out", "snap", cwd=tmp_path)
    assert exported["exported"] == 48
    assert np.load(tmp_path / "snap.npy").shape == (48, 8)
    imported = run_json("import", "--path", "copy", "--vectors", "snap.npy", "--docs", "snap.docs.jsonl", cwd=tmp_path)
    assert imported["count"] == 48
    got = run_json("get", "--path", "copy", "--id", "9", cwd=tmp_path)
    assert got == [{"id": 9, "text": None, "metadata": {"cat": "news"}}]
    if HAS_FILTER:
        hits = run_json("search", "--path", "copy", "--query", "q.npy", "--filter", '{"cat": "sport"}', cwd=tmp_path)
        assert all(h["metadata"] == {"cat": "sport"} for h in hits)


def test_014_file_pairs_are_read_and_written_back(tmp_path: pathlib.Path) -> None:
    for f in DATA.glob("v014_hnsw.bin*"):
        shutil.copy(f, tmp_path / f.name)
    assert run_json("info", "--path", "v014_hnsw.bin", cwd=tmp_path)["count"] == 39
    run("delete", "--path", "v014_hnsw.bin", "--id", "4", cwd=tmp_path)
    assert run_json("info", "--path", "v014_hnsw.bin", cwd=tmp_path)["count"] == 38
    sidecar = json.loads((tmp_path / "v014_hnsw.bin.meta.json").read_text())
    assert 4 not in sidecar["ids"] and sidecar["backend"] == "hnsw"


@pytest.mark.parametrize(
    "args, code, message",
    [
        (["info", "--path", "nowhere"], 1, "no collection"),
        (["search", "--path", "nowhere"], 2, "required: --query"),
        (["frobnicate"], 2, "invalid choice"),
        (["delete", "--path", "c", "--where", "{oops"], 2, "not valid JSON"),
        (["create", "--path", "c", "--metric", "hamming"], 2, "invalid choice"),
        ([], 2, "usage"),
    ],
)
def test_exit_codes_and_messages(tmp_path: pathlib.Path, args: List[str], code: int, message: str) -> None:
    proc = run(*args, cwd=tmp_path, ok=False)
    assert proc.returncode == code
    assert message in proc.stderr + proc.stdout


def test_create_twice_fails_cleanly(tmp_path: pathlib.Path) -> None:
    run("create", "--path", "c", "--dim", "4", "--embedder", "none", cwd=tmp_path)
    proc = run("create", "--path", "c", "--dim", "4", cwd=tmp_path, ok=False)
    assert proc.returncode == 1 and "already exists" in proc.stderr and proc.stdout == ""


def test_benchmark_json(tmp_path: pathlib.Path) -> None:
    result = run_json("benchmark", "-n", "2000", "--dim", "16", "--queries", "20", cwd=tmp_path)
    assert result["recall_at_10"] == 1.0 and result["index"] == "FlatF32Index" and result["p50_ms"] > 0


def test_missing_component_exit_code(tmp_path: pathlib.Path) -> None:
    blocker = tmp_path / "sitecustomize.py"
    blocker.write_text(
        "import sys\nclass B:\n    def find_spec(self, name, path=None, target=None):\n"
        "        if name.split('.')[0] == 'ruvector_embed':\n"
        "            raise ModuleNotFoundError(f'No module named {name!r}', name=name)\n"
        "sys.meta_path.insert(0, B())\n"
    )
    env = dict(os.environ, PYTHONPATH=str(tmp_path))
    proc = subprocess.run(
        [sys.executable, "-m", "ruvector", "embed", "hello"], capture_output=True, text=True, env=env, cwd=tmp_path
    )
    assert proc.returncode == 3 and "pip install 'ruvector[embed]'" in proc.stderr


@needs_minilm
def test_text_add_query_embed(tmp_path: pathlib.Path) -> None:
    (tmp_path / "docs.txt").write_text("Knead the dough, then bake the loaf.\nRates rose by a quarter point.\n")
    added = run_json("add", "--path", "kb", "--file", "docs.txt", "--metadata", '{"src": "txt"}', cwd=tmp_path)
    assert added == {"ids": [0, 1], "count": 2}
    run("add", "--path", "kb", "The striker scored twice.", cwd=tmp_path)
    hits = run_json("query", "--path", "kb", "how do I bake bread?", "-k", "2", cwd=tmp_path)
    assert hits[0]["id"] == 0 and hits[0]["text"].startswith("Knead") and hits[0]["metadata"] == {"src": "txt"}
    text = run("query", "--path", "kb", "football", "-k", "1", cwd=tmp_path).stdout
    assert "The striker scored twice." in text
    embedded = run_json("embed", "hello world", cwd=tmp_path)
    assert embedded["dim"] == 384 and len(embedded["vectors"]) == 1
    run("embed", "a", "b", "--out", "e.npy", cwd=tmp_path)
    assert np.load(tmp_path / "e.npy").shape == (2, 384)
