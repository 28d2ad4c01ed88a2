"""Throughput of the offline embedder (all-MiniLM-L6-v2 on onnxruntime) against fixed padding.

* ours: ``memory.embeddings.LocalMiniLMEmbedder`` — texts sorted by length, each batch
  padded only to its longest member.
* baseline: the same ONNX graph and tokenizer with every input padded to 256 tokens,
  which is what chromadb's own ``ONNXMiniLM_L6_V2`` class does (it cannot run here at
  all: it downloads its model at run time).

The corpus is synthetic memory-like sentences (4-40 words by default, seeded), embedded
in one ``embed`` call per repetition; ours and the baseline are interleaved so both see
the same load. Each is reported per wall second and per CPU-second of this process
(``time.process_time``, all threads): on a shared machine the wall rate falls with other
jobs' load, while the per-CPU-second rate and the ratio to the baseline barely move.

The run is compute-bound, so the benchmark also measures this machine's float32
matrix-multiply rate per CPU-second (numpy) and prints the resulting ceiling for this
corpus: the encoder's dense layers cost ~21 MFLOP per token, so the attainable rate
depends on the texts' length (shorter texts, more per second; ``--max-words``).

Also printed: agreement of ours with the baseline (the padding must not change vectors)
and with the independent float64 numpy forward pass in ``tests/memory/minilm_reference.py``,
and how much of the machine's CPU other processes used meanwhile.

With ``--sentence-transformers`` the reference implementation runs on the same corpus
too: sentence-transformers on torch (CPU, its default threads), loading the same shipped
weights directory, in a subprocess from a venv the benchmark creates once and keeps
(``--st-venv``, default ``~/.cache/relaygraph-bench/sentence-transformers-venv``; pip
installs ``torch==2.13.0`` and ``sentence-transformers``, ~1.4 GB, about 90 s; any other
torch version would download a multi-GB CUDA build). It prints that rate, the ratio of
ours to it and the cosine between the two implementations' vectors: whether the target
is reachable on this corpus and machine by the reference implementation at all.

With ``--int8`` the opt-in int8 variant (``local:all-MiniLM-L6-v2-int8``: dense weights
quantised by onnxruntime, one text per run) is timed on the same corpus too, with its
cosine to our float vectors and to the numpy reference: faster, but different vectors.

    python -m benchmarks.embeddings [--texts 1000] [--min-words 4] [--max-words 40]
        [--batch-size 16] [--repeats 3] [--int8] [--sentence-transformers [--st-venv PATH]]

It is a benchmark, not a test: it exits 0 whatever the figures are.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from memory.embeddings import LocalMiniLMEmbedder, find_local_weights, session_options
from tests.memory.minilm_reference import reference_embedding

if TYPE_CHECKING:
    import onnxruntime

TARGET_PER_SECOND = 400
ST_REQUIREMENTS = ("torch==2.13.0", "sentence-transformers")
ST_VENV = Path.home() / ".cache" / "relaygraph-bench" / "sentence-transformers-venv"
# Run by the venv's python: argv model_dir texts.json vectors.npy batch repeats threads.
_ST_SCRIPT = """
import json, sys, time
import numpy as np, sentence_transformers, torch
from sentence_transformers import SentenceTransformer
model_dir, texts_path, vectors_path, batch, repeats, threads = sys.argv[1:7]
if int(threads):
    torch.set_num_threads(int(threads))
texts = json.loads(open(texts_path).read())
model = SentenceTransformer(model_dir, device="cpu", local_files_only=True)
model.encode(texts[:64], batch_size=int(batch))
walls, cpus = [], []
for _ in range(int(repeats)):
    wall, cpu = time.perf_counter(), time.process_time()
    vectors = model.encode(texts, batch_size=int(batch), convert_to_numpy=True)
    walls.append(len(texts) / (time.perf_counter() - wall))
    cpus.append(len(texts) / (time.process_time() - cpu))
