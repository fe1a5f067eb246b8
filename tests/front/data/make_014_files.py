"""Writes the ruvector 0.1.4 collection files the compatibility tests read.

Run with ruvector 0.1.4 itself on the path (not this repo's ruvector):

    pip download --no-deps ruvector==0.1.4 && unzip ruvector-0.1.4-*.whl -d /tmp/r014
    PYTHONPATH=/tmp/r014 python tests/front/data/make_014_files.py tests/front/data
"""

import json
import sys
from pathlib import Path

import numpy as np

from ruvector import Collection, RabitqIndex

out = Path(sys.argv[1])
vectors = np.random.default_rng(14).standard_normal((40, 8)).astype(np.float32)
metadatas = [{"i": i, "even": i % 2 == 0, "tag": f"t{i % 3}"} for i in range(40)]

hnsw = Collection.from_vectors(vectors, metadatas=metadatas)  # 0.1.4's default backend
hnsw.delete(5)
hnsw.save(out / "v014_hnsw.bin")

rabitq = Collection.from_vectors(vectors, metadatas=metadatas, backend="rabitq", rerank_factor=40)
rabitq.delete(7)  # a tombstone
rabitq.save(out / "v014_rabitq.rbpx")

RabitqIndex.build(vectors, rerank_factor=20, seed=42).save(str(out / "v014_index.rbpx"))

# What 0.1.4 answered, for the tests to compare with.
queries = vectors[:4] + 0.01
expected = {
    "hnsw": [[h.id for h in hnsw.search(q, 5)] for q in queries],
    "rabitq": [[h.id for h in rabitq.search(q, 5)] for q in queries],
    "rabitq_filtered": [[h.id for h in rabitq.search(q, 5, filter={"even": True})] for q in queries],
}
np.save(out / "v014_queries.npy", queries)
(out / "v014_expected.json").write_text(json.dumps(expected))
