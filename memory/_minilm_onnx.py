"""Build an ONNX graph of a BERT sentence encoder (all-MiniLM-L6-v2) from safetensors.

No torch is involved: the ``onnx`` helper API assembles the graph from the raw tensors.

The graph takes ``input_ids`` and ``attention_mask`` (int64, ``[batch, seq]``, any
lengths) and returns ``sentence_embedding`` (float32, ``[batch, hidden]``): the encoder
output mean-pooled over the real tokens and L2-normalised, as sentence-transformers'
Transformer → Pooling(mean) → Normalize pipeline does. Because sequence length is
dynamic, callers pad each batch only to its longest member. Token type ids are always 0
for single sentences, so the type-0 embedding is folded into the position table.

Layout, chosen by measurement on onnxruntime's CPU provider (``benchmarks/embeddings.py``):
the encoder keeps its activations as a ``[batch * seq, hidden]`` matrix, so every dense
layer is one ``Gemm`` with its bias fused into the multiply (a ``MatMul`` on 3-D input
followed by a broadcast ``Add`` cost an extra pass per layer), and GELU is
onnxruntime's erf-exact ``com.microsoft.Gelu`` (onnxruntime does not fuse the ``Erf``
pattern behind a ``Gemm``). The dense layers already run at this machine's float32 GEMM
rate (~85% of a run); this layout took 1-9% less CPU per text than the previous
``MatMul`` + ``Add`` graph in interleaved runs. A graph of onnxruntime's BERT contrib ops
(``Attention``, ``EmbedLayerNormalization``, ``SkipLayerNormalization``, ``BiasGelu``)
took ~9% more, and ``onnxruntime.transformers.optimizer`` (which only matched
``SkipLayerNormalization`` here) ~5% more: ``SkipLayerNormalization`` is ~5x slower than
``Add`` + ``LayerNormalization`` on the CPU provider, and ``Attention`` slower than its
parts at these short lengths. So they are not used.

Bump ``BUILDER_VERSION`` whenever the emitted graph changes: cached graphs are keyed by
it and by the weights' hash.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper
from safetensors.numpy import load_file

BUILDER_VERSION = 2
OPSET = 17  # LayerNormalization is a standard op from opset 17
CONTRIB_DOMAIN = "com.microsoft"  # onnxruntime's own operators (Gelu)


class _GraphBuilder:
    """Accumulates nodes and initialisers with unique names."""

    def __init__(self) -> None:
        self.nodes: list[onnx.NodeProto] = []
        self.initializers: list[onnx.TensorProto] = []
        # Types of contrib-op outputs, which onnx's shape inference cannot derive (tools
        # that read the graph, such as onnxruntime's quantizer, need them).
        self.value_info: list[onnx.ValueInfoProto] = []
        self._count = 0

    def name(self, hint: str) -> str:
        self._count += 1
        return f"{hint}_{self._count}"

    def const(self, hint: str, value: np.ndarray) -> str:
        name = self.name(hint)
        self.initializers.append(numpy_helper.from_array(value, name))
        return name

    def op(
        self, op_type: str, inputs: list[str], hint: str = "", domain: str = "", **attrs: Any
    ) -> str:
        output = self.name(hint or op_type.lower())
        self.nodes.append(
            helper.make_node(op_type, inputs, [output], name=output, domain=domain, **attrs)
        )
        if domain:
            self.value_info.append(helper.make_tensor_value_info(output, TensorProto.FLOAT, None))
        return output

    def linear(self, x: str, weight: np.ndarray, bias: np.ndarray, hint: str) -> str:
        """``x @ weight.T + bias`` as one Gemm; ``x`` is ``[tokens, in]``.

        safetensors keeps torch's ``[out, in]`` layout, which Gemm takes as is (transB).
        """
        w = self.const(f"{hint}.w", np.ascontiguousarray(weight, dtype=np.float32))
        b = self.const(f"{hint}.b", np.ascontiguousarray(bias, dtype=np.float32))
        return self.op("Gemm", [x, w, b], hint, transB=1)

    def layer_norm(self, x: str, weight: np.ndarray, bias: np.ndarray, eps: float) -> str:
        scale = self.const("ln.scale", weight.astype(np.float32))
        shift = self.const("ln.bias", bias.astype(np.float32))
        return self.op("LayerNormalization", [x, scale, shift], "ln", axis=-1, epsilon=eps)


def _strip_prefix(weights: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Accept both ``embeddings.*`` and ``bert.embeddings.*`` checkpoints."""
    if any(key.startswith("bert.") for key in weights):
        return {key.removeprefix("bert."): value for key, value in weights.items()}
    return weights


