"""Build the two ONNX graphs of an extracted SubTransformer directly from its weights, op by op with `onnx.helper`
(well under a second per architecture): one encoder graph and one cached decoder-step graph.

The encoder graph runs once per batch and already projects, for every decoder layer, the cross-attention K/V
over the last `cross_layers` encoder outputs, so the decoder graph never sees encoder states:

    encoder.onnx  src_tokens (N, S) int64
                  -> cross_k.i, cross_v.i (N, H_i, c_i*S, d_i), cross_bias.i (N, 1, 1, c_i*S) float32
    decoder.onnx  tokens (N, 1) int64, step () int64, top_k (1,) int64, self_k.i, self_v.i (N, H_i, capacity,
                  d_i) with `step` positions filled, the encoder outputs
                  -> logits (N, V), top_logprobs, top_ids (N, top_k), new_self_k.i, new_self_v.i with position
                  `step`

Batch, source length and cache capacity are dynamic; a cache of capacity 0 grows by one position per step
(ONNX Runtime accepts zero-size tensors). `export.json` records the format (`onnx_signature.ONNX_FORMAT`), arch,
model config and signature that `OrtTranslator.load` reads.

The maths restates `hat_engine.model.transformer` (pre-norm layers, HAT's arbitrary encoder-decoder attention, Wang et
al., ACL 2020, Sec. 3.1) in a form ONNX Runtime runs well: Q/K/V projections fused into one MatMul with
pre-transposed weights, the 1/sqrt(head size) attention scale folded into the query weights, the standard
LayerNormalization op, and encoder and cross-attention written as MatMul/Softmax/MatMul. The decoder step works on
2-d (N, D) activations, so every linear is one Gemm and heads split by a Reshape alone; its self-attention is one
`com.microsoft.GroupQueryAttention` node (Q/K/V packed, as many K/V heads as query heads) over a K/V buffer it
appends the step's position to, in place where the caller binds one buffer as past and present. Masked attention
maps a fully masked row to zeros, as torch's SDPA does: in the encoder by a guard after Softmax, in the decoder's
cross-attention by an all-zero bias and zero values for such a row, computed once by the encoder.
"""

from __future__ import annotations

import json
import logging
import math
import time
from pathlib import Path

import numpy as np
import onnx
import torch
from onnx import TensorProto, helper, numpy_helper
from torch import Tensor, nn

from hat_engine.config import HEAD_SIZE_MULTIPLE
from hat_engine.model.transformer import Attention, Transformer, sinusoidal_table
from hat_engine.runtime.onnx_export import share_initializers
from hat_engine.runtime.onnx_signature import DECODER_FILE, ENCODER_FILE, META_FILE, ONNX_FORMAT, signature

log = logging.getLogger(__name__)

BUILDER = "onnx-graph"
OPSET = 18  # LayerNormalization needs 17; 18 gives Split its num_outputs attribute
MS_DOMAIN, MS_OPSET = "com.microsoft", 1  # ONNX Runtime's contrib ops: GroupQueryAttention
IR_VERSION = 10  # what ONNX Runtime >= 1.20 reads

_F32, _I32, _I64, _BOOL = TensorProto.FLOAT, TensorProto.INT32, TensorProto.INT64, TensorProto.BOOL
EMBED_TABLE, POSITION_TABLE = "embed_tokens", "positions"  # one name in both graphs: shared where E = D


def _np(t: Tensor) -> np.ndarray:
    return t.detach().to("cpu", torch.float32).numpy()


