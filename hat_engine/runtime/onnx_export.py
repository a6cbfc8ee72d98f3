"""Export an extracted SubTransformer to ONNX: one encoder graph and one cached decoder-step graph.

The encoder graph runs once per batch and already projects, for every decoder layer, the cross-attention K/V
over the last `cross_layers` encoder outputs (HAT's arbitrary encoder-decoder attention, Wang et al., ACL 2020,
Sec. 3.1), so the decoder graph never sees encoder states. Graph inputs and outputs carry the names of the
torch KV cache (`hat_engine.model.transformer.Cache`):

    encoder.onnx  src_tokens (N, S) int64
                  -> cross_k.i, cross_v.i (N, H_i, c_i*S, d_i) float32, cross_mask.i (N, 1, 1, c_i*S) bool
    decoder.onnx  tokens (N, 1) int64, step () int64, self_k.i, self_v.i (N, H_i, t, d_i), the encoder outputs
                  -> logits (N, V), new_self_k.i, new_self_v.i (N, H_i, t + 1, d_i)

Batch, source length and cache length are dynamic; the first step passes a cache with t = 0 (ONNX Runtime
accepts zero-size tensors). The wrappers below call the Transformer's own layers; only the step loop of
`Transformer.decode_step` is restated, because its Python-int `step` and lazy cross projection cannot be traced.
Uses the dynamo exporter: the legacy TorchScript exporter bakes sequence lengths into the graph.
"""

from __future__ import annotations

import copy
import json
import logging
import time
import warnings
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.export import Dim

from hat_engine.model.transformer import Transformer, embed
from hat_engine.runtime.onnx_signature import DECODER_FILE, ENCODER_FILE, META_FILE, ONNX_FORMAT, signature, top_k

log = logging.getLogger(__name__)

# Example sizes used for tracing. Above 1 on purpose: torch.export specialises dimensions that are 0 or 1.
_EXAMPLE_BATCH, _EXAMPLE_SRC_LEN, _EXAMPLE_PAST = 2, 5, 3

# --- wrappers -------------------------------------------------------------------------------------------------


class EncoderGraph(nn.Module):
    """src_tokens (N, S) -> per decoder layer (cross_k, cross_v, cross_mask), flattened."""

    def __init__(self, model: Transformer):
        super().__init__()
        self.model = model

    def forward(self, src_tokens: Tensor) -> tuple[Tensor, ...]:
        encoder_out = self.model.encode(src_tokens)
        memories: dict[int, tuple[Tensor, Tensor]] = {}
        outputs: list[Tensor] = []
        for layer, genes in zip(self.model.decoder_layers, self.model.arch.decoder_layers, strict=True):
            c = genes.cross_layers
            if c not in memories:
                memories[c] = encoder_out.memory(c)  # (N, c*S, E), (N, 1, 1, c*S)
            memory, mask = memories[c]
            k, v = layer.cross_attn.project_kv(memory)  # (N, H, c*S, d)
            outputs += [k, v, mask]
        return tuple(outputs)


class DecoderStepGraph(nn.Module):
    """One cached decoder step; the same maths as `Transformer.decode_step` with a tensor `step`."""

    def __init__(self, model: Transformer):
        super().__init__()
        self.model = model

    def forward(self, tokens: Tensor, step: Tensor, self_kv: list[Tensor], cross: list[Tensor]) -> tuple[Tensor, ...]:
        model = self.model
        w, d = model.embed_tokens.weight, model.arch.decoder_embed_dim
        # A (1, 1) position tensor instead of decode_step's slice: the step is a graph input, not a constant.
        x = embed(tokens, w, d, step.view(1, 1), model.model_config.max_positions)  # (N, 1, D)
        new_kv: list[Tensor] = []
        for i, layer in enumerate(model.decoder_layers):
            past = (self_kv[2 * i], self_kv[2 * i + 1])  # (N, H, t, d)
            x, (k, v) = layer.step(x, past, (cross[3 * i], cross[3 * i + 1]), cross[3 * i + 2])
            new_kv += [k, v]  # (N, H, t + 1, d)
        x = model.decoder_norm(x[:, 0])  # (N, D)
        logits = F.linear(x, w[:, :d])  # (N, V), tied to the decoder's embedding slice
        top_logprobs, top_ids = torch.topk(F.log_softmax(logits, dim=-1), top_k(logits.size(-1)), dim=-1)
        return (logits, top_logprobs, top_ids, *new_kv)


