"""Latency: timing SubTransformers on a host, the measured dataset, and the predictor fitted on it."""