class _Graph:
    """Collects nodes and initializers; every op returns fresh output names."""

    def __init__(self) -> None:
        self.nodes: list[onnx.NodeProto] = []
        self.inits: list[onnx.TensorProto] = []
        self._count = 0
        self._shared: dict[tuple, str] = {}

    def _name(self, hint: str) -> str:
        self._count += 1
        return f"{hint}_{self._count}"

    def const(self, hint: str, value: np.ndarray, exact: bool = False) -> str:
        """An initializer named after `hint` (exactly `hint` when `exact`: a name the other graph shares)."""
        name = hint if exact else self._name(hint)
        self.inits.append(numpy_helper.from_array(np.ascontiguousarray(value), name))
        return name

    def scalar(self, value: float, dtype: type = np.float32) -> str:
        """A 0-d constant, shared by every op that uses the same value."""
        key = (value, np.dtype(dtype).name)
        if key not in self._shared:
            self._shared[key] = self.const("scalar", np.array(value, dtype))
        return self._shared[key]

    def ints(self, values: list[int]) -> str:
        """A 1-d int64 constant (a shape or axes), shared like `scalar`."""
        key = tuple(values)
        if key not in self._shared:
            self._shared[key] = self.const("ints", np.array(values, dtype=np.int64))
        return self._shared[key]

    def op(self, op_type: str, *inputs: str, out: str | None = None, **attrs) -> str:
        return self.ops(op_type, *inputs, outs=[out or self._name(op_type.lower())], **attrs)[0]

    def ops(self, op_type: str, *inputs: str, outs: list[str] | int, domain: str = "", **attrs) -> list[str]:
        """A node of `op_type` (of the ONNX `domain`, "" for the standard ops); "" among `inputs` skips one."""
        if isinstance(outs, int):
            outs = [self._name(op_type.lower()) for _ in range(outs)]
        self.nodes.append(helper.make_node(op_type, list(inputs), outs, domain=domain or None, **attrs))
        return outs

    def linear(
        self, x: str, linears: list[nn.Linear], hint: str, scales: list[float] | None = None, gemm: bool = False
    ) -> str:
        """x (..., in) -> (..., sum of outs): one MatMul with the linears' weights transposed and concatenated,
        each optionally scaled (weight and bias) by its entry of `scales`. `gemm` (x must be 2-d) adds the bias
        inside one Gemm instead of a separate Add."""
        scales = scales or [1.0] * len(linears)
        w = np.concatenate([_np(lin.weight).T * s for lin, s in zip(linears, scales, strict=True)], axis=1)
        b = np.concatenate([_np(lin.bias) * s for lin, s in zip(linears, scales, strict=True)])
        w, b = self.const(f"{hint}.weight", w.astype(np.float32)), self.const(f"{hint}.bias", b.astype(np.float32))
        return self.op("Gemm", x, w, b) if gemm else self.op("Add", self.op("MatMul", x, w), b)

    def layer_norm(self, x: str, norm: nn.LayerNorm, hint: str) -> str:
        scale, bias = self.const(f"{hint}.weight", _np(norm.weight)), self.const(f"{hint}.bias", _np(norm.bias))
        return self.op("LayerNormalization", x, scale, bias, axis=-1, epsilon=float(norm.eps))

    def attend(self, q: str, k: str, v: str, bias: str | None) -> str:
        """q (N, H, T, d) pre-scaled, k/v (N, H, L, d), bias (N, 1, 1, L) 0 / -inf or None -> (N, H, T, d)."""
        scores = self.op("MatMul", q, self.op("Transpose", k, perm=[0, 1, 3, 2]))  # (N, H, T, L)
        if bias is None:
            return self.op("MatMul", self.op("Softmax", scores, axis=-1), v)
        probs = self.op("Softmax", self.op("Add", scores, bias), axis=-1)
        # A row with every key masked is NaN after Softmax; torch's SDPA returns zeros there.
        probs = self.op("Where", self.op("IsNaN", probs), self.scalar(0.0), probs)
        return self.op("MatMul", probs, v)

    def mask_bias(self, mask: str) -> str:
        """Bool mask (True = attend) -> additive float bias: 0 where True, -inf where False."""
        return self.op("Where", mask, self.scalar(0.0), self.scalar(-np.inf))

    def model(self, name: str, inputs: list[onnx.ValueInfoProto], outputs: list[onnx.ValueInfoProto]):
        graph = helper.make_graph(self.nodes, name, inputs, outputs, initializer=self.inits)
        opsets = [helper.make_opsetid("", OPSET)]
        if any(node.domain == MS_DOMAIN for node in self.nodes):
            opsets.append(helper.make_opsetid(MS_DOMAIN, MS_OPSET))
        return helper.make_model(graph, opset_imports=opsets, ir_version=IR_VERSION, producer_name=BUILDER)


