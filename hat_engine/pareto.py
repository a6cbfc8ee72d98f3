"""The one Pareto front of the product: what no other option beats on both cost (latency) and quality (BLEU)."""

from collections.abc import Callable, Sequence
from typing import TypeVar

T = TypeVar("T")


def pareto_front(items: Sequence[T], cost: Callable[[T], float], quality: Callable[[T], float]) -> list[T]:
    """The items no other item beats, cheapest first: each is strictly better than every cheaper one kept (of
    equal cost, only the best; of exact twins, the first)."""
    front: list[T] = []
    for item in sorted(items, key=lambda i: (cost(i), -quality(i))):
        if not front or quality(item) > quality(front[-1]):
            front.append(item)
    return front
