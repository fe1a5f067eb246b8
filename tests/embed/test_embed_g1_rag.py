"""Gate G1 end to end: embed a small labelled corpus, index it with
``ruvector_rabitq.RabitqPlusIndex``, query it, and check that semantically
close texts rank first."""

from __future__ import annotations

from typing import Dict, List, Tuple

import numpy as np

import ruvector_embed as rve
import ruvector_rabitq as rr

CORPUS: Dict[str, List[str]] = {
    "cooking": [
        "Knead the dough for ten minutes, then let it rise until doubled.",
        "Simmer the tomato sauce slowly with garlic and fresh basil.",
        "Preheat the oven to 220 degrees before baking the loaf.",
        "A sourdough starter needs flour and water fed every day.",
    ],
    "finance": [
        "The central bank raised interest rates by a quarter point.",
        "Shares of the company fell after weak quarterly earnings.",
        "Bond yields climbed as investors expected higher inflation.",
        "Diversifying a portfolio reduces the risk of large losses.",
    ],
    "space": [
        "The telescope captured images of a distant spiral galaxy.",
        "Astronauts docked with the space station after a two-day flight.",
        "The rover collected rock samples from the Martian crater.",
        "A rocket launch was delayed because of high winds at the pad.",
    ],
    "pets": [
        "My dog loves chasing the ball in the park every morning.",
        "Cats often sleep for more than twelve hours a day.",
        "The puppy was vaccinated at the veterinary clinic.",
        "Our kitten knocked the glass off the kitchen table.",
    ],
    "programming": [
        "The function returns a list of the ten nearest neighbours.",
        "Fix the null pointer exception in the request handler.",
        "Compile the Rust crate in release mode for better speed.",
        "Unit tests caught a regression in the parser module.",
    ],
}

QUERIES: List[Tuple[str, str]] = [
    ("How long should bread proof before it goes in the oven?", "cooking"),
    ("What happens to stocks when rates go up?", "finance"),
    ("Photos of galaxies from a space telescope", "space"),
    ("my cat sleeps all day", "pets"),
    ("fixing a bug in my program", "programming"),
    ("recipe for pasta sauce", "cooking"),
    ("mission to Mars", "space"),
    ("taking the dog to the vet", "pets"),
]


def test_semantically_close_texts_rank_first(minilm: rve.Embedder) -> None:
    texts = [t for topic in CORPUS.values() for t in topic]
    labels = [name for name, topic in CORPUS.items() for _ in topic]

    index = rr.RabitqPlusIndex.build(minilm.embed_batch(texts), seed=42, rerank_factor=20)
    hits = [index.search(minilm.embed(q), k=4) for q, _ in QUERIES]

    precision: List[float] = []
    for (query, topic), result in zip(QUERIES, hits):
        assert labels[result[0].id] == topic, f"{query!r} → {texts[result[0].id]!r}"
        precision.append(sum(labels[h.id] == topic for h in result) / len(result))
    assert sum(precision) / len(precision) >= 0.75

    # Batch search agrees with single searches.
    ids, _ = index.search_batch(minilm.embed_batch([q for q, _ in QUERIES]), k=1)
    assert [labels[i] for i in ids[:, 0]] == [t for _, t in QUERIES]


def test_unit_vectors_make_l2_rank_like_cosine(minilm: rve.Embedder) -> None:
    x = minilm.embed_batch([t for topic in CORPUS.values() for t in topic])
    q = minilm.embed("my cat sleeps all day")
    flat = rr.FlatF32Index.build(x)
    by_l2 = [h.id for h in flat.search(q, k=5)]
    by_cos = list(np.argsort(-(x @ q))[:5])
    assert by_l2 == by_cos
