"""The model: the static Transformer, the elastic SuperTransformer and decoding."""
