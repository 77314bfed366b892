"""An example pipeline on the embedded local cluster (what `make run` runs)."""

import numpy as np

import engine as ed


class Normalize:
    """A callable class: built once per actor, then called for each batch."""

    def __init__(self, scale: float) -> None:
        self.scale = scale

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        return {"id": batch["id"], "score": batch["squared"] / self.scale}


def main() -> None:
    n = 1_000_000
    ds = (
        ed.range(n)
        .map_batches(lambda b: {"id": b["id"], "squared": b["id"].astype(np.float64) ** 2})
        .map_batches(Normalize, fn_constructor_args=(float(n) ** 2,), concurrency=2,
                     batch_size=50_000)
        .filter(expr=ed.col("score") > 0.25)
    )
    materialized = ds.materialize()
    print(f"rows with score > 0.25: {materialized.count()} of {n}")
    print(f"mean score: {materialized.mean('score'):.4f}")
    print(materialized.take(3))
    print(materialized.stats())


if __name__ == "__main__":
    main()
