"""The names an ONNX export is read by: its metadata file and format, its graph files, and the inputs and
outputs of the encoder and decoder-step graphs. No torch here: the ONNX Runtime side reads these too."""

from hat_engine.model.decoding import MAX_BEAM, candidates_asked

# 2: the decoder step also yields its `top_k` most likely next tokens (log-probabilities, ids), so a beam search
# reads a few numbers per row instead of the whole vocabulary.
# 3: both graphs name the position table "positions" and, where E = D, the token table "embed_tokens"; the tensors
# they hold byte for byte alike lie once more in `.npy` files ("shared" / "shared_int8"), loaded once for both.
# 4: the decoder's self-attention is ONNX Runtime's GroupQueryAttention over a K/V buffer that may hold more
# positions than are filled (`capacity`): a caller binding one buffer as both past and present has each step
# write its new position in place instead of copying the whole cache; the encoder yields each layer's additive
# cross-attention bias (`cross_bias`, 0 / -inf) instead of a bool mask, so no step recomputes it.
# 5: the decoder ranks as many candidates per row as its `top_k` input asks, not always the widest beam's.
ONNX_FORMAT = "hat_engine.onnx/5"
META_FILE = "export.json"
ENCODER_FILE, DECODER_FILE = "encoder.onnx", "decoder.onnx"


def cross_names(depth: int) -> list[str]:
    """Encoder outputs = decoder inputs holding the cross-attention cache, layer by layer."""
    return [f"{kind}.{i}" for i in range(depth) for kind in ("cross_k", "cross_v", "cross_bias")]


def self_names(depth: int, prefix: str = "") -> list[str]:
    """The self-attention cache, layer by layer (`prefix="new_"` for the decoder's outputs)."""
    return [f"{prefix}{kind}.{i}" for i in range(depth) for kind in ("self_k", "self_v")]


def top_k(vocab_size: int) -> int:
    """The most candidates per row a search asks of the decoder graph, for a vocabulary of `vocab_size`."""
    return candidates_asked(2 * MAX_BEAM, vocab_size)  # the widest beam's


def signature(depth: int) -> dict[str, dict[str, list[str]]]:
    """Input and output names of both graphs for a decoder of `depth` layers."""
    return {
        "encoder": {"inputs": ["src_tokens"], "outputs": cross_names(depth)},
        "decoder": {
            "inputs": ["tokens", "step", "top_k", *self_names(depth), *cross_names(depth)],
            "outputs": ["logits", "top_logprobs", "top_ids", *self_names(depth, "new_")],
        },
    }
