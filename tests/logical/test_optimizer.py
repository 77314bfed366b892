"""Optimizer rules: FuseMaps, PushDownLimit and PruneUnusedColumns as unit tests over plain
logical operators,
golden ``explain()`` outputs, and a property test (random plans give the same rows with and
without the optimizer)."""

from __future__ import annotations

import functools
import textwrap

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import engine as ed
from engine.context import DataContext
from engine.io.range_datasource import RangeDatasource
from engine.logical import operators as lo
from engine.logical.optimizer import optimize
from engine.logical.plan import LogicalPlan
from engine.logical.rules.fuse_maps import FuseMaps
from engine.logical.rules.prune_columns import PruneUnusedColumns
from engine.logical.rules.push_down_limit import PushDownLimit

# ------------------------------------------------------------------------ helpers


def double(batch):
    return {"id": batch["id"] * 2}


def is_even(row):
    return row["id"] % 2 == 0


def add_one(row):
    return {"id": row["id"] + 1}


def twice(row):
    return [row, row]


class Model:
    def __call__(self, batch):
        return batch


def source() -> lo.LogicalOperator:
    return lo.InputData((), "InputData")


def read() -> lo.Read:
    return lo.Read(RangeDatasource(100))


def batches(up, fn=double, **kw) -> lo.MapBatches:
    return lo.MapBatches(up, fn=fn, udf_name=fn.__name__, **kw)


def actors(up, lo_=2, hi=2) -> lo.MapBatches:
    return lo.MapBatches(up, fn=Model, udf_name="Model",
                         strategy=lo.ComputeStrategy("actors", lo_, hi))


def fuse(op: lo.LogicalOperator) -> lo.LogicalOperator:
    return optimize(LogicalPlan(op), rules=(FuseMaps,)).dag


def push_limit(op: lo.LogicalOperator) -> lo.LogicalOperator:
    return optimize(LogicalPlan(op), rules=(PushDownLimit,)).dag


def chain(op: lo.LogicalOperator) -> list[str]:
    """Operator names from the output back to the source."""
    names = []
    while True:
        names.append(op.name)
        if not op.inputs:
            return names
        op = op.inputs[0]


# ------------------------------------------------------------------------ FuseMaps


def test_task_maps_fuse():
    src = source()
    dag = fuse(lo.MapRows(batches(src), fn=add_one, udf_name="add_one"))
    assert isinstance(dag, lo.FusedMap)
    assert [op.name for op in dag.ops] == ["MapBatches(double)", "Map(add_one)"]
    assert dag.input is src
    assert not dag.compute.is_actors


def test_three_task_maps_fuse_into_one_stage():
    dag = fuse(lo.Filter(lo.MapRows(batches(source()), fn=add_one, udf_name="add_one"),
                         fn=is_even, udf_name="is_even"))
    assert chain(dag) == ["MapBatches(double)->Map(add_one)->Filter(is_even)", "InputData"]


def test_task_map_fuses_into_following_actor_map():
    dag = fuse(actors(batches(source())))
    assert isinstance(dag, lo.FusedMap)
    assert [op.name for op in dag.ops] == ["MapBatches(double)", "MapBatches(Model)"]
    assert dag.compute == lo.ComputeStrategy("actors", 2, 2)


def test_actor_map_does_not_fuse_into_following_task_map():
    dag = fuse(batches(actors(source())))
    assert chain(dag) == ["MapBatches(double)", "MapBatches(Model)", "InputData"]


def test_two_actor_maps_do_not_fuse():
    dag = fuse(actors(actors(source())))
    assert chain(dag) == ["MapBatches(Model)", "MapBatches(Model)", "InputData"]


@pytest.mark.parametrize("up_kw, down_kw", [
    ({"cpus": 1.0}, {"cpus": 0.5}),
    ({"cpus": 2.0}, {"cpus": 1.0}),
    ({"gpus": 0.0}, {"gpus": 1.0}),
])
def test_different_resources_do_not_fuse(up_kw, down_kw):
    dag = fuse(batches(batches(source(), **up_kw), **down_kw))
    assert not isinstance(dag, lo.FusedMap)
    assert not isinstance(dag.inputs[0], lo.FusedMap)


def test_different_task_concurrency_caps_do_not_fuse():
    """Fusing would silently drop the upstream's cap (Ray Data does not fuse them either)."""
    capped = lo.ComputeStrategy("tasks", max_size=1)
    dag = fuse(batches(batches(source(), strategy=capped)))
    assert chain(dag) == ["MapBatches(double)", "MapBatches(double)", "InputData"]
    dag = fuse(batches(batches(source()), strategy=capped))
    assert chain(dag) == ["MapBatches(double)", "MapBatches(double)", "InputData"]


