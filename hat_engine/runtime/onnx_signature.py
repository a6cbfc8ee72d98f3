"""The names an ONNX export is read by: its metadata file and format, its graph files, and the inputs and
outputs of the encoder and decoder-step graphs. No torch here: the ONNX Runtime side reads these too."""

ONNX_FORMAT = "hat_engine.onnx/1"
META_FILE = "export.json"
ENCODER_FILE, DECODER_FILE = "encoder.onnx", "decoder.onnx"


def cross_names(depth: int) -> list[str]:
    """Encoder outputs = decoder inputs holding the cross-attention cache, layer by layer."""
    return [f"{kind}.{i}" for i in range(depth) for kind in ("cross_k", "cross_v", "cross_mask")]


def self_names(depth: int, prefix: str = "") -> list[str]:
    """The self-attention cache, layer by layer (`prefix="new_"` for the decoder's outputs)."""
    return [f"{prefix}{kind}.{i}" for i in range(depth) for kind in ("self_k", "self_v")]


def signature(depth: int) -> dict[str, dict[str, list[str]]]:
    """Input and output names of both graphs for a decoder of `depth` layers."""
    return {
        "encoder": {"inputs": ["src_tokens"], "outputs": cross_names(depth)},
        "decoder": {
            "inputs": ["tokens", "step", *self_names(depth), *cross_names(depth)],
            "outputs": ["logits", *self_names(depth, "new_")],
        },
    }