# --- export ---------------------------------------------------------------------------------------------------


def _example_inputs(model: Transformer, encoder: EncoderGraph) -> tuple[Tensor, list[Tensor], list[Tensor]]:
    gen = torch.Generator().manual_seed(0)
    cfg, n = model.model_config, _EXAMPLE_BATCH
    src = torch.randint(4, cfg.vocab_size, (n, _EXAMPLE_SRC_LEN), generator=gen)
    src[1, -1] = cfg.pad_id  # a padded row, so the mask path is exercised
    with torch.no_grad():
        cross = list(encoder(src))
    self_kv = []
    for genes in model.arch.decoder_layers:
        shape = (n, genes.self_heads, _EXAMPLE_PAST, model.qkv_dim // genes.self_heads)
        self_kv += [torch.randn(shape, generator=gen), torch.randn(shape, generator=gen)]
    return src, self_kv, cross


def _export(module: nn.Module, args: tuple, path: Path, names: dict[str, list[str]], shapes: Any) -> float:
    start = time.perf_counter()
    with warnings.catch_warnings():
        # Reusing one Dim across inputs (all batch axes, say) is intended; the exporter warns about it.
        warnings.filterwarnings("ignore", message=".*axis name.*will not be used.*")
        warnings.filterwarnings("ignore", message=".*LeafSpec.*", category=FutureWarning)  # torch-internal
        torch.onnx.export(
            module,
            args,
            str(path),
            dynamo=True,
            external_data=False,
            input_names=names["inputs"],
            output_names=names["outputs"],
            dynamic_shapes=shapes,
            verbose=False,
        )
    return time.perf_counter() - start


@torch.no_grad()
def export_onnx(model: Transformer, out_dir: str | Path) -> dict[str, Path]:
    """Write `encoder.onnx`, `decoder.onnx` and `export.json` (names, arch, model config, export seconds) to
    `out_dir`; returns their paths under keys "encoder", "decoder", "meta". Exports a float32 CPU copy in eval
    mode; `model` is left untouched."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    model = copy.deepcopy(model).float().cpu().eval()
    arch, cfg = model.arch, model.model_config
    depth, names = arch.decoder_depth, signature(arch.decoder_depth)
    encoder, decoder = EncoderGraph(model).eval(), DecoderStepGraph(model).eval()
    src, self_kv, cross = _example_inputs(model, encoder)
    tokens, step = torch.full((_EXAMPLE_BATCH, 1), 4), torch.tensor(_EXAMPLE_PAST)
    batch = Dim("batch", min=1)
    src_len = Dim("src_len", min=1, max=cfg.max_positions)
    past = Dim("past", min=0, max=cfg.max_positions - 1)
    mems = [Dim(f"mem_len_{i}", min=1) for i in range(depth)]
    self_shapes = [{0: batch, 2: past}] * (2 * depth)
    cross_shapes = [s for i in range(depth) for s in ({0: batch, 2: mems[i]},) * 2 + ({0: batch, 3: mems[i]},)]

    paths = {"encoder": out_dir / ENCODER_FILE, "decoder": out_dir / DECODER_FILE, "meta": out_dir / META_FILE}
    seconds = {
        "encoder": _export(encoder, (src,), paths["encoder"], names["encoder"], ({0: batch, 1: src_len},)),
        "decoder": _export(
            decoder,
            (tokens, step, self_kv, cross),
            paths["decoder"],
            names["decoder"],
            ({0: batch}, None, self_shapes, cross_shapes),
        ),
    }
    log.info("exported %s in %.1fs (encoder) + %.1fs (decoder)", arch.arch_id(), seconds["encoder"], seconds["decoder"])
    meta = {
        "format": ONNX_FORMAT,
        "builder": "dynamo",  # hat_engine.runtime.onnx_graph.build_onnx writes "onnx-graph"
        "arch": arch.to_dict(),
        "model_config": cfg.to_dict(),
        "qkv_dim": model.qkv_dim,
        "files": {"encoder": ENCODER_FILE, "decoder": DECODER_FILE},
        "signature": names,
        "export_seconds": {k: round(v, 2) for k, v in seconds.items()},
        "torch_version": torch.__version__,
    }
    meta["shared"] = share_initializers(paths["meta"].parent, meta["files"])
    paths["meta"].write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")
    return paths


# --- int8 -----------------------------------------------------------------------------------------------------


def quantize_int8(onnx_path: str | Path, out_path: str | Path) -> Path:
    """Dynamic int8 quantisation (int8 weights, activations quantised on the fly) of one graph."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    out_path = Path(out_path)
    quiet = _QuantizerChatter()
    logging.getLogger().addFilter(quiet)  # the quantizer logs on the root logger: dozens of lines per graph
    try:
        quantize_dynamic(Path(onnx_path), out_path, weight_type=QuantType.QInt8)
    finally:
        logging.getLogger().removeFilter(quiet)
    return out_path


class _QuantizerChatter(logging.Filter):
    """Drops onnxruntime.quantization's INFO/WARNING lines ("Quantization parameters for tensor ... not
    specified", "consider pre-processing"): advice for static quantisation, not about our dynamic int8."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not ("onnxruntime" in record.pathname and "quantization" in record.pathname)


SHARE_MIN_BYTES = 1024  # smaller tensors (scales, zero points, shapes) are not worth a file


def share_initializers(out_dir: str | Path, files: dict[str, str]) -> dict[str, str]:
    """Initializers the encoder and decoder graphs of `files` both hold under one name, byte for byte (the
    position table, and the token table, where E = D; fp32 or int8), each written once more to a `.npy` beside
    them: `OrtTranslator` hands that one copy to both sessions (`SessionOptions.add_initializer`) instead of each
    holding its own. The graphs keep theirs, so each stays a whole model. Returns name -> file name (the
    export's "shared" / "shared_int8")."""
    import numpy as np
    import onnx
    from onnx import numpy_helper

    out_dir = Path(out_dir)
    graphs = {part: onnx.load(str(out_dir / files[part])) for part in ("encoder", "decoder")}
    decoder = {t.name: t for t in graphs["decoder"].graph.initializer}
    prefix = Path(files["encoder"]).name.removeprefix("encoder").removesuffix(".onnx")  # "" or ".int8"
    shared: dict[str, str] = {}
    key = lambda t: (t.data_type, list(t.dims), t.raw_data)  # noqa: E731
    for tensor in graphs["encoder"].graph.initializer:
        other = decoder.get(tensor.name)
        if other is None or len(tensor.raw_data) < SHARE_MIN_BYTES or key(tensor) != key(other):
            continue
        name = f"shared{prefix}.{len(shared)}.npy"
        np.save(out_dir / name, numpy_helper.to_array(tensor))
        shared[tensor.name] = name
    return shared


def quantize_export(out_dir: str | Path) -> dict[str, Path]:
    """Quantise both graphs of an export to `encoder.int8.onnx` / `decoder.int8.onnx` and list them in its
    `export.json` under "files_int8"; returns the two new paths."""
    out_dir = Path(out_dir)
    meta_path = out_dir / META_FILE
    meta = json.loads(meta_path.read_text(encoding="utf-8"))
    files = {part: name.replace(".onnx", ".int8.onnx") for part, name in meta["files"].items()}
    paths = {part: quantize_int8(out_dir / meta["files"][part], out_dir / name) for part, name in files.items()}
    meta["files_int8"] = files
    meta["shared_int8"] = share_initializers(out_dir, files)
    meta_path.write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")
    return paths
