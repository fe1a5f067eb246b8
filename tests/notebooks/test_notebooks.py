"""The notebooks in docs/notebooks run top to bottom against the installed
wheels (a real ``python3`` kernel via nbclient) and give the right answers.

Each notebook's last cell asserts its own expectations and prints a JSON
summary; the tests check that summary too, so a notebook that still runs
but whose checks were weakened or removed fails here.
"""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path
from typing import Any, Dict

import nbformat
import pytest
from nbclient import NotebookClient

NOTEBOOKS = Path(__file__).resolve().parents[2] / "docs" / "notebooks"
#: Generous per-cell bound (a cold model load on a busy 2-core machine); a hang fails, it does not block.
CELL_TIMEOUT = 120

EXPECTED: Dict[str, Dict[str, Any]] = {
    "01_rag_in_3_lines": {"count": 8, "roses_top": 5, "reopen_same": True},
    "02_warm_restart_with_witness": {"installed": 2000, "witness_matches": True, "top": 10042, "hits": 1, "primes": 0},
    "03_text_and_image_search": {
        "text_shape": [4, 384],
        "nearest": [1, 0, 3, 2],
        "image_shape": [3, 576],
        "image_top": "checker",
    },
    "04_dispatch_to_a_python_agent": {
        "task_state": "completed",
        "reply": "1: vectors\n2: travel\n3: far",
        "streamed": ["1: one", "2: two", "3: three", "4: four"],
        "final_state": "completed",
        "tasks": 2,
        "impostor_refused": True,
    },
    "05_from_one_machine_to_a_ray_cluster": {
        "same_as_one_index": True,
        "same_filtered": True,
        "reloaded_same": True,
        "recovered": True,
        "unavailable": [0],
        "embed_shape": [8, 384],
        "bitwise_equal": True,
        "top_two": [0, 1],
    },
}
#: Notebooks that need an extra installed (the ``tests`` nox session installs them all).
NEEDS: Dict[str, str] = {"05_from_one_machine_to_a_ray_cluster": "ray"}


def _read(path: Path) -> Any:
    return nbformat.read(path, as_version=4)  # type: ignore[no-untyped-call]


def _paths() -> list[Path]:
    return sorted(NOTEBOOKS.glob("*.ipynb"))


def test_every_notebook_has_expectations() -> None:
    assert sorted(p.stem for p in _paths()) == sorted(EXPECTED)


@pytest.mark.parametrize("path", _paths(), ids=lambda p: p.stem)
def test_notebook_is_stored_clean(path: Path) -> None:
    """Stored without outputs or execution counts (clean diffs, nothing stale)."""
    nb = _read(path)
    nbformat.validate(nb)
    assert nb.nbformat == 4 and nb.metadata["kernelspec"]["name"] == "python3"
    dirty = [cell.get("id") for cell in nb.cells if cell.cell_type == "code" and (cell.outputs or cell.execution_count)]
    assert dirty == []


def _summary(nb: Any) -> Dict[str, Any]:
    last = nb.cells[-1]
    text = "".join(out.get("text", "") for out in last.outputs if out.output_type == "stream")
    lines = [line for line in text.splitlines() if line.startswith("{")]
    assert lines, f"the last cell printed no JSON summary: {text!r}"
    return json.loads(lines[-1])  # type: ignore[no-any-return]


@pytest.fixture
def this_python_kernel(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Kernel ``python3`` is this interpreter (the venv with the wheels), even
    where a user or system kernelspec of that name points elsewhere:
    ``JUPYTER_PATH`` is searched first."""
    spec = tmp_path / "jupyter" / "kernels" / "python3"
    spec.mkdir(parents=True)
    argv = [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"]
    (spec / "kernel.json").write_text(json.dumps({"argv": argv, "display_name": "Python 3", "language": "python"}))
    monkeypatch.setenv("JUPYTER_PATH", str(tmp_path / "jupyter"))


@pytest.mark.parametrize("path", _paths(), ids=lambda p: p.stem)
@pytest.mark.usefixtures("this_python_kernel")
def test_notebook_runs_and_checks_itself(path: Path, tmp_path: Path) -> None:
    needs = NEEDS.get(path.stem)
    if needs is not None and importlib.util.find_spec(needs) is None:
        pytest.skip(f"{path.stem} needs {needs}: pip install 'ruvector[{needs}]'")
    nb = _read(path)
    client = NotebookClient(
        nb,
        timeout=CELL_TIMEOUT,
        kernel_name="python3",
        allow_errors=False,
        resources={"metadata": {"path": str(tmp_path)}},
    )
    client.execute()  # raises CellExecutionError naming the cell on any exception or failed assert
    summary = _summary(nb)
    for key, value in EXPECTED[path.stem].items():
        assert summary[key] == value, (key, summary)
    if path.stem == "01_rag_in_3_lines":
        assert summary["bread_top"] in (0, 7)  # the bread or the sourdough note
        assert summary["where"] in ("unsupported", [2, 6], [2, 3])
