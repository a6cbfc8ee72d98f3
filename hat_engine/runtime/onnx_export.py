"""int8 versions of the graphs `hat_engine.runtime.onnx_graph.build_onnx` writes, and the tensors both graphs of an
export share.

Until format 4 this module also traced the model with torch's dynamo exporter, as a second builder of the same
graphs. The format-4 decoder step appends to its cache in place (ONNX Runtime's GroupQueryAttention over a
buffer bound as both past and present), which a traced torch step cannot express, so `onnx_graph` is the one
builder; its tests compare every output with the torch model.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

from hat_engine.runtime.onnx_signature import META_FILE


def quantize_int8(onnx_path: str | Path, out_path: str | Path) -> Path:
    """Dynamic int8 quantisation (int8 weights, activations quantised on the fly) of one graph. ONNX's shape
    inference knows no types past a contrib op (GroupQueryAttention), so the quantiser is told that untyped
    tensors are float32, which every activation of these graphs is."""
    from onnx import TensorProto
    from onnxruntime.quantization import QuantType, quantize_dynamic

    out_path = Path(out_path)
    quiet = _QuantizerChatter()
    logging.getLogger().addFilter(quiet)  # the quantizer logs on the root logger: dozens of lines per graph
    try:
        quantize_dynamic(Path(onnx_path), out_path, weight_type=QuantType.QInt8,
                         extra_options={"DefaultTensorType": TensorProto.FLOAT})  # fmt: skip
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