np.save(vectors_path, np.asarray(vectors, dtype=np.float32))
print(json.dumps({"wall": walls, "cpu": cpus, "threads": torch.get_num_threads(),
    "versions": f"sentence-transformers {sentence_transformers.__version__}, "
    f"torch {torch.__version__}"}))
"""
_WORDS = (
    "the user prefers tea over coffee and lives near the harbour works night shifts as a "
    "nurse likes hiking on weekends asked about the invoice from march project deadline "
    "moved to friday meeting with the design team budget report travel plans flight to "
    "berlin hotel booking family birthday present dentist appointment allergic to nuts "
    "daughter starts school in august wants reminders by email speaks danish and english"
).split()


def corpus(count: int, seed: int = 7, *, min_words: int = 4, max_words: int = 40) -> list[str]:
    rng = random.Random(seed)
    texts = []
    for _ in range(count):
        words = [rng.choice(_WORDS) for _ in range(rng.randint(min_words, max_words))]
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


def chromadb_session(embedder: LocalMiniLMEmbedder) -> onnxruntime.InferenceSession:
    """Our graph in a session set up as chromadb's class sets up its own (onnxruntime's
    default threading: each operator split over the cores)."""
    import onnxruntime

    embedder._load()
    assert embedder.graph_path is not None
    options = onnxruntime.SessionOptions()
    options.log_severity_level = 3
    options.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_ENABLE_ALL
    return onnxruntime.InferenceSession(
        str(embedder.graph_path), options, providers=["CPUExecutionProvider"]
    )


def fixed_padding_embed(
    embedder: LocalMiniLMEmbedder,
    session: onnxruntime.InferenceSession,
    texts: list[str],
    batch: int,
) -> np.ndarray:
    """The baseline: the same graph, every input padded to 256 tokens, batch after batch."""
    _, tokenizer = embedder._load()
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


def _gemm_flop_per_cpu_second() -> float:
    """This machine's float32 matrix-multiply rate per CPU-second, on one onnxruntime thread.

    The encoder is almost all matrix multiplies of this shape ([tokens, 384] x [384, 1536]),
    so this is its ceiling. Best of several runs: other jobs only ever slow it down.
    """
    import onnxruntime
    from onnx import TensorProto, helper, numpy_helper

    rows, inner, cols = 832, 384, 1536
    weight = np.random.default_rng(1).random((inner, cols), dtype=np.float32)
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["x", "w"], ["y"])],
        "gemm",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [rows, inner])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [rows, cols])],
        [numpy_helper.from_array(weight, "w")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    session = onnxruntime.InferenceSession(
        model.SerializeToString(),
        session_options(),
        providers=["CPUExecutionProvider"],
    )
    x = np.random.default_rng(0).random((rows, inner), dtype=np.float32)
    for _ in range(3):
        session.run(None, {"x": x})
    best = 0.0
    for _ in range(7):
        started = time.process_time()
        for _ in range(10):
            session.run(None, {"x": x})
        best = max(best, 10 * 2 * rows * inner * cols / (time.process_time() - started))
    return best


def _encoder_flop_per_token(config: dict[str, int]) -> float:
    """Multiply-add FLOPs per token of the BERT encoder's dense layers (attention excluded)."""
    hidden, inner = config["hidden_size"], config["intermediate_size"]
    return 2.0 * config["num_hidden_layers"] * (4 * hidden * hidden + 2 * hidden * inner)


def _padded_tokens(tokens: list[int], batch: int) -> int:
    ordered = sorted(tokens, reverse=True)
    return sum(
        max(chunk) * len(chunk)
        for chunk in (ordered[i : i + batch] for i in range(0, len(ordered), batch))
    )


def _timed(fn: Callable[[], np.ndarray]) -> tuple[np.ndarray, float, float]:
    """``fn()``'s rows, and rows per wall second and per CPU-second of this process."""
    wall, cpu = time.perf_counter(), time.process_time()
    rows = fn()
    return rows, len(rows) / (time.perf_counter() - wall), len(rows) / (time.process_time() - cpu)