def _head_dims(model: Transformer, attn: Attention) -> tuple[int, int]:
    return attn.heads, model.qkv_dim // attn.heads


def _scale(model: Transformer, attn: Attention) -> float:
    return 1.0 / math.sqrt(_head_dims(model, attn)[1])


# --- encoder --------------------------------------------------------------------------------------------------


def _encoder_layer(g: _Graph, model: Transformer, layer: nn.Module, x: str, bias: str, i: int) -> str:
    """One pre-norm encoder layer: x (N, S, E) -> (N, S, E)."""
    attn = layer.self_attn
    heads, d = _head_dims(model, attn)
    h = g.layer_norm(x, layer.self_attn_norm, f"enc{i}.self_attn_norm")
    qkv = g.linear(h, [attn.q_proj, attn.k_proj, attn.v_proj], f"enc{i}.qkv", [_scale(model, attn), 1.0, 1.0])
    qkv = g.op("Reshape", qkv, g.ints([0, 0, 3 * heads, d]))  # (N, S, 3H, d)
    qkv = g.op("Transpose", qkv, perm=[0, 2, 1, 3])  # (N, 3H, S, d)
    q, k, v = g.ops("Split", qkv, outs=3, axis=1, num_outputs=3)  # 3 x (N, H, S, d)
    out = g.op("Transpose", g.attend(q, k, v, bias), perm=[0, 2, 1, 3])  # (N, S, H, d)
    out = g.linear(g.op("Reshape", out, g.ints([0, 0, heads * d])), [attn.out_proj], f"enc{i}.out_proj")
    x = g.op("Add", x, out)
    h = g.op("Relu", g.linear(g.layer_norm(x, layer.ffn_norm, f"enc{i}.ffn_norm"), [layer.fc1], f"enc{i}.fc1"))
    return g.op("Add", x, g.linear(h, [layer.fc2], f"enc{i}.fc2"))


