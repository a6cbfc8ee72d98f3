"""Greedy and beam search over the ONNX graphs of `hat_engine.runtime.onnx_graph`, on ONNX Runtime, without torch.

`OrtTranslator` offers `model_config` and `stepper` (an `OrtStepper`), the interface the numpy search of
`hat_engine.model.decoding` drives, so the very same search code runs on both back ends and the outputs are
token-identical up to float rounding in the logits. The encoder graph yields every layer's cross-attention K/V
once; beam search expands them to N * beam rows once and never reorders them again. The self-attention cache is
one numpy buffer per layer and kind, bound (IO binding) as both the decoder's past and present, so each step
writes its one new position in place; the buffers double when full. A beam reorder moves no cache row that it
can relabel: only a second child of one hypothesis gets a copy of its parent's positions. Nothing here imports
torch: an ONNX-serving process stays free of it.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnxruntime as ort

from hat_engine.config import ArchConfig, ModelConfig
from hat_engine.errors import CheckpointError
from hat_engine.model.decoding import as_tokens, beam_search, greedy_search
from hat_engine.runtime.onnx_signature import META_FILE, ONNX_FORMAT, cross_names, self_names, top_k

Cache = dict[str, np.ndarray]


def session_options(threads: int) -> ort.SessionOptions:
    """Explicit, reproducible settings: `threads` intra-op threads, sequential execution, all graph rewrites.

    Idle intra-op threads do not spin. Between two decoder steps the beam search runs in Python; a spinning
    worker thread takes a core from it. Measured on the 2-core dev VM, 2 threads, the `@48.9ms` entry:
    p50 63-71 ms with spinning, 40-48 ms without, 47-49 ms at 1 thread."""
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
    opts.inter_op_num_threads = 1
    opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    # No memory arena: it keeps a large batch's activations for good (~20 MB per serving worker after batches of
    # 8 texts). Without it, interleaved reference workloads on a quiet AVX-512 BF16 EPYC, 1 thread, took
    # 0.90x / 1.01x (largest, int8 / fp32) and 1.02x / 1.04x (smallest) the time with it: within this VM's noise.
    opts.enable_cpu_mem_arena = False
    return opts


@dataclass
class OrtEncoderOut:
    """The encoder graph's outputs: cross-attention K/V and mask per decoder layer, keyed as in the torch cache."""

    cross: dict[str, np.ndarray]  # cross_k.i, cross_v.i (N, H, c*S, d); cross_bias.i (N, 1, 1, c*S)

    def index_select(self, rows: np.ndarray) -> OrtEncoderOut:
        """Rows of the batch in `rows` (e.g. each sentence repeated `beam` times)."""
        return OrtEncoderOut({key: value[rows] for key, value in self.cross.items()})


