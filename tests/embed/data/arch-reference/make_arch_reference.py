# type: ignore
"""Builds the small random-weight XLM-RoBERTa and MPNet models of
``test_embed_architectures.py`` and their reference embeddings.

Needs PyTorch, ``transformers``, ``tokenizers``, ``sentencepiece`` and
``protobuf`` (the tests do not):

    python tests/embed/data/arch-reference/make_arch_reference.py [FOLDER ...]

(no FOLDER: all of them; ``xlm-roberta`` and ``bert-unigram`` share one
tokenizer, so they are rebuilt together).

For each architecture (and for BERT with a Unigram vocabulary, the shape of
paraphrase-multilingual-MiniLM-L12-v2 and multilingual-e5-small) it trains a tiny tokenizer of the model's kind on the
sentences below (XLM-RoBERTa: SentencePiece Unigram with the ``nmt_nfkc``
character map, as the real one;
MPNet: lower-casing WordPiece with ``<s> … </s>``; RoBERTa: byte-level BPE
with ``RobertaProcessing``, as roberta-base and the sentence models built on
it ship), builds the transformers
model from a small config with seeded random weights (scaled up from the
default initialisation so that every tensor moves the output), and writes a
sentence-transformers folder (``config.json``, ``model.safetensors``,
``tokenizer.json``, ``modules.json``, ``1_Pooling/config.json``,
``sentence_bert_config.json``) next to ``reference.npz``: the token ids and
the mean- and CLS-pooled, unnormalised embeddings of every sentence,
computed by transformers one sentence at a time.

Tokenizer training is not reproducible bit for bit (the trainers break ties
in hash order), so a rerun rewrites every file of each folder together; the
weights are seeded and do not change.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Any, Dict, List

import numpy as np
import torch
from tokenizers import Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers
from transformers import (
    BertConfig,
    BertModel,
    MPNetConfig,
    MPNetModel,
    RobertaConfig,
    RobertaModel,
    XLMRobertaConfig,
    XLMRobertaModel,
)

HERE = Path(__file__).parent
#: Every reference encoder's size: real vocabularies and tokenizers, tiny
#: layers (the check is the architecture, not the scale).
SMALL_ENCODER: Dict[str, int] = {
    "hidden_size": 32,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
    "intermediate_size": 64,
}
#: XLM-RoBERTa's and RoBERTa's shared settings: positions after the padding
#: id, one token type, 128 tokens.
ROBERTA_SHAPE: Dict[str, Any] = {
    **SMALL_ENCODER,
    "max_position_embeddings": 130,
    "type_vocab_size": 1,
    "pad_token_id": 1,
    "bos_token_id": 0,
    "eos_token_id": 2,
    "layer_norm_eps": 1e-5,
}
SEED = 20261203

#: Training text and test sentences (several scripts, for the multilingual model).
SENTENCES: List[str] = [
    "The quick brown fox jumps over the lazy dog.",
    "A vector database stores embeddings next to their documents.",
    "Der schnelle braune Fuchs springt über den faulen Hund.",
    "Le renard brun rapide saute par-dessus le chien paresseux.",
    "El zorro marrón rápido salta sobre el perro perezoso.",
    "Быстрая коричневая лиса прыгает через ленивую собаку.",
    "敏捷的棕色狐狸跳过了懒狗。",
    "Search engines rank documents by their similarity to a query.",
    "x",
    "Numbers like 3.14159 and 2026 appear in text, too!",
]
#: One long sentence: MPNet's relative positions reach past the last log bucket (128).
LONG = " ".join(SENTENCES[:8] * 5)
SPECIALS = ["<s>", "<pad>", "</s>", "<unk>"]


def xlmr_tokenizer() -> Tokenizer:
    """XLM-RoBERTa's tokenizer shape: a SentencePiece Unigram model trained
    with the ``nmt_nfkc`` rule, its precompiled character map as the
    normalizer (then runs of spaces collapsed), Metaspace, and fairseq's
    ids for the special tokens (``<s>`` 0, ``<pad>`` 1, ``</s>`` 2,
    ``<unk>`` 3), as transformers converts the real one."""
    import sentencepiece as spm
    from sentencepiece import sentencepiece_model_pb2

    with tempfile.TemporaryDirectory() as tmp:
        corpus = Path(tmp) / "corpus.txt"
        corpus.write_text("\n".join(SENTENCES * 4), encoding="utf-8")
        spm.SentencePieceTrainer.train(
            input=str(corpus),
            model_prefix=str(Path(tmp) / "sp"),
            vocab_size=150,
            model_type="unigram",
            normalization_rule_name="nmt_nfkc",
            hard_vocab_limit=False,
            minloglevel=2,
        )
        proto = sentencepiece_model_pb2.ModelProto()
        proto.ParseFromString((Path(tmp) / "sp.model").read_bytes())
    # SentencePiece's own <unk>, <s>, </s> come first; fairseq's four replace them.
    vocab = [(t, 0.0) for t in SPECIALS] + [(p.piece, p.score) for p in proto.pieces[3:]]
    tok = Tokenizer(models.Unigram(vocab, unk_id=3, byte_fallback=False))
    tok.normalizer = normalizers.Sequence(
        [
            normalizers.Precompiled(proto.normalizer_spec.precompiled_charsmap),
            normalizers.Replace(Regex(" {2,}"), " "),
        ]
    )
    tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement="\u2581", prepend_scheme="always", split=True)
    tok.decoder = decoders.Metaspace(replacement="\u2581", prepend_scheme="always", split=True)
    tok.post_processor = processors.TemplateProcessing(single="<s> $A </s>", special_tokens=[("<s>", 0), ("</s>", 2)])
    return tok


def mpnet_tokenizer() -> Tokenizer:
    # The WordPiece trainer breaks ties between equally frequent merges in no
    # fixed order, so a rerun may write another (equally valid) vocabulary and
    # hence other reference ids and outputs: the folder is only ever
    # rewritten whole, tokenizer and reference together.
    tok = Tokenizer(models.WordPiece(unk_token="<unk>"))
    tok.normalizer = normalizers.BertNormalizer(lowercase=True)
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tok.decoder = decoders.WordPiece()
    trainer = trainers.WordPieceTrainer(vocab_size=300, special_tokens=SPECIALS)
    tok.train_from_iterator(SENTENCES * 4, trainer)
    tok.post_processor = processors.TemplateProcessing(single="<s> $A </s>", special_tokens=[("<s>", 0), ("</s>", 2)])
    return tok


def roberta_tokenizer() -> Tokenizer:
    """RoBERTa's tokenizer shape: byte-level BPE (no normalizer, no unknown
    token: every byte has a symbol), ``<s>`` 0, ``<pad>`` 1, ``</s>`` 2,
    ``<unk>`` 3, and the ``RobertaProcessing`` post-processor."""
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=500,
        special_tokens=[*SPECIALS, "<mask>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )
    tok.train_from_iterator(SENTENCES * 4, trainer)
    tok.post_processor = processors.RobertaProcessing(
        ("</s>", 2), ("<s>", 0), trim_offsets=True, add_prefix_space=False
    )
    return tok


def scramble(model: torch.nn.Module) -> None:
    """Seeded random weights, large enough that every tensor matters."""
    gen = torch.Generator().manual_seed(SEED)
    with torch.no_grad():
        for name, p in sorted(model.named_parameters()):
            noise = torch.randn(p.shape, generator=gen)
            if "LayerNorm.weight" in name:
                p.copy_(1.0 + 0.2 * noise)
            elif "relative_attention_bias" in name:
                p.copy_(1.0 * noise)
            elif name.endswith(".bias") or "LayerNorm" in name:
                p.copy_(0.1 * noise)
            else:
                p.copy_(0.15 * noise)


def write_folder(out: Path, model: torch.nn.Module, tok: Tokenizer, pooling: str, max_seq_length: int) -> None:
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out, safe_serialization=True)
    tok.save(str(out / "tokenizer.json"))
    (out / "modules.json").write_text(
        json.dumps(
            [
                {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
                {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"},
                {"idx": 2, "name": "2", "path": "2_Normalize", "type": "sentence_transformers.models.Normalize"},
            ],
            indent=2,
        )
    )
    (out / "1_Pooling").mkdir(exist_ok=True)
    (out / "1_Pooling" / "config.json").write_text(
        json.dumps(
            {
                "word_embedding_dimension": model.config.hidden_size,
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


def reference(out: Path, model: torch.nn.Module, tok: Tokenizer, max_seq_length: int) -> Dict[str, Any]:
    tok.enable_truncation(max_seq_length)
    model.eval()
    texts = [*SENTENCES, LONG]
    ids: List[List[int]] = []
    mean, cls = [], []
    with torch.no_grad():
        for t in texts:
            enc = tok.encode(t.strip())
            ids.append(list(enc.ids))
            x = torch.tensor([enc.ids], dtype=torch.long)
            hidden = model(input_ids=x, attention_mask=torch.ones_like(x)).last_hidden_state[0]
            mean.append(hidden.mean(dim=0).numpy())
            cls.append(hidden[0].numpy())
    # A padded batch gives the same rows (the reference's own padding path).
    batch = [tok.encode(t.strip()).ids for t in texts[:4]]
    width = max(len(b) for b in batch)
    pad = [b + [1] * (width - len(b)) for b in batch]
    mask = [[1] * len(b) + [0] * (width - len(b)) for b in batch]
    with torch.no_grad():
        h = model(input_ids=torch.tensor(pad), attention_mask=torch.tensor(mask)).last_hidden_state
    for k in range(len(batch)):
        np.testing.assert_allclose(h[k, 0].numpy(), cls[k], atol=1e-5)
    np.savez(
        out / "reference.npz",
        mean=np.stack(mean).astype(np.float32),
        cls=np.stack(cls).astype(np.float32),
    )
    meta = {"texts": texts, "ids": ids, "max_seq_length": max_seq_length}
    (out / "reference.json").write_text(json.dumps(meta, ensure_ascii=False, indent=1))
    return meta


def write_reference(name: str, model: Any, tok: Tokenizer, max_len: int) -> Dict[str, Any]:
    """Scrambles ``model``, writes it as the folder ``name`` (mean pooling,
    ``max_len`` tokens) and its reference outputs; returns the metadata."""
    scramble(model)
    out = HERE / name
    write_folder(out, model, tok, "mean", max_len)
    return reference(out, model, tok, max_len)


def build_xlmr() -> None:
    """``xlm-roberta`` and ``bert-unigram`` (one tokenizer for both)."""
    xtok = xlmr_tokenizer()
    xcfg = XLMRobertaConfig(
        vocab_size=xtok.get_vocab_size(),
        **ROBERTA_SHAPE,
    )
    write_reference("xlm-roberta", XLMRobertaModel(xcfg, add_pooling_layer=False), xtok, 128)

    # BERT layers with XLM-RoBERTa's kind of tokenizer: absolute positions
    # from 0 even though <pad> is token 1.
    bcfg = BertConfig(
        vocab_size=xtok.get_vocab_size(),
        **SMALL_ENCODER,
        max_position_embeddings=128,
        type_vocab_size=2,
        pad_token_id=0,
        layer_norm_eps=1e-12,
    )
    write_reference("bert-unigram", BertModel(bcfg, add_pooling_layer=False), xtok, 128)


def build_mpnet() -> None:
    mtok = mpnet_tokenizer()
    mcfg = MPNetConfig(
        vocab_size=mtok.get_vocab_size(),
        **SMALL_ENCODER,
        max_position_embeddings=322,
        relative_attention_num_buckets=32,
        layer_norm_eps=1e-5,
    )
    meta = write_reference("mpnet", MPNetModel(mcfg, add_pooling_layer=False), mtok, 320)
    longest = max(len(i) for i in meta["ids"])
    assert longest > 200, f"the long text gives only {longest} tokens"


def build_roberta() -> None:
    """RoBERTa (roberta-base's shape in small: the sentence models built on
    it, such as all-distilroberta-v1, have config.json model_type
    "roberta" and a byte-level BPE tokenizer)."""
    rtok = roberta_tokenizer()
    rcfg = RobertaConfig(
        vocab_size=rtok.get_vocab_size(),
        **ROBERTA_SHAPE,
    )
    meta = write_reference("roberta", RobertaModel(rcfg, add_pooling_layer=False), rtok, 128)
    assert len(meta["ids"][-1]) == 128, "the long text must be truncated"


BUILDERS = {"xlm-roberta": build_xlmr, "bert-unigram": build_xlmr, "mpnet": build_mpnet, "roberta": build_roberta}


def main(folders: List[str]) -> None:
    torch.manual_seed(SEED)
    done = set()
    for name in folders or list(BUILDERS):
        build = BUILDERS[name]
        if build not in done:
            done.add(build)
            build()


if __name__ == "__main__":
    import sys

    main(sys.argv[1:])