def _install_sentence_transformers(venv: Path) -> str | None:
    """Make ``venv`` with torch 2.13.0 and sentence-transformers; None on success, else why not."""
    python = venv / "bin" / "python"
    check = [str(python), "-c", "import sentence_transformers, torch"]
    if python.exists() and subprocess.run(check, capture_output=True).returncode == 0:
        return None
    print(f"installing {' '.join(ST_REQUIREMENTS)} into {venv} (~90 s, 1.4 GB)...", flush=True)
    try:
        subprocess.run(
            [sys.executable, "-m", "venv", str(venv)], check=True, capture_output=True, timeout=120
        )
        subprocess.run(
            [str(python), "-m", "pip", "install", "-q", "--disable-pip-version-check",
             *ST_REQUIREMENTS],
            check=True,
            capture_output=True,
            timeout=1200,
        )  # fmt: skip
    except subprocess.CalledProcessError as exc:
        tail = (exc.stderr or b"").decode(errors="replace").strip().splitlines()[-5:]
        return f"installing {' '.join(ST_REQUIREMENTS)} failed: {' / '.join(tail) or exc}"
    except (subprocess.TimeoutExpired, OSError) as exc:
        return f"installing {' '.join(ST_REQUIREMENTS)} failed: {exc}"
    return None


def sentence_transformers_run(
    venv: Path, model_dir: Path, texts: list[str], batch: int, repeats: int, threads: int = 0
) -> tuple[dict[str, object], np.ndarray, float]:
    """Run sentence-transformers in ``venv``'s python on ``texts`` (``threads`` 0: torch's
    default intra-op threads).

    Returns its JSON report (rates per repeat, versions, torch threads), its vectors, and
    the cores other processes used meanwhile.

    Raises:
        RuntimeError: the install or the run failed (the message says why).
    """
    why_not = _install_sentence_transformers(venv)
    if why_not:
        raise RuntimeError(why_not)
    with tempfile.TemporaryDirectory() as work:
        texts_path, vectors_path = Path(work) / "texts.json", Path(work) / "vectors.npy"
        texts_path.write_text(json.dumps(texts))
        env = {
            "PATH": os.environ.get("PATH", ""),
            "HOME": os.environ.get("HOME", ""),
            "HF_HUB_OFFLINE": "1",
            "TRANSFORMERS_OFFLINE": "1",
        }
        busy0, total0 = _machine_busy()
        child0 = resource.getrusage(resource.RUSAGE_CHILDREN)
        done = subprocess.run(
            [str(venv / "bin" / "python"), "-c", _ST_SCRIPT, str(model_dir), str(texts_path),
             str(vectors_path), str(batch), str(repeats), str(threads)],
            capture_output=True,
            env=env,
            timeout=1800,
        )  # fmt: skip
        child1 = resource.getrusage(resource.RUSAGE_CHILDREN)
        busy1, total1 = _machine_busy()
        if done.returncode != 0:
            tail = done.stderr.decode(errors="replace").strip().splitlines()[-5:]
            raise RuntimeError(f"sentence-transformers run failed: {' / '.join(tail)}")
        report = json.loads(done.stdout.decode().strip().splitlines()[-1])
        vectors = np.load(vectors_path)
    child_cpu = (child1.ru_utime + child1.ru_stime) - (child0.ru_utime + child0.ru_stime)
    return report, vectors, _others_cores(busy0, total0, busy1, total1, child_cpu)