def _encoder(model: Transformer) -> onnx.ModelProto:
    """src_tokens (N, S) -> per decoder layer cross_k, cross_v (N, H, c*S, d), cross_bias (N, 1, 1, c*S): 0 at real
    source tokens, -inf at padding; a row of padding alone gets bias 0 and zero values, so the decoder's
    cross-attention yields zeros there without a guard in every step."""
    g, arch, cfg = _Graph(), model.arch, model.model_config
    e, keep = arch.encoder_embed_dim, arch.max_cross_layers
    mask = g.op("Not", g.op("Equal", "src_tokens", g.scalar(cfg.pad_id, np.int64)))  # (N, S)
    # Positions count real tokens only (transformer.source_positions).
    count = g.op("CumSum", g.op("Cast", mask, to=_I64), g.scalar(1, np.int64))  # (N, S)
    positions = g.op("Max", g.op("Sub", count, g.scalar(1, np.int64)), g.scalar(0, np.int64))
    # Where E = D the table is the decoder's, under one name, so both sessions can share it
    # (`onnx_export.share_initializers`), and the gathered rows are scaled by sqrt(E): in fp32 that rounds as a
    # pre-scaled table does. int8 quantises the table, and only a power-of-two factor leaves its quantised values
    # as the pre-scaled table's (E = D = 192: 500 of 600 int8 translations the same), so elsewhere the encoder
    # keeps its own pre-scaled table and the catalog's int8 scores hold for every graph.
    raw, scale = _np(model.embed_tokens.weight[:, :e]), math.sqrt(e)
    if e == arch.decoder_embed_dim and math.log2(scale).is_integer():
        x = g.op("Mul", g.op("Gather", g.const(EMBED_TABLE, raw, exact=True), "src_tokens"), g.scalar(scale))
    else:
        x = g.op("Gather", g.const("encoder.embed", raw * np.float32(scale)), "src_tokens")  # (N, S, E)
    pos_table = g.const(POSITION_TABLE, _np(sinusoidal_table(cfg.max_positions, e)), exact=True)  # (P, E)
    x = g.op("Add", x, g.op("Gather", pos_table, positions))
    mask4 = g.op("Unsqueeze", mask, g.ints([1, 2]))  # (N, 1, 1, S)
    bias = g.mask_bias(mask4)
    has_tokens = g.op("ReduceMax", g.op("Cast", mask4, to=_F32), g.ints([3]), keepdims=1)  # (N, 1, 1, 1): 1 or 0
    cross_bias = g.mask_bias(g.op("Or", mask4, g.op("Not", g.op("Cast", has_tokens, to=_BOOL))))
    states = []
    for i, layer in enumerate(model.encoder_layers):
        x = _encoder_layer(g, model, layer, x, bias, i)
        if i >= arch.encoder_depth - keep:  # each output the decoder reads gets the final LayerNorm
            states.append(g.layer_norm(x, model.encoder_norm, f"encoder_norm{i}"))

    outputs, memories, shapes = [], {}, []
    for i, (layer, genes) in enumerate(zip(model.decoder_layers, arch.decoder_layers, strict=True)):
        c = genes.cross_layers
        if c not in memories:
            memory = states[-1] if c == 1 else g.op("Concat", *states[-c:], axis=1)  # (N, c*S, E)
            tiled = cross_bias if c == 1 else g.op("Tile", cross_bias, g.ints([1, 1, 1, c]))  # (N, 1, 1, c*S)
            memories[c] = memory, tiled
        memory, tiled = memories[c]
        heads, d = _head_dims(model, layer.cross_attn)
        kv = g.linear(memory, [layer.cross_attn.k_proj, layer.cross_attn.v_proj], f"dec{i}.cross_kv")
        kv = g.op("Transpose", g.op("Reshape", kv, g.ints([0, 0, 2 * heads, d])), perm=[0, 2, 1, 3])  # (N, 2H, cS, d)
        _, v = g.ops("Split", kv, outs=[f"cross_k.{i}", g._name("cross_v")], axis=1, num_outputs=2)
        g.op("Mul", v, has_tokens, out=f"cross_v.{i}")
        g.op("Identity", tiled, out=f"cross_bias.{i}")  # one graph output per layer, even where layers share it
        mem = "src_len" if c == 1 else f"{c}*src_len"
        shapes += [("batch", heads, mem, d)] * 2 + [("batch", 1, 1, mem)]
    names = signature(arch.decoder_depth)["encoder"]["outputs"]
    for name, shape in zip(names, shapes, strict=True):
        outputs.append(helper.make_tensor_value_info(name, _F32, shape))
    inputs = [helper.make_tensor_value_info("src_tokens", _I64, ("batch", "src_len"))]
    return g.model("encoder", inputs, outputs)


# --- decoder step ---------------------------------------------------------------------------------------------


