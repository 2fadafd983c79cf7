"""The Hojabr chapter: IR, frontends, rewrite, cost rule, executors and the claim."""

import dataclasses
import itertools
import math

import matplotlib.pyplot as plt
import networkx as nx
import numpy as np
import pytest

from paperlab.claims import ClaimFailed
from paperlab.systems_data import hojabr_unified_algebra as ch

A, B, C = ch.Atom("R", ("a", "b")), ch.Atom("S", ("b", "c")), ch.Compare("a", "<", 3)


# ------------------------------------------------------------------ the IR


def test_sum_product_knows_its_variables():
    q = ch.SumProduct(("a",), (A, B, C))
    assert q.variables == ("a", "b", "c") and q.summed == ("b", "c")
    assert q.atoms == (A, B) and q.compares == (C,)
    assert ch.to_text(q) == "Q(a) = Σ_{b,c} R(a,b) · S(b,c) · [a < 3]"


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"out": ("z",), "factors": (A,)}, ValueError, "output variable 'z'"),
        ({"out": (), "factors": ()}, ValueError, "non-empty tuple"),
        ({"out": (), "factors": (C,)}, ValueError, "at least one Atom"),
        ({"out": (), "factors": (A, "R")}, TypeError, "Atom or Compare"),
        ({"out": ["a"], "factors": (A,)}, TypeError, "out must be a tuple"),
        ({"out": (), "factors": (A,), "semiring": "max"}, ValueError, "semiring"),
        ({"out": (), "factors": (ch.Atom("R", ("b",)), C)}, ValueError, "selection"),
    ],
)
def test_sum_product_rejects_bad_input(kwargs, error, match):
    with pytest.raises(error, match=match):
        ch.SumProduct(**kwargs)


def test_atoms_compares_and_fixpoints_reject_bad_input():
    with pytest.raises(ValueError, match="must not repeat"):
        ch.Atom("R", ("a", "a"))
    with pytest.raises(ValueError, match="identifier"):
        ch.Atom("1R", ("a",))
    with pytest.raises(ValueError, match="op must be one of"):
        ch.Compare("a", "~", 1)
    with pytest.raises(TypeError, match="value must be an integer"):
        ch.Compare("a", "<", 1.5)
    base = ch.SumProduct(("t",), (ch.Atom("E", ("t",)),), "boolean")
    with pytest.raises(ValueError, match="exactly once"):
        ch.Fixpoint("X", base, base)
    other = ch.SumProduct(("t",), (ch.Atom("X", ("t",)),), "min_plus")
    with pytest.raises(ValueError, match="same semiring"):
        ch.Fixpoint("X", base, other)


# ------------------------------------------------------------- the frontends


def test_lower_sql_builds_the_expected_ir():
    q = ch.lower_sql(ch.SQL_QUERY, ch.SQL_CATALOG)
    assert q == ch.SumProduct(("a",), (A, B), "sum_product")
    text = "select distinct R.a, S.c from R, S where R.b = S.b and R.a < 3"
    assert ch.lower_sql(text, ch.SQL_CATALOG) == ch.SumProduct(
        ("a", "c"), (A, B, C), "boolean"
    )
    text = "SELECT MIN(R.x + S.y) FROM R, S"  # no join: a cartesian product
    q = ch.lower_sql(text, ch.SQL_CATALOG)
    assert q.semiring == "min_plus" and q.out == ()
    assert q.atoms == (A, ch.Atom("S", ("b_S", "c")))


