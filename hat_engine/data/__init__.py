"""The real English→German corpus: sources, cleaning, the fixed split, the tokenizer, the manifest."""

from hat_engine.data.corpus import BuildOptions, BuildResult, build_corpus, load_manifest

__all__ = ["BuildOptions", "BuildResult", "build_corpus", "load_manifest"]