def _decoder_layer(g: _Graph, model: Transformer, layer: nn.Module, x: str, i: int) -> str:
    """One cached pre-norm decoder step: x (N, D) -> (N, D), writing new_self_k.i / new_self_v.i.

    With one position per row the step runs on 2-d activations: every linear is a single Gemm, and
    (N, H*d) <-> (N, H, 1, d) is a plain reshape, no transpose. The self-attention is GroupQueryAttention over
    the packed (N, 1, 3*H*d) projection and the cache buffer self_k.i / self_v.i (N, H, capacity, d), whose first
    `step` positions are filled: it writes position `step` (into the same buffer where the caller binds it as
    both past and present, else into a fresh one of max(capacity, step + 1) positions) and attends to
    positions 0..step. Its scale is 1: the query weights carry it."""
    attn, cross = layer.self_attn, layer.cross_attn
    heads, d = _head_dims(model, attn)
    h = g.layer_norm(x, layer.self_attn_norm, f"dec{i}.self_attn_norm")
    qkv = g.linear(h, [attn.q_proj, attn.k_proj, attn.v_proj], f"dec{i}.qkv", [_scale(model, attn), 1, 1], True)
    qkv = g.op("Reshape", qkv, g.ints([0, 1, 3 * heads * d]))  # (N, 1, 3*H*d): [Q heads, K heads, V heads]
    out = g.ops("GroupQueryAttention", qkv, "", "", f"self_k.{i}", f"self_v.{i}", "past_lengths", "total_length",
                outs=[g._name("self_attn"), f"new_self_k.{i}", f"new_self_v.{i}"], domain=MS_DOMAIN,
                num_heads=heads, kv_num_heads=heads, scale=1.0)[0]  # fmt: skip
    out = g.op("Reshape", out, g.ints([0, heads * d]))  # (N, H*d)
    x = g.op("Add", x, g.linear(out, [attn.out_proj], f"dec{i}.out_proj", gemm=True))

    heads, d = _head_dims(model, cross)
    h = g.layer_norm(x, layer.cross_attn_norm, f"dec{i}.cross_attn_norm")
    q = g.linear(h, [cross.q_proj], f"dec{i}.cross_q", [_scale(model, cross)], gemm=True)
    q = g.op("Reshape", q, g.ints([0, heads, 1, d]))  # (N, H, 1, d)
    scores = g.op("MatMul", q, g.op("Transpose", f"cross_k.{i}", perm=[0, 1, 3, 2]))  # (N, H, 1, c*S)
    probs = g.op("Softmax", g.op("Add", scores, f"cross_bias.{i}"), axis=-1)
    out = g.op("MatMul", probs, f"cross_v.{i}")  # (N, H, 1, d)
    out = g.op("Reshape", out, g.ints([0, heads * d]))  # (N, H*d)
    x = g.op("Add", x, g.linear(out, [cross.out_proj], f"dec{i}.cross_out_proj", gemm=True))

    h = g.layer_norm(x, layer.ffn_norm, f"dec{i}.ffn_norm")
    h = g.op("Relu", g.linear(h, [layer.fc1], f"dec{i}.fc1", gemm=True))
    return g.op("Add", x, g.linear(h, [layer.fc2], f"dec{i}.fc2", gemm=True))


def _decoder(model: Transformer) -> onnx.ModelProto:
    """tokens (N, 1), step (), top_k (1,), self K/V buffers (N, H, capacity, d) of which `step` positions are
    filled, cross K/V/bias -> logits (N, V), the top_k likeliest next tokens' log-probabilities and ids (N, top_k),
    best first (TopK: equal values in id order), self K/V buffers (N, H, max(capacity, step + 1), d) with
    position `step` written."""
    g, arch, cfg = _Graph(), model.arch, model.model_config
    dim = arch.decoder_embed_dim
    # One table serves the embedding (Gather) and the tied output projection (Gemm with transB).
    table = g.const(EMBED_TABLE, _np(model.embed_tokens.weight[:, :dim]), exact=True)  # (V, D)
    tokens = g.op("Reshape", "tokens", g.ints([-1]))  # (N,)
    x = g.op("Mul", g.op("Gather", table, tokens), g.scalar(math.sqrt(dim)))  # (N, D)
    pos_table = g.const(POSITION_TABLE, _np(sinusoidal_table(cfg.max_positions, dim)), exact=True)  # (P, D)
    x = g.op("Add", x, g.op("Gather", pos_table, "step"))  # (N, D) + (D,)
    # GroupQueryAttention's lengths: `step` positions cached per row (all rows alike), step + 1 attended.
    past = g.op("Cast", "step", to=_I32)
    g.op("Expand", past, g.op("Shape", "tokens", end=1), out="past_lengths")  # (N,)
    g.op("Add", past, g.scalar(1, np.int32), out="total_length")
    for i, layer in enumerate(model.decoder_layers):
        x = _decoder_layer(g, model, layer, x, i)
    g.op("Gemm", g.layer_norm(x, model.decoder_norm, "decoder_norm"), table, out="logits", transB=1)  # (N, V)
    # As many candidates per row as the caller asks (`top_k`, at most the vocabulary): a beam of 4 ranks 11, and
    # ranking the widest beam's 67 made the whole int8 step of a 3-layer decoder ~10 % slower.
    g.ops("TopK", g.op("LogSoftmax", "logits", axis=-1), "top_k", outs=["top_logprobs", "top_ids"], axis=-1)

    inputs = [
        helper.make_tensor_value_info("tokens", _I64, ("batch", 1)),
        helper.make_tensor_value_info("step", _I64, ()),
        helper.make_tensor_value_info("top_k", _I64, (1,)),
    ]
    outputs = [helper.make_tensor_value_info("logits", _F32, ("batch", cfg.vocab_size)),
               helper.make_tensor_value_info("top_logprobs", _F32, ("batch", "k")),
               helper.make_tensor_value_info("top_ids", _I64, ("batch", "k"))]  # fmt: skip
    for i, layer in enumerate(model.decoder_layers):
        heads, d = _head_dims(model, layer.self_attn)
        for kind in ("self_k", "self_v"):
            inputs.append(helper.make_tensor_value_info(f"{kind}.{i}", _F32, ("batch", heads, "capacity", d)))
            outputs.append(helper.make_tensor_value_info(f"new_{kind}.{i}", _F32, ("batch", heads, "new_capacity", d)))
    for i, layer in enumerate(model.decoder_layers):
        heads, d = _head_dims(model, layer.cross_attn)
        mem = f"mem_len_{i}"
        for kind in ("cross_k", "cross_v"):
            inputs.append(helper.make_tensor_value_info(f"{kind}.{i}", _F32, ("batch", heads, mem, d)))
        inputs.append(helper.make_tensor_value_info(f"cross_bias.{i}", _F32, ("batch", 1, 1, mem)))
    return g.model("decoder", _ordered(inputs, signature(arch.decoder_depth)["decoder"]["inputs"]), outputs)


