"""memory/_minilm_onnx.py: the emitted encoder graph, and its opt-in int8 variant."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np
import onnx
import pytest

from memory._minilm_onnx import CONTRIB_DOMAIN, build_sentence_encoder
from memory.embeddings import LocalMiniLMEmbedder, create_embedder, find_local_weights
from tests.memory.minilm_reference import SENTENCES, reference_embedding

TEXTS = [
    *SENTENCES,
    "ok",
    "Remember that the quarterly budget review moved to Thursday afternoon. " * 5,
    "Mein Name ist Jonas; ich wohne in Aarhus und arbeite nachts als Krankenpfleger.",
]


@pytest.fixture(scope="module")
def model_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("models")


@pytest.fixture(scope="module")
def references() -> list[np.ndarray]:
    model_dir = find_local_weights()
    return [reference_embedding(model_dir, text) for text in TEXTS]


def test_graph_uses_gemm_with_bias_and_onnxruntime_exact_gelu() -> None:
    model = build_sentence_encoder(find_local_weights())
    ops = Counter((node.domain, node.op_type) for node in model.graph.node)
    assert ops[("", "Gemm")] == 6 * 6  # q, k, v, attention out, intermediate, output per layer
    assert ops[(CONTRIB_DOMAIN, "Gelu")] == 6
    # Measured slower or inexact here: no erf pattern left, no tanh approximation, no fused
    # attention or skip layer norm.
    for absent in ("Erf", "FastGelu", "Attention", "SkipLayerNormalization"):
        assert all(node.op_type != absent for node in model.graph.node), absent
    assert all(node.name for node in model.graph.node)
    contrib_outputs = {o for n in model.graph.node if n.domain for o in n.output}
    assert contrib_outputs <= {info.name for info in model.graph.value_info}
    onnx.checker.check_model(model)


def test_padded_batches_of_the_graph_match_the_float64_reference(
    model_cache: Path, references: list[np.ndarray]
) -> None:
    # One batch for all texts: every short text is padded to the long one's length.
    embedder = LocalMiniLMEmbedder(model_cache, batch_size=len(TEXTS), threads=1)
    vectors = embedder.embed(TEXTS)
    for text, vector, expected in zip(TEXTS, vectors, references, strict=True):
        assert float(expected @ vector) >= 0.99999, text
        np.testing.assert_allclose(vector, expected, atol=1e-4, err_msg=text)


def test_int8_variant_is_opt_in_with_its_own_id_graph_and_vectors(
    model_cache: Path, references: list[np.ndarray]
) -> None:
    float_embedder = LocalMiniLMEmbedder(model_cache)
    embedder = create_embedder("local:all-MiniLM-L6-v2-int8", cache_dir=model_cache)
    assert isinstance(embedder, LocalMiniLMEmbedder)
    assert embedder.model_id == "local:all-MiniLM-L6-v2-int8"
    assert float_embedder.model_id == "local:all-MiniLM-L6-v2"

    vectors = embedder.embed(TEXTS)
    float_vectors = float_embedder.embed(TEXTS)
    assert embedder.graph_path is not None and embedder.graph_path.name.endswith(".int8.onnx")
    assert float_embedder.graph_path != embedder.graph_path
    ops = Counter(node.op_type for node in onnx.load(str(embedder.graph_path)).graph.node)
    assert ops["MatMulInteger"] == 36 and ops["Gemm"] == 0

    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    cosines = np.array([float(e @ v) for e, v in zip(references, vectors, strict=True)])
    assert cosines.min() >= 0.95  # close to the model, not equal: never the default
    assert np.abs(vectors - float_vectors).max() > 1e-3
    # Activations are quantised per batch, so each text runs alone: its vector does not
    # depend on what it is embedded with. The quantised graph is cached and reused.
    again = LocalMiniLMEmbedder(model_cache, quantized=True, batch_size=32)
    np.testing.assert_allclose(again.embed(TEXTS[-1:]), vectors[-1:], atol=1e-6)
    np.testing.assert_allclose(again.embed(TEXTS[::-1]), vectors[::-1], atol=1e-6)
    assert again.graph_path == embedder.graph_path