def build_sentence_encoder(model_dir: Path) -> onnx.ModelProto:
    """Return the ONNX model for the BERT checkpoint in ``model_dir``.

    Raises:
        KeyError: the checkpoint lacks a tensor a BERT encoder needs.
        ValueError: the config is not a BERT config this builder supports.
    """
    config = json.loads((model_dir / "config.json").read_text())
    if config.get("model_type") != "bert" or config.get("hidden_act") != "gelu":
        raise ValueError(f"unsupported encoder config in {model_dir}: need BERT with gelu")
    hidden = int(config["hidden_size"])
    heads = int(config["num_attention_heads"])
    layers = int(config["num_hidden_layers"])
    eps = float(config.get("layer_norm_eps", 1e-12))
    head_dim = hidden // heads
    w = _strip_prefix(load_file(str(model_dir / "model.safetensors")))

    g = _GraphBuilder()
    ids, mask = "input_ids", "attention_mask"

    def ints(hint: str, values: list[int]) -> str:
        return g.const(hint, np.array(values, dtype=np.int64))

    # Embeddings: word + position (+ token type 0, folded into the position table).
    word_table = g.const("word_embeddings", w["embeddings.word_embeddings.weight"])
    position_table = g.const(
        "position_embeddings",
        (
            w["embeddings.position_embeddings.weight"]
            + w["embeddings.token_type_embeddings.weight"][0]
        ).astype(np.float32),
    )
    zero = g.const("zero", np.array(0, dtype=np.int64))
    one = g.const("one", np.array(1, dtype=np.int64))
    batch_seq = g.op("Shape", [ids], "batch_seq")
    seq_len = g.op("Gather", [batch_seq, one], "seq_len", axis=0)
    positions = g.op("Range", [zero, seq_len, one], "positions")
    x = g.op(
        "Add",
        [g.op("Gather", [word_table, ids], axis=0), g.op("Gather", [position_table, positions])],
    )
    # From here on the activations are a [batch * seq, hidden] matrix of tokens.
    x = g.op("Reshape", [x, ints("tokens_shape", [-1, hidden])], "tokens")
    x = g.layer_norm(x, w["embeddings.LayerNorm.weight"], w["embeddings.LayerNorm.bias"], eps)

    # Additive attention mask [batch, 1, 1, seq]: 0 for tokens, a large negative for padding.
    mask_f = g.op("Cast", [mask], "mask_f", to=TensorProto.FLOAT)
    mask_4d = g.op("Unsqueeze", [mask_f, ints("axes", [1, 2])])
    attn_bias = g.op(
        "Mul",
        [
            g.op("Sub", [g.const("one_f", np.array(1.0, dtype=np.float32)), mask_4d]),
            g.const("neg", np.array(-1e9, dtype=np.float32)),
        ],
        "attn_bias",
    )
    split_heads = g.op("Concat", [batch_seq, ints("heads", [heads, head_dim])], axis=0)
    merge_heads = ints("merge_heads", [-1, hidden])
    scale = g.const("scale", np.array(1.0 / math.sqrt(head_dim), dtype=np.float32))

    for index in range(layers):
        p = f"encoder.layer.{index}."

        def heads_of(name: str, perm: list[int], p: str = p, source: str = x) -> str:
            projected = g.linear(source, w[f"{p}{name}.weight"], w[f"{p}{name}.bias"], name)
            return g.op("Transpose", [g.op("Reshape", [projected, split_heads])], perm=perm)

        q = heads_of("attention.self.query", [0, 2, 1, 3])
        k = heads_of("attention.self.key", [0, 2, 3, 1])
        v = heads_of("attention.self.value", [0, 2, 1, 3])
        scores = g.op("Add", [g.op("Mul", [g.op("MatMul", [q, k]), scale]), attn_bias])
        probs = g.op("Softmax", [scores], "probs", axis=-1)
        context = g.op("Transpose", [g.op("MatMul", [probs, v])], perm=[0, 2, 1, 3])
        context = g.op("Reshape", [context, merge_heads], "context")
        attn_out = g.linear(
            context,
            w[f"{p}attention.output.dense.weight"],
            w[f"{p}attention.output.dense.bias"],
            "attn_out",
        )
        x = g.layer_norm(
            g.op("Add", [attn_out, x]),
            w[f"{p}attention.output.LayerNorm.weight"],
            w[f"{p}attention.output.LayerNorm.bias"],
            eps,
        )
        inner = g.linear(
            x, w[f"{p}intermediate.dense.weight"], w[f"{p}intermediate.dense.bias"], "inner"
        )
        # Exact (erf) GELU, as BERT's "gelu"; not FastGelu, onnxruntime's tanh approximation.
        inner = g.op("Gelu", [inner], "gelu", domain=CONTRIB_DOMAIN)
        out = g.linear(inner, w[f"{p}output.dense.weight"], w[f"{p}output.dense.bias"], "out")
        x = g.layer_norm(
            g.op("Add", [out, x]),
            w[f"{p}output.LayerNorm.weight"],
            w[f"{p}output.LayerNorm.bias"],
            eps,
        )

    # Mean pooling over real tokens, then L2 normalisation (clamps as sentence-transformers).
    x = g.op("Reshape", [x, g.op("Concat", [batch_seq, ints("hidden", [hidden])], axis=0)])
    mask_3d = g.op("Unsqueeze", [mask_f, ints("axis2", [2])])
    seq_axis = ints("seq_axis", [1])
    summed = g.op("ReduceSum", [g.op("Mul", [x, mask_3d]), seq_axis], keepdims=0)
    counts = g.op("ReduceSum", [mask_3d, seq_axis], keepdims=0)
    counts = g.op("Max", [counts, g.const("min_count", np.array(1e-9, dtype=np.float32))])
    pooled = g.op("Div", [summed, counts], "pooled")
    norm = g.op("ReduceL2", [pooled], axes=[-1], keepdims=1)  # axes: an attribute in opset 17
    norm = g.op("Max", [norm, g.const("min_norm", np.array(1e-12, dtype=np.float32))])
    g.nodes.append(
        helper.make_node("Div", [pooled, norm], ["sentence_embedding"], name="sentence_embedding")
    )

    graph = helper.make_graph(
        g.nodes,
        "minilm_sentence_encoder",
        inputs=[
            helper.make_tensor_value_info(ids, TensorProto.INT64, ["batch", "seq"]),
            helper.make_tensor_value_info(mask, TensorProto.INT64, ["batch", "seq"]),
        ],
        outputs=[
            helper.make_tensor_value_info(
                "sentence_embedding", TensorProto.FLOAT, ["batch", hidden]
            )
        ],
        initializer=g.initializers,
        value_info=g.value_info,
    )
    model = helper.make_model(
        graph,
        opset_imports=[helper.make_opsetid("", OPSET), helper.make_opsetid(CONTRIB_DOMAIN, 1)],
        producer_name="relaygraph.memory",
        producer_version=str(BUILDER_VERSION),
    )
    model.ir_version = 8  # readable by every onnxruntime that supports opset 17
    onnx.checker.check_model(model)
    return model
