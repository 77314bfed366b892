"""Timing of one pass over ``iter_batches``: where the consumer waited, and why.

The numbers Ray Data's iterator stats give (``DataIterator.stats()``): the time the user's
thread was blocked waiting for a batch, per batch and in total, the time to the first
batch, the time spent in user code between batches, and what the producing thread spent
fetching blocks, building batches, formatting them and collating them. A leaf module.
"""

from __future__ import annotations

from dataclasses import dataclass, field


def fmt_seconds(seconds: float) -> str:
    """``seconds`` in the unit that reads best (s, ms or us)."""
    if seconds >= 1:
        return f"{seconds:.2f}s"
    if seconds >= 1e-3:
        return f"{seconds * 1e3:.2f}ms"
    return f"{seconds * 1e6:.2f}us"


@dataclass
class Timer:
    """Sum, count, min and max of the durations added to it."""

    total: float = 0.0
    count: int = 0
    min: float = float("inf")
    max: float = 0.0

    def add(self, seconds: float) -> None:
        self.total += seconds
        self.count += 1
        if seconds < self.min:  # comparisons: a call of min()/max() per batch adds up
            self.min = seconds
        if seconds > self.max:
            self.max = seconds

    def avg(self) -> float:
        return self.total / self.count if self.count else 0.0

    def line(self, label: str) -> str:
        return (f"    * {label}: {fmt_seconds(self.min)} min, {fmt_seconds(self.max)} max, "
                f"{fmt_seconds(self.avg())} avg, {fmt_seconds(self.total)} total\n")


@dataclass
class IterStats:
    """The timings of one pass (the producing thread's and the consumer's).

    ``blocked`` has one entry per batch: how long the consumer waited for it.
    """

    get: Timer = field(default_factory=Timer)  # reading (mapping) blocks
    next: Timer = field(default_factory=Timer)  # slicing / shuffling into batches
    format: Timer = field(default_factory=Timer)  # converting to the batch format
    collate: Timer = field(default_factory=Timer)  # collate_fn (tensors)
    finalize: Timer = field(default_factory=Timer)  # host -> device transfer
    blocked: Timer = field(default_factory=Timer)
    user: Timer = field(default_factory=Timer)
    first_batch_s: float | None = None
    total_s: float = 0.0
    batches: int = 0
    rows: int = 0
    wait: Timer = field(default_factory=Timer)  # waiting for the execution's next block

    @property
    def blocked_s(self) -> float:
        """Total time the consumer waited for data."""
        return self.blocked.total

    def to_string(self) -> str:
        """The breakdown, in the words of Ray Data's iterator stats."""
        if not self.batches and not self.total_s:
            return ""
        out = "\nDataset iterator time breakdown:\n"
        out += f"* Total time overall: {fmt_seconds(self.total_s)}\n"
        out += ("    * Total time user thread is blocked by iter_batches: "
                f"{fmt_seconds(self.blocked.total)}\n")
        if self.first_batch_s is not None:
            out += ("    * Total time spent waiting for the first batch after starting "
                    f"iteration: {fmt_seconds(self.first_batch_s)}\n")
        out += f"    * Total execution time for user thread: {fmt_seconds(self.user.total)}\n"
        if self.blocked.count:
            out += self.blocked.line(f"User thread blocked per batch ({self.blocked.count} "
                                     "batches)")
        out += "* Batch iteration time breakdown (summed across prefetch threads):\n"
        for timer, label in ((self.wait, "In get RefBundles"), (self.get, "In get blocks"),
                             (self.next, "In batch creation"),
                             (self.format, "In batch formatting"),
                             (self.collate, "In collate_fn"),
                             (self.finalize, "In host->device transfer")):
            if timer.count:
                out += timer.line(label)
        return out

    def __str__(self) -> str:
        return self.to_string()