class OrtStepper:
    """`Stepper` over the decoder-step graph for the source rows `src[rows]` (all of them when `rows` is None):
    the encoder runs once on entering; each step returns the candidates the graph ranked (log-softmax and TopK
    inside it), never the vocabulary-wide logits.

    Every input and output stays bound to one numpy array for the whole search: the cross-attention tensors, the
    token and step (rewritten in place), the two candidate outputs, and per layer a self K and V buffer of
    `capacity` positions that is both past and present, so the graph appends in place. The buffers of layers
    with equal head counts are views of one array (their K and V, rows, heads, capacity, head size). A full cache
    is copied into one of twice the capacity.

    The search's rows (its hypotheses, in its order) live in the graph's rows `physical[row]`: a reorder points
    each new hypothesis at its parent's row, and only where a parent has more than one child does a child get a
    copy of the parent's filled positions, into a row of its own sentence that no hypothesis keeps. Every row is
    computed on its own (int8's activation scale is over the whole batch, whatever its order), so the graph's
    results do not depend on where a hypothesis lives."""

    FIRST_CAPACITY = 16  # positions; a reference-workload sentence's ~30 steps double it once

    def __init__(self, translator: OrtTranslator, src: np.ndarray, rows: np.ndarray | None):
        self.translator, self._src, self._rows = translator, src, rows
        self._binding: ort.IOBinding | None = None
        # self_k.i / self_v.i (N, H, capacity, d) in the graph's row order, views of _stores; `filled` positions real
        self.cache: Cache = {}
        self.filled = 0

    def __enter__(self) -> OrtStepper:
        encoder_out = self.translator.encode(self._src)
        self.encoder_out = encoder_out if self._rows is None else encoder_out.index_select(self._rows)
        return self

    def __exit__(self, *exc) -> None:
        self.cache, self.encoder_out, self._binding = {}, None, None

    def _start(self, rows: int, k: int) -> None:
        t = self.translator
        self._binding = t.decoder.io_binding()
        self._tokens, self._step = np.zeros((rows, 1), np.int64), np.zeros((), np.int64)
        self._token_column = self._tokens.reshape(-1)  # a view: the search writes each row's token here
        self.physical = np.arange(rows)  # search row -> graph row
        self._sentence = (np.arange(rows) if self._rows is None else self._rows).tolist()  # graph row -> source
        # The binding reads these arrays in place and does not keep them alive: the stepper does, in _inputs.
        self._inputs = {"tokens": self._tokens, "step": self._step}
        self._inputs |= {name: np.ascontiguousarray(value) for name, value in self.encoder_out.cross.items()}
        for name, value in self._inputs.items():
            self._binding.bind_ortvalue_input(name, ort.OrtValue.ortvalue_from_numpy(value))
        self._bind_top(k)
        self._bind_store(rows, self.FIRST_CAPACITY)

    def _bind_top(self, k: int) -> None:
        """The graph asked for k candidates per row, into output arrays of (rows, k)."""
        rows = len(self._tokens)
        self._inputs["top_k"] = np.array([k], np.int64)
        self._binding.bind_ortvalue_input("top_k", ort.OrtValue.ortvalue_from_numpy(self._inputs["top_k"]))
        self._top = np.zeros((rows, k), np.float32), np.zeros((rows, k), np.int64)
        for name, value in zip(("top_logprobs", "top_ids"), self._top, strict=True):
            self._binding.bind_output(name, "cpu", 0, value.dtype, value.shape, value.ctypes.data)

    def _bind_store(self, rows: int, capacity: int) -> None:
        """Zeroed buffers of `capacity` positions, bound as past and present; the filled positions of the previous
        ones (if any) copied over."""
        t, old = self.translator, self.cache
        groups: dict[int, list[int]] = {}  # head count -> the decoder layers with it
        for i, genes in enumerate(t.arch.decoder_layers):
            groups.setdefault(genes.self_heads, []).append(i)
        self._stores, self.cache, self._capacity = [], {}, capacity
        for heads, layers in groups.items():
            store = np.zeros((2 * len(layers), rows, heads, capacity, t.qkv_dim // heads), np.float32)
            self._stores.append(store)
            for j, i in enumerate(layers):
                self.cache[f"self_k.{i}"], self.cache[f"self_v.{i}"] = store[2 * j], store[2 * j + 1]
        for name, new_name in zip(t.self_cache_names, t.new_self_names, strict=True):
            view = self.cache[name]
            if name in old:
                view[:, :, : self.filled] = old[name][:, :, : self.filled]
            self._binding.bind_ortvalue_input(name, ort.OrtValue.ortvalue_from_numpy(view))
            self._binding.bind_output(new_name, "cpu", 0, view.dtype, view.shape, view.ctypes.data)

    def __call__(self, tokens: np.ndarray, step: int, k: int) -> tuple[np.ndarray, np.ndarray]:
        t = self.translator
        t.check_step(step, k)
        if self._binding is None:
            self._start(len(tokens), k)
        elif k != self._top[0].shape[1]:
            self._bind_top(k)
        if step >= self._capacity:
            self._bind_store(len(tokens), min(2 * self._capacity, t.model_config.max_positions))
        self._token_column[self.physical] = tokens[:, step]
        self._step[()] = step
        t.decoder.run_with_iobinding(self._binding)
        self.filled = step + 1
        return self._top[0].take(self.physical, axis=0), self._top[1].take(self.physical, axis=0)  # in search order

    def reorder(self, order: np.ndarray) -> None:
        # Rows only move between beams of one sentence, which share cross-attention K/V: only self K/V move. Plain
        # Python over a few dozen rows at most: cheaper here than numpy's set routines.
        physical = self.physical.take(order)  # the graph row each new hypothesis goes on from
        parents = physical.tolist()
        if len(set(parents)) == len(parents):  # no hypothesis has two children: relabelling is all
            self.physical = physical
            return
        kept: set[int] = set()  # rows their parent's first child keeps
        second: list[int] = []  # the other children: each needs a row of its own
        for child, row in enumerate(parents):
            if row in kept:
                second.append(child)
            else:
                kept.add(row)
        if second:
            free = [row for row in range(len(parents)) if row not in kept]  # rows no hypothesis goes on from
            n = self.filled
            for child in second:
                row = next(r for r in free if self._sentence[r] == self._sentence[parents[child]])
                free.remove(row)
                for store in self._stores:
                    store[:, row, :, :n] = store[:, parents[child], :, :n]
                parents[child] = row
        self.physical = np.array(parents)


class OrtTranslator:
    """Two ONNX Runtime sessions (encoder, decoder step) plus greedy and beam search with the semantics of
    `hat_engine.model.decoding`. Build it with `OrtTranslator.load(export_dir)`."""

    def __init__(
        self,
        encoder_path: str | Path,
        decoder_path: str | Path,
        arch: ArchConfig,
        model_config: ModelConfig,
        qkv_dim: int,
        threads: int = 1,
        providers: Sequence[str] = ("CPUExecutionProvider",),
        shared: dict[str, str | Path] | None = None,
    ):
        self.arch, self.model_config, self.qkv_dim = arch, model_config, qkv_dim
        opts = session_options(threads)
        # Tensors both graphs hold (name -> .npy): one copy, owned here, serves both sessions in place of theirs.
        self._shared = {name: ort.OrtValue.ortvalue_from_numpy(np.load(path)) for name, path in (shared or {}).items()}
        for name, value in self._shared.items():
            opts.add_initializer(name, value)
        self.encoder = ort.InferenceSession(str(encoder_path), opts, providers=list(providers))
        self.decoder = ort.InferenceSession(str(decoder_path), opts, providers=list(providers))
        depth = arch.decoder_depth
        self._cross_names, self.self_cache_names = cross_names(depth), self_names(depth)
        self.new_self_names = self_names(depth, "new_")
        self.top_k = top_k(model_config.vocab_size)

    @classmethod
    def load(cls, export_dir: str | Path, threads: int = 1, int8: bool = False, **kwargs) -> OrtTranslator:
        """The graphs written by `onnx_graph.build_onnx` (the int8 ones of `quantize_export` when `int8`)."""
        export_dir = Path(export_dir)
        meta_path = export_dir / META_FILE
        if not meta_path.is_file():
            raise CheckpointError(f"{meta_path} does not exist; run hat_engine.runtime.onnx_graph.build_onnx first")
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
        if meta.get("format") != ONNX_FORMAT:
            raise CheckpointError(f"{meta_path} has format {meta.get('format')!r}, expected {ONNX_FORMAT!r}")
        key = "files_int8" if int8 else "files"
        if key not in meta:
            raise CheckpointError(f"{meta_path} lists no int8 graphs; run onnx_export.quantize_export first")
        files = meta[key]
        shared = {name: export_dir / file for name, file in meta.get("shared_int8" if int8 else "shared", {}).items()}
        arch, cfg = ArchConfig.from_dict(meta["arch"]), ModelConfig.from_dict(meta["model_config"])
        return cls(export_dir / files["encoder"], export_dir / files["decoder"], arch, cfg, meta["qkv_dim"], threads,
                   shared=shared, **kwargs)  # fmt: skip

    # --- the model interface hat_engine.model.decoding uses ---------------------------------------------------

    def stepper(self, src_tokens: np.ndarray, rows: np.ndarray | None, use_cache: bool = True) -> OrtStepper:
        if not use_cache:
            raise ValueError("the ONNX decoder graph always steps with its cache; use_cache=False is torch's path")
        return OrtStepper(self, as_tokens(src_tokens), rows)

    def encode(self, src_tokens) -> OrtEncoderOut:
        """src_tokens (N, S) -> every decoder layer's cross-attention K/V and mask."""
        outputs = self.encoder.run(self._cross_names, {"src_tokens": as_tokens(src_tokens)})
        return OrtEncoderOut(dict(zip(self._cross_names, outputs, strict=True)))

    def check_step(self, step: int, k: int) -> None:
        """A decoder step the graph can run: a position below max_positions, 0..top_k candidates per row."""
        if step >= self.model_config.max_positions:
            raise ValueError(f"decoder step {step} reaches max_positions={self.model_config.max_positions}")
        if not 0 <= k <= self.top_k:
            raise ValueError(f"{k} candidates per row asked; the decoder graph ranks 0 to {self.top_k}")

    def empty_cache(self, batch: int) -> Cache:
        """Self-attention K/V with zero cached positions: (N, H, 0, d) per layer; each `decode_step` returns the
        cache grown by one position."""
        cache: Cache = {}
        for i, genes in enumerate(self.arch.decoder_layers):
            shape = (batch, genes.self_heads, 0, self.qkv_dim // genes.self_heads)
            cache[f"self_k.{i}"], cache[f"self_v.{i}"] = np.zeros(shape, np.float32), np.zeros(shape, np.float32)
        return cache

    def decode_step(
        self, tokens, encoder_out: OrtEncoderOut, cache: Cache | None = None, step: int = 0, top: int = 0
    ) -> tuple[np.ndarray | tuple[np.ndarray, np.ndarray], Cache]:
        """Feed the token at position `step`: tokens (N, 1) -> (logits (N, V), cache with the new self K/V); with
        `top` > 0, instead of the logits each row's `top` likeliest tokens (log-probs, ids), ranked in the graph.
        Returns a new cache and leaves `cache` as it was (ONNX Runtime writes fresh outputs): the plain way to
        call the graph, for tests and benchmarks; `stepper` appends in place."""
        self.check_step(step, top)
        cache = dict(cache) if cache else {}
        if "self_k.0" not in cache:
            cache.update(self.empty_cache(len(tokens)))
            cache.update(encoder_out.cross)
        # top_k is a graph input either way: with logits only, the graph ranks one candidate nobody reads.
        feed: dict[str, np.ndarray] = {"tokens": as_tokens(tokens), "step": np.array(step, dtype=np.int64),
                                       "top_k": np.array([top or 1], dtype=np.int64)}  # fmt: skip
        for name in (*self.self_cache_names, *self._cross_names):
            feed[name] = np.ascontiguousarray(cache[name])
        heads = ["top_logprobs", "top_ids"] if top else ["logits"]
        out = self.decoder.run([*heads, *self.new_self_names], feed)
        cache.update(zip(self.self_cache_names, out[len(heads) :], strict=True))
        return (tuple(out[:2]) if top else out[0]), cache

    # --- search -------------------------------------------------------------------------------------------------

    def beam_search(
        self, src_tokens, beam: int = 4, length_penalty: float = 1.0, max_len_a: float = 1.2, max_len_b: int = 10
    ) -> list[list[int]]:
        """Beam search over src_tokens (B, S) -> one token list per sentence (no BOS/EOS), as
        `hat_engine.model.decoding.beam_search`."""
        return beam_search(self, src_tokens, beam, length_penalty, max_len_a, max_len_b)

    def greedy_search(self, src_tokens, max_len_a: float = 1.2, max_len_b: int = 10) -> list[list[int]]:
        """Arg-max decoding of src_tokens (B, S), as `hat_engine.model.decoding.greedy_search`."""
        return greedy_search(self, src_tokens, max_len_a, max_len_b)