def test_lower_sql_names_colliding_variables_apart():
    cat = ch.ROUND_TRIP_CATALOG
    q = ch.lower_sql("SELECT R.a, U.a, SUM(R.x * U.w) FROM R, U GROUP BY R.a, U.a", cat)
    assert q.out == ("a", "a_U")


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("SELECT R.a FROM R", "exactly one SUM"),
        ("SELECT R.a, SUM(R.x) FROM Q GROUP BY R.a", "unknown table"),
        ("SELECT R.x, SUM(R.x) FROM R GROUP BY R.x", "not a key column"),
        ("SELECT R.a, SUM(R.x) FROM R", "GROUP BY must list"),
        ("SELECT SUM(R.x) FROM R, S", "each table's value column once"),
        ("SELECT SUM(R.x + S.y) FROM R, S", "SUM\\(a \\* b"),
        ("SELECT DISTINCT SUM(R.x) FROM R", "DISTINCT takes no aggregate"),
        ("SELECT SUM(R.x) FROM R WHERE R.a < S.b", "compared with '='"),
        ("SELECT SUM(R.x) FROM R, R", "only once"),
        ("SELECT SUM(R.x) FROM R ORDER", "unexpected"),
        ("SELECT SUM(R.x) FROM R WHERE R.a ? 2", "cannot read"),
    ],
)
def test_lower_sql_rejects_bad_queries(text, match):
    with pytest.raises(ValueError, match=match):
        ch.lower_sql(text, ch.SQL_CATALOG)


def test_lower_einsum_and_its_errors():
    assert ch.lower_einsum(*ch.TENSOR_SPEC) == ch.SumProduct(
        ("i",),
        (ch.Atom("A", ("i", "j")), ch.Atom("B", ("j", "k")), ch.Atom("v", ("k",))),
    )
    implicit = ch.lower_einsum("ij,jk", ("A", "B"))  # NumPy's rule: once-only letters
    assert implicit.out == ("i", "k")
    assert ch.lower_einsum("min_plus: ij,jk->ik", ("A", "B")).semiring == "min_plus"
    with pytest.raises(ValueError, match="diagonals"):
        ch.lower_einsum("ii->i", ("A",))
    with pytest.raises(ValueError, match="name each"):
        ch.lower_einsum("ij,jk->ik", ("A",))
    with pytest.raises(ValueError, match="lowercase"):
        ch.lower_einsum("iJ->i", ("A",))
    with pytest.raises(ValueError, match="semiring"):
        ch.lower_einsum("max:ij->i", ("A",))


def test_round_trips_hold_for_generated_queries():
    trips = ch.round_trips(30, seed=3)
    for frontend in ("sql", "einsum"):
        assert len(trips[frontend]) == 30
        assert all(ok for _, ok in trips[frontend])
    assert len({text for text, _ in trips["sql"]}) > 20  # the generator varies


def test_lifting_crosses_frontends():
    sql = ch.lower_sql(ch.SQL_QUERY, ch.SQL_CATALOG)
    assert ch.lift_einsum(sql) == ("ab,bc->a", ("R", "S"))
    tensor = ch.lower_einsum(*ch.TENSOR_SPEC)
    catalog = ch.schema_for(tensor)
    text = ch.lift_sql(tensor, catalog)
    assert text == (
        "SELECT A.i, SUM(A.val * B.val * v.val) FROM A, B, v "
        "WHERE A.j = B.j AND B.k = v.k GROUP BY A.i"
    )
    assert ch.lower_sql(text, catalog) == tensor
    with pytest.raises(ValueError, match="selections"):
        ch.lift_einsum(ch.SumProduct(("a",), (A, C)))


def test_a_lossy_lifter_breaks_the_round_trip():
    q = ch.lower_sql(
        "SELECT R.a, SUM(R.x) FROM R WHERE R.b > 2 GROUP BY R.a", ch.SQL_CATALOG
    )
    text = ch.lift_sql(q, ch.SQL_CATALOG)
    lossy = text.replace(" WHERE R.b > 2", "")
    assert ch.lower_sql(text, ch.SQL_CATALOG) == q
    assert ch.lower_sql(lossy, ch.SQL_CATALOG) != q


# ------------------------------------------------------------ plans and cost


