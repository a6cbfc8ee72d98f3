"""`hat data tokenizer`: a SentencePiece model trained on a training config's mixture of the built corpus."""

import argparse
import json
import time
from pathlib import Path


def register(commands: argparse._SubParsersAction) -> None:
    p = commands.add_parser("tokenizer", help="train a SentencePiece model on a training mixture of the corpus")
    p.add_argument("--config", type=Path, required=True, help="training YAML whose data_dir and mixture to use")
    p.add_argument("--vocab-size", type=int, default=8000)
    p.add_argument("--model-type", choices=("unigram", "bpe"), default="unigram")
    p.add_argument("--out", type=Path, required=True, help="where to write the model (e.g. runs/spm-8k.model)")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from hat_engine.data.batching import mixture_sentences
    from hat_engine.data.tokenizer import Tokenizer, train_sentencepiece
    from hat_engine.train.config import TrainConfig

    if not args.config.is_file():
        raise SystemExit(f"hat: error: --config {args.config} does not exist")
    if args.vocab_size < 100:
        raise SystemExit(f"hat: error: --vocab-size {args.vocab_size}: use at least 100")
    cfg = TrainConfig.from_yaml(args.config.read_text())
    started = time.time()
    sentences = mixture_sentences(Path(cfg.data_dir), cfg.mixture, cfg.seed)
    print(f"training {args.vocab_size} pieces ({args.model_type}) on {len(sentences):,} sentences of {cfg.mixture}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    train_sentencepiece(sentences, args.out, args.vocab_size, args.model_type)
    tokenizer = Tokenizer(args.out)
    seconds = round(time.time() - started, 1)
    record = {"vocab_size": tokenizer.vocab_size, "model_type": args.model_type, "mixture": cfg.mixture,
              "data_dir": cfg.data_dir, "sentences": len(sentences), "seconds": seconds}  # fmt: skip
    args.out.with_suffix(".json").write_text(json.dumps(record, indent=2) + "\n")
    print(json.dumps(record))
    return 0
