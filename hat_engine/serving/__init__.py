"""Serving policy: choosing a catalog entry, the SLA guard, the translator pool, the engine."""