def test_the_rewrite_pushes_sums_past_factors():
    sql = ch.lower_sql(ch.SQL_QUERY, ch.SQL_CATALOG)
    domains = {"a": 2000, "b": 200, "c": 2000}
    written = ch.plan_as_written(sql)
    rewritten = ch.plan_rewritten(sql, domains)
    s_a, s_b = ch.Scan(A), ch.Scan(B)
    assert written == ch.Join(s_a, s_b, ("a",))
    assert rewritten == ch.Join(s_a, ch.Reduce(s_b, ("b",)), ("a",))
    assert ch.dense_madds(written, domains) == 2000 * 200 * 2000
    assert ch.dense_madds(rewritten, domains) == 200 * 2000 + 2000 * 200
    tensor = ch.lower_einsum(*ch.TENSOR_SPEC)
    sizes = dict.fromkeys("ijk", 50)
    assert ch.plan_text(ch.plan_as_written(tensor)) == (
        "Σ_{k}( Σ_{j}( A(i,j) · B(j,k) ) · v(k) )"
    )
    assert ch.plan_text(ch.plan_rewritten(tensor, sizes)) == (
        "Σ_{j}( A(i,j) · Σ_{k}( B(j,k) · v(k) ) )"
    )
    with pytest.raises(ValueError, match="no size for variable"):
        ch.plan_rewritten(tensor, {"i": 3})


def test_selections_are_pushed_into_the_scan():
    q = ch.SumProduct(("a",), (A, B, ch.Compare("c", ">=", 1)))
    plan = ch.plan_rewritten(q, dict.fromkeys("abc", 4))
    scans = [n for n in ch._nodes(plan) if isinstance(n, ch.Scan)]
    assert scans[1] == ch.Scan(B, (ch.Compare("c", ">=", 1),))


def test_cost_rule_follows_density():
    rng = np.random.default_rng(0)
    for density, expected in ((0.002, "sparse"), (0.9, "dense")):
        wl = ch.tensor_workload(300, density, rng)
        plan = ch.plan_rewritten(wl.query, dict.fromkeys("ijk", 300))
        choice = ch.choose_representation(plan, wl.db, "sum_product")
        assert choice.pick == expected and choice.ratio > 1
        assert choice.dense_madds == 2 * 300 * 300


# ------------------------------------------------------------------ execution


def _brute_force(query, db):
    """Every point of the full index space, then the semiring's reduction."""
    union = query.variables
    sizes = ch._domains(query.atoms, db)
    combine = {"sum_product": np.multiply, "boolean": np.minimum, "min_plus": np.add}
    reduce = {"sum_product": np.sum, "boolean": np.max, "min_plus": np.min}
    total = None
    for a in query.atoms:
        arr = ch._align(db.dense(a.relation, query.semiring), a.vars, list(union))
        total = arr if total is None else combine[query.semiring](total, arr)
    total = np.broadcast_to(total, [sizes[v] for v in union]).copy()
    zero = ch.SEMIRING_ZERO[query.semiring]
    for c in query.compares:
        shape = [1] * len(union)
        shape[union.index(c.var)] = -1
        keep = c.holds(np.arange(sizes[c.var])).reshape(shape)
        total = np.where(keep, total, zero)
    summed = tuple(i for i, v in enumerate(union) if v not in query.out)
    if summed:
        total = reduce[query.semiring](total, axis=summed)
    kept = [v for v in union if v in query.out]
    return np.transpose(total, [kept.index(v) for v in query.out])


def _random_db(query, rng, size=3):
    tables = {}
    for a in query.atoms:
        shape = (size,) * len(a.vars)
        n_rows = int(rng.integers(0, size ** len(a.vars) + 2))
        coords = np.stack([rng.integers(0, size, n_rows) for _ in shape], axis=1)
        vals = rng.integers(0, 5, n_rows).astype(float)
        tables[a.relation] = ch.Table(shape, coords.reshape(n_rows, len(shape)), vals)
    return ch.Database(tables)


@pytest.mark.parametrize("seed", range(24))
def test_every_plan_and_representation_matches_brute_force(seed):
    rng = np.random.default_rng(seed)
    spec, names = ch.random_einsum(rng)
    query = ch.lower_einsum(spec, names)
    if seed % 3 == 0:  # add a selection on some variable
        query = ch.SumProduct(
            query.out,
            query.factors + (ch.Compare(query.variables[0], "!=", 1),),
            query.semiring,
        )
    db = _random_db(query, rng)
    expected = _brute_force(query, db)
    domains = ch._domains(query.atoms, db)
    plans = (ch.plan_as_written(query), ch.plan_rewritten(query, domains))
    for plan, rep in itertools.product(plans, ch.REPRESENTATIONS):
        got = ch.execute(plan, db, query.semiring, rep).to_dense()
        assert ch.result_error(got, expected, query.semiring) == 0.0, (spec, rep)