def _ordered(values: list[onnx.ValueInfoProto], names: list[str]) -> list[onnx.ValueInfoProto]:
    by_name = {v.name: v for v in values}
    assert set(by_name) == set(names), "graph inputs differ from the export signature"
    return [by_name[name] for name in names]


# --- entry point ----------------------------------------------------------------------------------------------


@torch.no_grad()
def build_onnx(model: Transformer, out_dir: str | Path) -> dict[str, Path]:
    """Write `encoder.onnx`, `decoder.onnx` and `export.json` to `out_dir`, built from `model`'s weights (as
    float32); returns the paths under keys "encoder",
    "decoder", "meta". `model` is left untouched."""
    out_dir = Path(out_dir)
    arch, cfg = model.arch, model.model_config
    for i, layer in enumerate(model.decoder_layers):
        if _head_dims(model, layer.self_attn)[1] % HEAD_SIZE_MULTIPLE:
            raise ValueError(f"decoder layer {i}: head size {model.qkv_dim}/{layer.self_attn.heads} is not a multiple "
                             f"of {HEAD_SIZE_MULTIPLE}, which ONNX Runtime's GroupQueryAttention needs")  # fmt: skip
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {"encoder": out_dir / ENCODER_FILE, "decoder": out_dir / DECODER_FILE, "meta": out_dir / META_FILE}
    seconds = {}
    for part, build in (("encoder", _encoder), ("decoder", _decoder)):
        start = time.perf_counter()
        onnx.save_model(build(model), str(paths[part]))
        seconds[part] = time.perf_counter() - start
    log.debug("built %s in %.2fs (encoder) + %.2fs (decoder)", arch.arch_id(), seconds["encoder"], seconds["decoder"])
    meta = {
        "format": ONNX_FORMAT,
        "builder": BUILDER,
        "arch": arch.to_dict(),
        "model_config": cfg.to_dict(),
        "qkv_dim": model.qkv_dim,
        "files": {"encoder": ENCODER_FILE, "decoder": DECODER_FILE},
        "signature": signature(arch.decoder_depth),
        "export_seconds": {k: round(v, 3) for k, v in seconds.items()},
        "onnx_version": onnx.__version__,
        "opset": OPSET,
    }
    meta["shared"] = share_initializers(out_dir, meta["files"])
    paths["meta"].write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")
    return paths
