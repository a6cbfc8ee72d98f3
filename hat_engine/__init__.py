"""hat_engine: the library behind hardware-aware translation serving.

HAT (Wang et al., "HAT: Hardware-Aware Transformers for Efficient Natural Language Processing", ACL 2020):
a weight-shared SuperTransformer, SubTransformers extracted from it, latency measured per hardware,
an evolutionary search per latency budget, and a catalog of the winners.

The engine knows nothing of the service or the jobs: it reads no argv, environment or HTTP.
"""

__version__ = "0.1.0"