def test_sparse_multiply_adds_are_the_joined_pairs():
    wl = ch.relational_workload(3000, 30, 100, np.random.default_rng(1))
    keys_r, _ = wl.db.sparse("R", "sum_product")
    keys_s, _ = wl.db.sparse("S", "sum_product")
    pairs = int(
        np.sum(
            np.bincount(keys_r[1], minlength=30) * np.bincount(keys_s[0], minlength=30)
        )
    )
    plan = ch.plan_as_written(wl.query)
    run = ch.execute(plan, wl.db, "sum_product", "sparse")
    assert run.madds == pairs
    rewritten = ch.plan_rewritten(wl.query, ch._domains(wl.query.atoms, wl.db))
    assert ch.execute(rewritten, wl.db, "sum_product", "sparse").madds == (
        keys_s.shape[1] + keys_r.shape[1]
    )
    assert ch.result_error(run.to_dense(), wl.reference, "sum_product") < 1e-12


def test_execute_rejects_bad_input():
    wl = ch.tensor_workload(5, 0.5, np.random.default_rng(0))
    plan = ch.plan_as_written(wl.query)
    with pytest.raises(ValueError, match="representation must be one of"):
        ch.execute(plan, wl.db, "sum_product", "csr")
    with pytest.raises(TypeError, match="db must be a Database"):
        ch.execute(plan, {}, "sum_product", "dense")
    with pytest.raises(ValueError, match="no table named"):
        ch.execute(ch.Scan(ch.Atom("Z", ("i",))), wl.db, "sum_product", "dense")
    with pytest.raises(ValueError, match="coords must lie"):
        ch.Table((2,), np.array([[2]]), np.ones(1))
    with pytest.raises(ValueError, match="NaN"):
        ch.Table((2,), np.array([[1]]), np.array([math.nan]))


# ------------------------------------------------------------------ fixpoints


def _random_graph_db(seed, n=15, p=0.2):
    g = nx.gnp_random_graph(n, p, seed=seed, directed=True)
    pairs = np.array(list(g.edges), dtype=np.int64).reshape(-1, 2)
    w = np.random.default_rng(seed).integers(1, 6, pairs.shape[0]).astype(float)
    for (u, v), length in zip(pairs.tolist(), w.tolist(), strict=True):
        g[u][v]["weight"] = length
    tables = {
        "Edag": ch.Table((n, n), pairs, np.ones(pairs.shape[0])),
        "E": ch.Table((n, n), pairs, w),
        "Src": ch.Table((n,), np.array([[0]]), np.zeros(1)),
    }
    return g, ch.Database(tables)


@pytest.mark.parametrize("seed", range(4))
def test_fixpoints_match_networkx(seed):
    g, db = _random_graph_db(seed)
    n = g.number_of_nodes()
    reach = np.zeros((n, n))
    for s in range(n):  # paths of one or more edges, so cycles reach themselves
        for m in g.successors(s):
            reach[s, [m, *nx.descendants(g, m)]] = 1.0
    dist = np.full(n, math.inf)
    for node, d in nx.single_source_dijkstra_path_length(g, 0).items():
        dist[node] = d
    runs = {}
    for rep in ch.REPRESENTATIONS:
        tc = ch.evaluate_fixpoint(ch.reachability_program(), db, rep)
        sp = ch.evaluate_fixpoint(ch.shortest_path_program(), db, rep)
        np.testing.assert_array_equal(tc.values, reach)
        np.testing.assert_array_equal(sp.values, dist)
        runs[rep] = (tc.rounds, sp.rounds)
    assert runs["dense"] == runs["sparse"]


