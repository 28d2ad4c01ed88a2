"""Throughput of the offline embedder (all-MiniLM-L6-v2 on onnxruntime) against fixed padding.

* ours: ``memory.embeddings.LocalMiniLMEmbedder`` — texts sorted by length, each batch
  padded only to its longest member.
* baseline: the same ONNX graph and tokenizer with every input padded to 256 tokens,
  which is what chromadb's own ``ONNXMiniLM_L6_V2`` class does (it cannot run here at
  all: it downloads its model at run time).

The corpus is synthetic memory-like sentences (4-40 words, seeded), embedded in one
``embed`` call per repetition. Also printed: agreement of ours with the baseline (the
padding must not change vectors) and with the independent float64 numpy forward pass in
``tests/memory/minilm_reference.py``, and how much of the machine's CPU other processes
used meanwhile (figures on a shared machine are only comparable within one run).

    python -m benchmarks.embeddings [--texts 1000] [--batch-size 32] [--repeats 3]

It is a benchmark, not a test: it exits 0 whatever the figures are.
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np

from memory.embeddings import LocalMiniLMEmbedder, find_local_weights
from tests.memory.minilm_reference import reference_embedding

TARGET_PER_SECOND = 400
_WORDS = (
    "the user prefers tea over coffee and lives near the harbour works night shifts as a "
    "nurse likes hiking on weekends asked about the invoice from march project deadline "
    "moved to friday meeting with the design team budget report travel plans flight to "
    "berlin hotel booking family birthday present dentist appointment allergic to nuts "
    "daughter starts school in august wants reminders by email speaks danish and english"
).split()


def corpus(count: int, seed: int = 7) -> list[str]:
    rng = random.Random(seed)
    texts = []
    for _ in range(count):
        words = [rng.choice(_WORDS) for _ in range(rng.randint(4, 40))]
        texts.append(" ".join(words).capitalize() + ".")
    return texts


def _machine_busy() -> tuple[float, float]:
    """(busy, total) jiffies of the whole machine, from /proc/stat (0, 0 elsewhere)."""
    try:
        fields = [int(x) for x in Path("/proc/stat").read_text().split("\n")[0].split()[1:]]
    except OSError:
        return 0.0, 0.0
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)
    return float(sum(fields) - idle), float(sum(fields))


def fixed_padding_embed(embedder: LocalMiniLMEmbedder, texts: list[str], batch: int) -> np.ndarray:
    """The baseline: the same graph, every input padded to 256 tokens."""
    session, tokenizer = embedder._load()
    rows = []
    for start in range(0, len(texts), batch):
        encodings = tokenizer.encode_batch(texts[start : start + batch])
        ids = np.zeros((len(encodings), 256), dtype=np.int64)
        mask = np.zeros_like(ids)
        for row, encoding in enumerate(encodings):
            ids[row, : len(encoding.ids)] = encoding.ids
            mask[row, : len(encoding.ids)] = 1
        rows.append(session.run(None, {"input_ids": ids, "attention_mask": mask})[0])
    return np.concatenate(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--texts", type=int, default=1000)
    parser.add_argument("--baseline-texts", type=int, default=128)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()

    texts = corpus(args.texts)
    with tempfile.TemporaryDirectory() as cache:
        embedder = LocalMiniLMEmbedder(Path(cache), batch_size=args.batch_size)
        started = time.perf_counter()
        embedder.embed(["first use builds and caches the ONNX graph"])
        first_use = time.perf_counter() - started
        cached = LocalMiniLMEmbedder(Path(cache), batch_size=args.batch_size)
        started = time.perf_counter()
        cached.embed(["second use loads the cached graph"])
        cached_use = time.perf_counter() - started
        _, tokenizer = embedder._load()
        tokens = [len(e.ids) for e in tokenizer.encode_batch(texts)]

        ours, baseline, ours_cpu = [], [], []
        busy0, total0 = _machine_busy()
        cpu0 = sum(os.times()[:2])
        for _ in range(args.repeats):
            started, cpu_started = time.perf_counter(), time.process_time()
            vectors = embedder.embed(texts)
            ours.append(len(texts) / (time.perf_counter() - started))
            ours_cpu.append(len(texts) / (time.process_time() - cpu_started))
            sample = texts[: args.baseline_texts]
            started = time.perf_counter()
            padded = fixed_padding_embed(embedder, sample, args.batch_size)
            baseline.append(len(sample) / (time.perf_counter() - started))
        busy1, total1 = _machine_busy()
        own_cpu = sum(os.times()[:2]) - cpu0
        ticks = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100

        agreement = float(np.min(np.sum(vectors[: len(padded)] * padded, axis=1)))
        model_dir = find_local_weights()
        reference = [reference_embedding(model_dir, text) for text in texts[:5]]
        against_reference = min(
            float(ref @ vec) for ref, vec in zip(reference, vectors[:5], strict=True)
        )

    ours_p50, baseline_p50 = statistics.median(ours), statistics.median(baseline)
    print("# offline embeddings: all-MiniLM-L6-v2 on onnxruntime, no torch")
    print(f"onnxruntime threads: default; cores: {os.cpu_count()}; batch size {args.batch_size}")
    print(
        f"corpus: {len(texts)} texts, tokens/text median {statistics.median(tokens):.0f}, "
        f"max {max(tokens)}"
    )
    print(f"first use (hash weights, build + cache ONNX graph, load): {first_use:.2f} s")
    print(f"later use (hash weights, load cached graph):             {cached_use:.2f} s")
    print(f"ours, per-batch padding:     {ours_p50:8.0f} embeddings/s (median of {args.repeats})")
    print(f"baseline, pad to 256 tokens: {baseline_p50:8.0f} embeddings/s")
    print(f"ratio ours / baseline:       {ours_p50 / baseline_p50:8.1f}x")
    per_cpu = statistics.median(ours_cpu)
    print(
        f"ours per CPU-second of this process: {per_cpu:.0f} embeddings "
        "(robust to other load; an idle machine gives at most this x cores)"
    )
    verdict = "met" if ours_p50 >= TARGET_PER_SECOND else "NOT met"
    print(f"target >= {TARGET_PER_SECOND}/s: {verdict}")
    print(f"min cosine ours vs pad-256 baseline:        {agreement:.7f}")
    print(f"min cosine ours vs float64 numpy reference: {against_reference:.7f}")
    if total1 > total0:
        machine = (busy1 - busy0) / (total1 - total0) * (os.cpu_count() or 1)
        others = max(0.0, machine - own_cpu * ticks / (total1 - total0) * (os.cpu_count() or 1))
        print(f"CPU used meanwhile by other processes: {others:.2f} of {os.cpu_count()} cores")


if __name__ == "__main__":
    main()