def test_equal_task_concurrency_caps_fuse():
    capped = lo.ComputeStrategy("tasks", max_size=2)
    dag = fuse(batches(batches(source(), strategy=capped), strategy=capped))
    assert isinstance(dag, lo.FusedMap)
    assert dag.compute.max_size == 2


def test_capped_task_map_fuses_into_actor_pool_of_the_same_size():
    dag = fuse(actors(batches(source(), strategy=lo.ComputeStrategy("tasks", max_size=2))))
    assert isinstance(dag, lo.FusedMap)
    dag = fuse(actors(batches(source(), strategy=lo.ComputeStrategy("tasks", max_size=3))))
    assert not isinstance(dag, lo.FusedMap)


@pytest.mark.parametrize("limits, fused", [
    ((None, None), None), ((3, None), 3), ((-1, 0), 0), ((2, 5), 2), ((-1, -1), -1),
    ((None, -1), -1)])
def test_a_fused_stage_keeps_the_strictest_retry_limit(limits, fused):
    """-1 retries forever: it is the loosest limit, never the strictest."""
    up, down = limits
    dag = fuse(batches(batches(source(), max_retries=up), max_retries=down))
    assert isinstance(dag, lo.FusedMap)
    assert dag.max_retries == fused


def test_read_fuses_into_following_task_map():
    dag = fuse(batches(read()))
    assert isinstance(dag, lo.FusedMap)
    assert [op.name for op in dag.ops] == ["ReadRange", "MapBatches(double)"]
    assert dag.inputs == ()  # a fused read is a source


def test_read_does_not_fuse_into_actor_map_or_other_resources():
    assert chain(fuse(actors(read()))) == ["MapBatches(Model)", "ReadRange"]
    assert chain(fuse(batches(read(), cpus=0.5))) == ["MapBatches(double)", "ReadRange"]
    # ... nor does a read fused with a task map go on into an actor pool
    dag = fuse(actors(batches(read())))
    assert chain(dag) == ["MapBatches(Model)", "ReadRange->MapBatches(double)"]


def test_maps_do_not_fuse_across_a_limit():
    dag = fuse(batches(lo.Limit(batches(source()), 5)))
    assert chain(dag) == ["MapBatches(double)", "Limit[5]", "MapBatches(double)", "InputData"]


def test_fusion_does_not_mutate_the_input_plan():
    original = batches(batches(source()))
    before = LogicalPlan(original).describe()
    fuse(original)
    assert LogicalPlan(original).describe() == before


def test_disabled_rule_is_skipped():
    plan = LogicalPlan(batches(batches(source())))
    assert optimize(plan, frozenset({"FuseMaps"})).describe() == plan.describe()


# ------------------------------------------------------------------------ PushDownLimit


def test_limit_pushed_through_map():
    dag = push_limit(lo.Limit(lo.MapRows(read(), fn=add_one, udf_name="add_one"), 5))
    assert chain(dag) == ["Map(add_one)", "Limit[5]", "ReadRange"]


def test_limit_pushed_through_select():
    dag = push_limit(lo.Limit(lo.Project(source(), select=("id",)), 5))
    assert chain(dag) == ["Project(select id)", "Limit[5]", "InputData"]


def test_limit_pushed_through_several_row_preserving_maps():
    dag = push_limit(lo.Limit(lo.Project(lo.MapRows(source(), fn=add_one, udf_name="add_one"),
                                         select=("id",)), 3))
    assert chain(dag) == ["Project(select id)", "Map(add_one)", "Limit[3]", "InputData"]


@pytest.mark.parametrize("outer, inner", [(3, 10), (10, 3), (4, 4)])
def test_adjacent_limits_merge(outer, inner):
    dag = push_limit(lo.Limit(lo.Limit(source(), inner), outer))
    assert chain(dag) == [f"Limit[{min(outer, inner)}]", "InputData"]


def test_limits_merge_after_moving_through_a_map():
    dag = push_limit(lo.Limit(lo.MapRows(lo.Limit(source(), 10), fn=add_one,
                                         udf_name="add_one"), 4))
    assert chain(dag) == ["Map(add_one)", "Limit[4]", "InputData"]


@pytest.mark.parametrize("make", [
    lambda up: batches(up),
    lambda up: lo.Filter(up, fn=is_even, udf_name="is_even"),
    lambda up: lo.FlatMap(up, fn=twice, udf_name="twice"),
    lambda up: actors(up),
], ids=["map_batches", "filter", "flat_map", "actors"])
def test_limit_not_pushed_through_row_changing_maps(make):
    plan = lo.Limit(make(source()), 5)
    dag = push_limit(plan)
    assert chain(dag)[0] == "Limit[5]"
    assert chain(dag) == chain(plan)


