"""The one way a SubTransformer's runner is chosen and loaded for a format: the static torch `Transformer`
("torch") or ONNX Runtime ("onnx", "onnx-int8"), with the thread count the caller measures or serves with."""

from __future__ import annotations

from pathlib import Path

ONNX_FORMATS = ("onnx", "onnx-int8")  # the formats ONNX Runtime serves (graphs of `onnx_signature.ONNX_FORMAT`)
FORMATS = (*ONNX_FORMATS, "torch")


def load_runner(folder: Path | None, fmt: str, threads: int, model=None):
    """The runner of an artifact in `folder` (model.pt, or the ONNX graphs). For "torch", `model` (a torch module
    already in memory) is used when given; torch's intra-op threads are set to `threads` (ONNX Runtime gets its
    own)."""
    if fmt not in FORMATS:
        raise ValueError(f"unknown artifact format {fmt!r}: use one of {FORMATS}")
    if fmt == "torch":  # torch is imported only here: an ONNX runner's process stays free of it
        import torch

        from hat_engine.model.transformer import Transformer

        torch.set_num_threads(threads)
        return (model if model is not None else Transformer.load(Path(folder) / "model.pt")).eval()
    from hat_engine.runtime.ort_decoding import OrtTranslator  # onnxruntime only when an ONNX artifact runs

    return OrtTranslator.load(folder, threads=threads, int8=fmt == "onnx-int8")