def test_fixpoint_errors():
    _, db = _random_graph_db(0)
    for rep in ch.REPRESENTATIONS:
        with pytest.raises(ValueError, match="did not converge in 1 rounds"):
            ch.evaluate_fixpoint(ch.reachability_program(), db, rep, max_rounds=1)
    three = ch.SumProduct(
        ("t",),
        (ch.Atom("D", ("m",)), ch.Atom("E", ("m", "t")), ch.Atom("Src", ("t",))),
        "min_plus",
    )
    fix = ch.Fixpoint("D", ch.shortest_path_program().base, three)
    with pytest.raises(ValueError, match="linear step"):
        ch.evaluate_fixpoint(fix, db, "sparse")
    assert ch.evaluate_fixpoint(fix, db, "dense").values[0] == 0.0


def test_result_error():
    inf = math.inf
    assert ch.result_error(np.array([1.0, inf]), np.array([1.0, inf]), "min_plus") == 0
    assert (
        ch.result_error(np.array([1.0, 2.0]), np.array([1.0, inf]), "min_plus") == inf
    )
    assert ch.result_error(np.zeros(2), np.zeros(3), "sum_product") == inf
    assert ch.result_error(np.array([10.0]), np.array([8.0]), "sum_product") == 0.25


# ------------------------------------------------------------------- the claim

# A smaller relational join and one graph; the chapter's tensor sizes (the claimed
# savings need n = 2,000 at 1% density), whose n^3 dense plans are only costed.
SMALL = dict(sql_rows=5_000, sql_keys=50, sql_groups=500, graphs=("karate",))


@pytest.fixture(scope="module")
def results():
    return {v: ch.run_experiment(ch.Config(variant=v, **SMALL)) for v in ch.VARIANTS}


def test_claim_holds_for_the_mechanism(results):
    result = results["mechanism"]
    ch.check_claim(result)
    assert result.rewrite_gain("relational", "R ⋈ S") > 30
    assert result.picked("tensor", "1%").representation == "sparse"
    assert result.picked("tensor", "50%").representation == "dense"


def test_claim_fails_without_the_rewrite(results):
    with pytest.raises(ClaimFailed, match="saves only 1.00x multiply-adds"):
        ch.check_claim(results["no_rewrite"])


def test_claim_fails_without_the_cost_rule(results):
    with pytest.raises(ClaimFailed, match="picks: dense at 1%"):
        ch.check_claim(results["fixed_dense"])


def test_claim_fails_on_a_wrong_answer_or_a_broken_round_trip(results):
    good = results["mechanism"]
    runs = list(good.runs)
    runs[1] = dataclasses.replace(runs[1], error=1e-6)
    with pytest.raises(ClaimFailed, match="error 1e-06"):
        ch.check_claim(dataclasses.replace(good, runs=tuple(runs)))
    trips = dict(good.round_trips, sql=(19, 20))
    with pytest.raises(ClaimFailed, match="19 of 20 round trips"):
        ch.check_claim(dataclasses.replace(good, round_trips=trips))


def test_config_rejects_bad_input():
    with pytest.raises(ValueError, match="variant must be one of"):
        ch.Config(variant="fast")
    with pytest.raises(ValueError, match="increasing"):
        ch.Config(densities=(0.5, 0.01))
    with pytest.raises(ValueError, match="densities\\[i\\] must be <= 1"):
        ch.Config(densities=(0.5, 2.0))
    with pytest.raises(ValueError, match="graphs\\[i\\] must be one of"):
        ch.Config(graphs=("petersen",))
    with pytest.raises(TypeError, match="config must be a Config"):
        ch.run_experiment({})
    with pytest.raises(TypeError, match="result must be a Result"):
        ch.check_claim(None)


def test_explore_and_plots(results):
    explored = ch.explore_density(0.003, n=300, repeats=1)
    assert explored.choice.pick == "sparse"
    assert explored.madds["dense"] == 2 * 300 * 300 > explored.madds["sparse"]
    for fig in (
        ch.plot_rewrite_gain(results["mechanism"]),
        ch.plot_specialisation(results["mechanism"]),
        ch.plot_explore(explored),
    ):
        assert fig.axes and all(ax.get_title() for ax in fig.axes)
        plt.close(fig)