def test_limit_stops_at_a_row_changing_map_below_a_row_preserving_one():
    plan = lo.Limit(lo.MapRows(lo.Filter(source(), fn=is_even, udf_name="is_even"),
                               fn=add_one, udf_name="add_one"), 2)
    assert chain(push_limit(plan)) == ["Map(add_one)", "Limit[2]", "Filter(is_even)",
                                       "InputData"]


# ------------------------------------------------------------------------ PruneUnusedColumns


def prune(op: lo.LogicalOperator) -> lo.LogicalOperator:
    return PruneUnusedColumns().apply(LogicalPlan(op)).dag


def test_columns_nobody_reads_are_pruned_below_an_expression_filter():
    plan = lo.Project(lo.Project(lo.Filter(source(), expr=ed.col("a") > 1),
                                 exprs=(("d", ed.col("b") * 2),)), select=("a", "d"))
    dag = prune(plan)
    assert chain(dag) == ["Project(select a, d)", "Project(with_column d)",
                          "Filter(col('a') > lit(1))", "PruneColumns(a, b)", "InputData"]
    assert prune(dag) is dag or chain(prune(dag)) == chain(dag)  # a fixed point


def test_aggregations_keep_only_their_columns_and_count_keeps_the_filters():
    plan = lo.PartialAggregate(lo.Filter(source(), expr=ed.col("a") > 1),
                               aggs=(ed.Count(), ed.Sum("s")))
    assert chain(prune(plan))[2] == "PruneColumns(a, s)"
    custom = ed.AggregateFn(init=lambda k: 0, accumulate_block=lambda a, b: a + len(b),
                            merge=lambda a, b: a + b, name="rows")
    plan = lo.PartialAggregate(lo.Filter(source(), expr=ed.col("a") > 1), aggs=(custom,))
    assert "PruneColumns" not in " ".join(chain(prune(plan)))  # it may read any column


@pytest.mark.parametrize("below", [
    lambda up: lo.Filter(up, fn=is_even, udf_name="is_even"),  # a function sees whole rows
    lambda up: batches(up),
    lambda up: lo.Project(up, exprs=(("d", ed.col("a")),)),  # no filter copies anything
], ids=["filter_fn", "map_batches", "no_filter"])
def test_no_pruning_where_columns_are_unknown_or_nothing_is_copied(below):
    plan = lo.Project(below(source()), select=("a",))
    assert chain(prune(plan)) == chain(plan)


def test_pruning_keeps_results_and_errors_as_written():
    ds = ed.from_items([{"a": i, "b": -i, "c": str(i)} for i in range(20)])
    out = ds.filter(expr=ed.col("a") > 4).with_column("d", ed.col("b") * 2)
    assert out.select_columns(["d", "a"]).take(2) == [{"d": -10, "a": 5}, {"d": -12, "a": 6}]
    assert out.count() == 15 and out.sum("d") == -2 * sum(range(5, 20))
    with pytest.raises(ValueError, match=r"column 'zz' not found.*'a', 'b', 'c'"):
        ds.filter(expr=ed.col("a") > 4).sum("zz")


# ------------------------------------------------------------------------ golden explain()


def _explain(ds) -> str:
    return ds.explain().strip()


def test_explain_fused_read_map_filter_limit(capsys):
    ds = ed.range(100).map_batches(double).filter(is_even).limit(5)
    assert _explain(ds) == textwrap.dedent("""\
        -------- Logical Plan --------
        Limit[5]
          +- Filter(is_even)
            +- MapBatches(double)
              +- ReadRange
        -------- Logical Plan (Optimized) --------
        Limit[5]
          +- ReadRange->MapBatches(double)->Filter(is_even)
        -------- Physical Plan --------
        InputDataOperator[Input[ReadRange]]
        TaskPoolMapOperator[ReadRange->MapBatches(double)->Filter(is_even)]
        LimitOperator[Limit[5]]""")
    assert "Limit[5]" in capsys.readouterr().out  # explain() prints too


def test_explain_limit_pushed_below_map_and_select():
    ds = ed.range(100).map(add_one).select_columns(["id"]).limit(3)
    assert _explain(ds) == textwrap.dedent("""\
        -------- Logical Plan --------
        Limit[3]
          +- Project(select id)
            +- Map(add_one)
              +- ReadRange
        -------- Logical Plan (Optimized) --------
        Map(add_one)->Project(select id)
          +- Limit[3]
            +- ReadRange
        -------- Physical Plan --------
        InputDataOperator[Input[ReadRange]]
        TaskPoolMapOperator[ReadRange]
        LimitOperator[Limit[3]]
        TaskPoolMapOperator[Map(add_one)->Project(select id)]""")


