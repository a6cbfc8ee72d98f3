"""The evolutionary search over SubTransformers and its validation-loss fitness."""
