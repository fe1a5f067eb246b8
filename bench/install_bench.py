#!/usr/bin/env python3
"""Gate G3: install and import times of each RuVector distribution.

For each component (``ruvector-rabitq``, ``-lake``, ``-embed``, ``-a2a``),
the meta package ``ruvector`` alone and ``ruvector[all]``: a fresh virtualenv
(stdlib ``venv`` with pip, as a user has), NumPy installed first and not
timed, then ``pip install <name>`` timed from a local wheelhouse (the wheels
of ``--wheels-dir`` plus NumPy's: ``--no-index``, so network and PyPI do not
enter the numbers). Also ``uv pip install`` of the same, where ``uv`` is on
PATH, the installed size (NumPy excluded) and the time of a first
``import`` in a fresh interpreter (NumPy's own import included where the
module loads it, and NumPy alone for reference). Each time is the median of
``--repeats`` fresh virtualenvs. The gate: ``pip install ruvector`` within
10 s; the aim: within 3 s per component, NumPy excluded.

    python bench/install_bench.py --wheels-dir dist --out bench/results-install.md
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import venv
from datetime import datetime, timezone
from pathlib import Path
from typing import Dict, List, Tuple

#: (what is installed, the module imported afterwards)
TARGETS: List[Tuple[str, str]] = [
    ("ruvector-rabitq", "ruvector_rabitq"),
    ("ruvector-lake", "ruvector_lake"),
    ("ruvector-embed", "ruvector_embed"),
    ("ruvector-a2a", "ruvector_a2a"),
    ("ruvector", "ruvector"),
    ("ruvector[all]", "ruvector"),
]
GATE_S = 10.0
AIM_S = 3.0


def _env() -> Dict[str, str]:
    return {**os.environ, "PIP_DISABLE_PIP_VERSION_CHECK": "1", "PIP_NO_INPUT": "1"}


def _run(cmd: List[str]) -> float:
    start = time.perf_counter()
    done = subprocess.run(cmd, capture_output=True, text=True, env=_env(), check=False)
    elapsed = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"{cmd} exited {done.returncode}:\n{done.stdout}\n{done.stderr}")
    return elapsed


def _python(root: Path) -> str:
    return str(root / ("Scripts/python.exe" if os.name == "nt" else "bin/python"))


def _site_size(root: Path) -> int:
    out = subprocess.run(
        [_python(root), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    return sum(f.stat().st_size for f in Path(out).rglob("*") if f.is_file())


def _import_time(python: str, module: str) -> float:
    code = f"import time; t = time.perf_counter(); import {module}; print(time.perf_counter() - t)"
    out = subprocess.run([python, "-c", code], capture_output=True, text=True, check=True).stdout
    return float(out.strip())


def _wheelhouse(wheels_dir: Path, work: Path) -> Path:
    house = work / "wheelhouse"
    house.mkdir()
    for wheel in wheels_dir.glob("*.whl"):
        shutil.copy(wheel, house)
    import numpy

    tool = work / "tool"
    venv.EnvBuilder(with_pip=True).create(tool)
    spec = f"numpy=={numpy.__version__}"
    _run([_python(tool), "-m", "pip", "download", "-q", "--only-binary", ":all:", "--no-deps", "-d", str(house), spec])
    return house


def measure(house: Path, work: Path, target: str, module: str, repeats: int) -> Dict[str, float]:
    local = ["--no-index", "--find-links", str(house)]
    pip_s: List[float] = []
    uv_s: List[float] = []
    imports: List[float] = []
    numpy_imports: List[float] = []
    size = 0
    uv = shutil.which("uv")
    for i in range(repeats):
        root = work / f"venv-{target}-{i}"
        venv.EnvBuilder(with_pip=True).create(root)
        py = _python(root)
        _run([py, "-m", "pip", "install", "-q", *local, "numpy"])
        before = _site_size(root)
        pip_s.append(_run([py, "-m", "pip", "install", "-q", *local, target]))
        size = _site_size(root) - before
        numpy_imports.append(_import_time(py, "numpy"))
        imports.append(_import_time(py, module))
        shutil.rmtree(root)
        if uv is not None:
            root = work / f"uv-{target}-{i}"
            _run([uv, "venv", "-q", "-p", sys.executable, str(root)])
            _run([uv, "pip", "install", "-q", "-p", _python(root), *local, "numpy"])
            uv_s.append(_run([uv, "pip", "install", "-q", "-p", _python(root), *local, target]))
            shutil.rmtree(root)
    return {
        "pip_s": statistics.median(pip_s),
        "uv_s": statistics.median(uv_s) if uv_s else float("nan"),
        "size_mib": size / (1 << 20),
        "import_s": statistics.median(imports),
        "numpy_import_s": statistics.median(numpy_imports),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--wheels-dir", type=Path, default=Path("dist"))
    parser.add_argument("--out", type=Path, default=Path("bench/results-install.md"))
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    if not list(args.wheels_dir.glob("*.whl")):
        raise SystemExit(f"no wheels in {args.wheels_dir}: run `nox -s build` first")
    rows: List[str] = []
    verdicts: List[str] = []
    with tempfile.TemporaryDirectory(prefix="ruvector-install-bench-") as tmp:
        work = Path(tmp)
        house = _wheelhouse(args.wheels_dir, work)
        for target, module in TARGETS:
            r = measure(house, work, target, module, args.repeats)
            limit = GATE_S if target.startswith("ruvector") and "-" not in target else AIM_S
            ok = r["pip_s"] <= limit
            verdicts.append(
                f"`pip install {target}` {r['pip_s']:.2f} s (limit {limit:.0f} s): {'ok' if ok else 'OVER'}"
            )
            rows.append(
                f"| `{target}` | {r['pip_s']:.2f} | {r['uv_s']:.2f} | {r['size_mib']:.2f} | "
                f"{r['import_s'] * 1000:.0f} | {r['numpy_import_s'] * 1000:.0f} |"
            )
            print(rows[-1], flush=True)
    when = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    report = "\n".join(
        [
            "# Install and import times (gate G3)",
            "",
            f"{when}; {platform.platform()}, {platform.machine()}, Python {platform.python_version()}, "
            f"{os.cpu_count()} CPUs; median of {args.repeats} fresh virtualenvs each; wheels from "
            f"`{args.wheels_dir}` and NumPy's wheel in a local wheelhouse (`--no-index`).",
            "",
            "NumPy is installed before the timed install and is in neither the times nor the sizes;",
            "`ruvector-common` (a dependency of everything) is in both. The import time is a first",
            "import in a fresh interpreter; the components that load NumPy include its import.",
            "",
            "| install | pip install (s) | uv pip install (s) | installed (MiB, no NumPy) "
            "| import (ms) | NumPy alone (ms) |",
            "|---|---:|---:|---:|---:|---:|",
            *rows,
            "",
            f"Gate G3: `pip install ruvector` within {GATE_S:.0f} s (meta package and `ruvector[all]`);",
            f"aim: each component within {AIM_S:.0f} s.",
            "",
            *(f"- {v}" for v in verdicts),
            "",
        ]
    )
    args.out.write_text(report, encoding="utf-8")
    print(report)


if __name__ == "__main__":
    main()