def test_explain_task_map_into_actor_pool():
    ds = (ed.range(100).map_batches(double).map_batches(add_one_batch, num_cpus=0.5)
          .map_batches(Model, concurrency=(1, 2), num_cpus=0.5))
    assert _explain(ds) == textwrap.dedent("""\
        -------- Logical Plan --------
        MapBatches(Model)
          +- MapBatches(add_one_batch)
            +- MapBatches(double)
              +- ReadRange
        -------- Logical Plan (Optimized) --------
        MapBatches(add_one_batch)->MapBatches(Model)
          +- ReadRange->MapBatches(double)
        -------- Physical Plan --------
        InputDataOperator[Input[ReadRange]]
        TaskPoolMapOperator[ReadRange->MapBatches(double)]
        ActorPoolMapOperator[MapBatches(add_one_batch)->MapBatches(Model)] actors=1..2""")


def add_one_batch(batch):
    return {"id": batch["id"] + 1}


# ------------------------------------------------------------------------ property test


def _shift(batch, k):
    return {**batch, "id": batch["id"] + k}


def _scale(row, k):
    return {**row, "id": row["id"] * 2 + k}


def _dup(row):
    return [row, {**row, "id": row["id"] + 10_000}]


def _not_multiple(row, m):
    return row["id"] % m != 0


OPS = st.one_of(
    st.tuples(st.just("map_batches"), st.integers(0, 5), st.sampled_from([None, 3, 7])),
    st.tuples(st.just("map"), st.integers(0, 5)),
    st.tuples(st.just("flat_map")),
    st.tuples(st.just("filter"), st.integers(2, 4)),
    st.tuples(st.just("limit"), st.integers(0, 30)),
    st.tuples(st.just("select")),
    st.tuples(st.just("map_batches_cpus"), st.integers(0, 5)),
    st.tuples(st.just("filter_expr"), st.integers(0, 40)),
    st.tuples(st.just("with_column"), st.integers(0, 5)),
)


def _build(source_kind: str, n: int, blocks: int, ops: list[tuple]) -> ed.Dataset:
    if source_kind == "range":
        ds = ed.range(n, override_num_blocks=blocks)
    else:
        ds = ed.from_items([{"id": i, "s": str(i % 3)} for i in range(n)],
                           override_num_blocks=blocks)
    for op in ops:
        kind = op[0]
        if kind == "map_batches":
            ds = ds.map_batches(functools.partial(_shift, k=op[1]), batch_size=op[2])
        elif kind == "map_batches_cpus":  # does not fuse with its neighbours
            ds = ds.map_batches(functools.partial(_shift, k=op[1]), num_cpus=0.5)
        elif kind == "map":
            ds = ds.map(functools.partial(_scale, k=op[1]))
        elif kind == "flat_map":
            ds = ds.flat_map(_dup)
        elif kind == "filter":
            ds = ds.filter(functools.partial(_not_multiple, m=op[1]))
        elif kind == "limit":
            ds = ds.limit(op[1])
        elif kind == "select":
            ds = ds.select_columns(["id"])
        elif kind == "filter_expr":
            ds = ds.filter(expr=ed.col("id") > op[1])
        elif kind == "with_column":
            ds = ds.with_column("w", ed.col("id") + op[1])
    return ds


def _rows(ds: ed.Dataset, optimizer: bool, ordered: bool) -> list[dict]:
    saved = DataContext.get_current()
    ctx = saved.copy()
    ctx.optimizer_enabled = optimizer
    ctx.execution_options.preserve_order = ordered
    DataContext._set_current(ctx)
    try:
        return ds.take_all()
    finally:
        DataContext._set_current(saved)


@settings(deadline=None, max_examples=25, suppress_health_check=[HealthCheck.too_slow])
@given(source_kind=st.sampled_from(["range", "items"]), n=st.integers(0, 40),
       blocks=st.integers(1, 5), ops=st.lists(OPS, max_size=5))
def test_optimizer_keeps_results(source_kind, n, blocks, ops):
    ds = _build(source_kind, n, blocks, ops)
    has_limit = any(op[0] == "limit" for op in ops)
    plain = _rows(ds, optimizer=False, ordered=has_limit)
    optimized = _rows(ds, optimizer=True, ordered=has_limit)
    if has_limit:
        assert optimized == plain
    else:
        def key(row):
            return sorted(row.items())

        assert sorted(optimized, key=key) == sorted(plain, key=key)
