"""One joint English/German SentencePiece model (DATA.md): training and a small typed wrapper."""

import io
import logging
from collections.abc import Iterable
from pathlib import Path

import sentencepiece as spm

from hat_engine.errors import DataError

log = logging.getLogger(__name__)

PAD_ID, UNK_ID, BOS_ID, EOS_ID = 0, 1, 2, 3


def train_sentencepiece(
    sentences: Iterable[str], model_path: Path, vocab_size: int = 8000, model_type: str = "unigram"
) -> None:
    """Train on the given sentences and write `model_path`. Deterministic: the input (< 1M sentences) is never
    sampled."""
    buffer = io.BytesIO()
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(sentences),
        model_writer=buffer,
        vocab_size=vocab_size,
        model_type=model_type,
        character_coverage=1.0,
        hard_vocab_limit=False,  # a small custom corpus may not support the full vocabulary
        pad_id=PAD_ID,
        unk_id=UNK_ID,
        bos_id=BOS_ID,
        eos_id=EOS_ID,
        input_sentence_size=1_000_000,
        shuffle_input_sentence=False,
        num_threads=2,
        minloglevel=2,
    )
    model_path.write_bytes(buffer.getvalue())


TOKENIZER_FILE = "spm.model"  # a tokenizer's file name in a corpus folder, beside an exported supernet, in a catalog


def tokenizer_beside(weights: str | Path) -> Path | None:
    """The tokenizer kept beside supernet weights (an export, a catalog), if there is one."""
    beside = Path(weights).parent / TOKENIZER_FILE
    return beside if beside.is_file() else None


class Tokenizer:
    """Text <-> ids with the joint SentencePiece model."""

    def __init__(self, model_path: str | Path):
        path = Path(model_path)
        if not path.is_file():
            raise DataError(f"tokenizer model {path} does not exist; run `hat data build` first")
        self._sp = spm.SentencePieceProcessor()
        try:
            self._sp.load(str(path))
        except (OSError, RuntimeError) as exc:
            raise DataError(f"{path} is not a SentencePiece model ({exc})") from exc
        self.path = path
        self.pad_id, self.unk_id = self._sp.pad_id(), self._sp.unk_id()
        self.bos_id, self.eos_id = self._sp.bos_id(), self._sp.eos_id()

    @property
    def vocab_size(self) -> int:
        return self._sp.get_piece_size()

    def encode(self, text: str | list[str]) -> list[int] | list[list[int]]:
        return self._sp.encode(text)

    def decode(self, ids: list[int] | list[list[int]]) -> str | list[str]:
        return self._sp.decode(ids)

    def pieces(self, text: str) -> list[str]:
        return self._sp.encode(text, out_type=str)
