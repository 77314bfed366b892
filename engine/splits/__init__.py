"""Splits: a dataset cut by rows into materialized datasets (:mod:`.static`), or streamed to
``n`` consumers from one execution (:mod:`.streaming`), which may live in other processes
(:mod:`.transport`) or on other nodes of a Ray cluster (:mod:`.transport_ray`)."""

from engine.splits.static import (
    split,
    split_at_indices,
    split_proportionately,
    train_test_split,
)
from engine.splits.streaming import DataIterator, streaming_split

__all__ = ["DataIterator", "split", "split_at_indices", "split_proportionately",
           "streaming_split", "train_test_split"]
