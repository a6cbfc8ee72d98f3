"""Training the SuperTransformer, fine-tuning SubTransformers, and scoring translations."""
