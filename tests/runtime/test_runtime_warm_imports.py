"""What a worker starts with: the cluster's first workers come from the zygote before it
imports pandas and ``pyarrow.dataset`` (a plain read never needs them, and they cost a cold
start most); workers forked later (actors, extra workers) inherit them."""

from __future__ import annotations

import sys

import cloudpickle

cloudpickle.register_pickle_by_value(sys.modules[__name__])

LATE = ("pandas", "pyarrow.dataset")


def loaded(names):
    return [name in sys.modules for name in names]


class Probe:
    pass


def actor_loaded(actor, names):
    return loaded(names)


def value_of(handle):
    (out,) = handle.iter_outputs(timeout=60)
    return out.value


def test_first_workers_start_without_the_late_imports(cluster):
    assert value_of(cluster.submit(loaded, (LATE,))) == [False, False]


def test_a_worker_forked_later_inherits_the_late_imports(cluster):
    actor = cluster.create_actor(Probe)
    assert value_of(actor.submit(actor_loaded, (LATE,))) == [True, True]