def _others_cores(busy0: float, total0: float, busy1: float, total1: float, own: float) -> float:
    """Cores other processes kept busy between two ``_machine_busy`` readings."""
    if total1 <= total0:
        return 0.0
    cores = os.cpu_count() or 1
    ticks = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
    machine = (busy1 - busy0) / (total1 - total0) * cores
    return max(0.0, machine - own * ticks / (total1 - total0) * cores)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--texts", type=int, default=1000)
    parser.add_argument("--min-words", type=int, default=4)
    parser.add_argument("--max-words", type=int, default=40)
    parser.add_argument("--baseline-texts", type=int, default=128)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument(
        "--sentence-transformers",
        action="store_true",
        help="also run sentence-transformers on torch CPU on the same corpus (a kept venv)",
    )
    parser.add_argument("--st-venv", type=Path, default=ST_VENV, help=f"default {ST_VENV}")
    parser.add_argument(
        "--st-threads", type=int, default=0, help="torch intra-op threads (default: torch's)"
    )
    parser.add_argument(
        "--int8", action="store_true", help="also time the opt-in int8 variant (other vectors)"
    )
    args = parser.parse_args()

    texts = corpus(args.texts, min_words=args.min_words, max_words=args.max_words)
    sample = texts[: args.baseline_texts]
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
        baseline = chromadb_session(embedder)
        tokens = [len(e.ids) for e in tokenizer.encode_batch(texts)]

        int8 = LocalMiniLMEmbedder(Path(cache), quantized=True) if args.int8 else None
        if int8 is not None:
            int8.embed(["first use quantises and caches the int8 graph"])
        int8_wall: list[float] = []
        int8_cpu: list[float] = []
        int8_vectors = np.zeros((0, embedder.dimension), dtype=np.float32)
        ours_wall, ours_cpu, base_wall, base_cpu = [], [], [], []
        busy0, total0 = _machine_busy()
        cpu0 = time.process_time()
        vectors = padded = np.zeros((0, embedder.dimension), dtype=np.float32)
        for _ in range(args.repeats):
            # Interleaved, so both see the same load from other processes.
            vectors, wall, cpu = _timed(lambda: embedder.embed(texts))
            ours_wall.append(wall)
            ours_cpu.append(cpu)
            padded, wall, cpu = _timed(
                lambda: fixed_padding_embed(embedder, baseline, sample, args.batch_size)
            )
            base_wall.append(wall)
            base_cpu.append(cpu)
            if int8 is not None:
                int8_vectors, wall, cpu = _timed(lambda: int8.embed(texts))
                int8_wall.append(wall)
                int8_cpu.append(cpu)
        busy1, total1 = _machine_busy()
        own_cpu = time.process_time() - cpu0

        agreement = float(np.min(np.sum(vectors[: len(padded)] * padded, axis=1)))
        model_dir = find_local_weights()
        reference = [reference_embedding(model_dir, text) for text in texts[:5]]
        against_reference = min(
            float(ref @ vec) for ref, vec in zip(reference, vectors[:5], strict=True)
        )
        config = json.loads((model_dir / "config.json").read_text())
        int8_against_reference = (
            min(float(ref @ vec) for ref, vec in zip(reference, int8_vectors[:5], strict=True))
            if int8 is not None
            else 0.0
        )

    gemm = _gemm_flop_per_cpu_second()
    flop_per_text = (
        _encoder_flop_per_token(config) * _padded_tokens(tokens, args.batch_size) / len(texts)
    )
    cores = os.cpu_count() or 1
    ceiling_per_cpu = gemm / flop_per_text
    wall_p50, cpu_p50 = statistics.median(ours_wall), statistics.median(ours_cpu)
    base_wall_p50, base_cpu_p50 = statistics.median(base_wall), statistics.median(base_cpu)

    print("# offline embeddings: all-MiniLM-L6-v2 on onnxruntime, no torch")
    print(
        f"cores: {cores}; batch size {args.batch_size}; ours: {cores} batches at once, one "
        "onnxruntime thread each; baseline: onnxruntime's default threads, one batch at a time"
    )
    print(
        f"corpus: {len(texts)} texts of {args.min_words}-{args.max_words} words, "
        f"tokens/text mean {statistics.mean(tokens):.1f}, median {statistics.median(tokens):.0f}, "
        f"max {max(tokens)}; baseline on the first {len(sample)}"
    )
    print(f"first use (hash weights, build + cache ONNX graph, load): {first_use:.2f} s")
    print(f"later use (hash weights, load cached graph):             {cached_use:.2f} s")
    print(f"medians of {args.repeats} interleaved runs     per wall s   per CPU-s")
    print(f"  ours, per-batch padding           {wall_p50:10.0f} {cpu_p50:11.0f}")
    print(f"  baseline, pad to 256 (chromadb)   {base_wall_p50:10.0f} {base_cpu_p50:11.0f}")
    print(
        f"  ratio ours / baseline             {wall_p50 / base_wall_p50:9.1f}x "
        f"{cpu_p50 / base_cpu_p50:10.1f}x"
    )
    print(
        f"ceiling: this machine multiplies float32 matrices at {gemm / 1e9:.0f} GFLOP per "
        f"CPU-second; at {flop_per_text / 1e9:.3f} GFLOP per text that is "
        f"{ceiling_per_cpu:.0f} texts per CPU-second, {ceiling_per_cpu * cores:.0f}/s on "
        f"{cores} idle cores"
    )
    print(
        f"ours per CPU-second is {cpu_p50 / ceiling_per_cpu:.0%} of that ceiling; "
        f"expected on {cores} idle cores: ~{cpu_p50 * cores:.0f}/s"
    )
    verdict = "met" if wall_p50 >= TARGET_PER_SECOND else "NOT met"
    print(f"target >= {TARGET_PER_SECOND}/s wall on this run: {verdict}")
    print(f"min cosine ours vs pad-256 baseline:        {agreement:.7f}")
    print(f"min cosine ours vs float64 numpy reference: {against_reference:.7f}")
    if int8_wall:
        cosines = np.sum(int8_vectors * vectors, axis=1)
        print(
            "opt-in int8 (local:all-MiniLM-L6-v2-int8, one text per run, interleaved): "
            f"{statistics.median(int8_wall):.0f}/s wall, {statistics.median(int8_cpu):.0f} "
            f"per CPU-s ({statistics.median(int8_cpu) / cpu_p50:.2f}x ours per CPU-s)"
        )
        print(
            f"  cosine int8 vs ours: min {cosines.min():.4f}, mean {cosines.mean():.4f}; "
            f"min vs float64 reference (first 5 texts): {int8_against_reference:.4f}"
        )
    if total1 > total0:
        others = _others_cores(busy0, total0, busy1, total1, own_cpu)
        print(
            f"CPU used meanwhile by other processes: {others:.2f} of {cores} cores "
            "(wall rates shrink with it; per-CPU-second rates and ratios much less)"
        )
    if args.sentence_transformers:
        print("# reference implementation: sentence-transformers on torch CPU, same corpus")
        try:
            st, st_vectors, st_others = sentence_transformers_run(
                args.st_venv, model_dir, texts, args.batch_size, args.repeats, args.st_threads
            )
        except RuntimeError as exc:
            print(f"sentence-transformers: not run: {exc}")
            return
        st_wall = statistics.median(st["wall"])  # type: ignore[arg-type]
        st_cpu = statistics.median(st["cpu"])  # type: ignore[arg-type]
        st_cosine = float(np.min(np.sum(vectors * st_vectors, axis=1)))
        print(f"{st['versions']}, {st['threads']} torch threads, batch size {args.batch_size}")
        print(f"medians of {args.repeats} runs                per wall s   per CPU-s")
        print(f"  sentence-transformers (torch)     {st_wall:10.0f} {st_cpu:11.0f}")
        print(
            f"  ratio ours / sentence-transformers {wall_p50 / st_wall:8.2f}x "
            f"{cpu_p50 / st_cpu:10.2f}x"
        )
        print(f"min cosine ours vs sentence-transformers:   {st_cosine:.7f}")
        print(f"CPU used by other processes during its run: {st_others:.2f} of {cores} cores")


if __name__ == "__main__":
    main()
