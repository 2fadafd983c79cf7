"""A miniature unified algebra: relational, tensor and graph queries as sum-products.

Shaikhha, "Hojabr: Towards a Theory of Everything for AI and Data Analytics",
arXiv 2512.23925.

Hojabr proposes one declarative intermediate language in which joins, aggregations,
tensor contractions and recursion are written uniformly, with physical choices (join
algorithm, sparse or dense storage) made by specialising constraints, and with
translation to and from existing languages. The paper is a vision paper; this module is
the chapter's own small interpretation of that design, in the spirit of semiring
query languages such as FAQ and SDQL, and not Hojabr's definition (of the paper, only
the abstract and the opening of the introduction were available when it was written).

Every query here is a *sum-product* over semiring-valued relations with named index
variables,

    Q(out) = (+)_{summed vars} F_1(vars_1) (x) F_2(vars_2) (x) ... (x) F_m(vars_m),

where a factor is a stored relation (an SQL table, a tensor, an edge list) or an
indicator ``[var op constant]`` (an SQL selection). The semiring picks the meaning:
sum-product for ``SUM`` and tensor contraction, Boolean for ``DISTINCT`` projection and
reachability, min-plus for ``MIN`` and shortest paths. Recursion is a least fixpoint
``X = B (+) step(X)``.

The module has

- the IR (:class:`Atom`, :class:`Compare`, :class:`SumProduct`, :class:`Fixpoint`);
- two frontends that lower text into the IR and lift it back: a small SQL dialect
  (:func:`lower_sql`, :func:`lift_sql`) and einsum (:func:`lower_einsum`,
  :func:`lift_einsum`);
- two planners: :func:`plan_as_written` (joins in the written order, sums at the end of
  each join) and :func:`plan_rewritten`, which applies distributivity, pushing each sum
  past the factors that do not mention its variable, in a cost-guided order;
- a cost rule (:func:`choose_representation`) that specialises a plan to dense arrays
  or sparse coordinate lists, and executors for both (:func:`execute`,
  :func:`evaluate_fixpoint`), whose sparse loops are in
  :mod:`paperlab.kernels.semiring`;
- the chapter's experiment on three workloads and its claim.
"""

from __future__ import annotations

import logging
import math
import re
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from paperlab.claims import require
from paperlab.kernels.semiring import (
    SEMIRING_IDS,
    semiring_relax,
    sparse_join_aggregate,
)
from paperlab.validation import (
    check_array,
    check_choice,
    check_float,
    check_instance,
    check_int,
)

__all__ = [
    "SEMIRINGS",
    "REPRESENTATIONS",
    "VARIANTS",
    "COMPARE_OPS",
    "Atom",
    "Compare",
    "SumProduct",
    "Fixpoint",
    "to_text",
    "TableSchema",
    "lower_sql",
    "lift_sql",
    "schema_for",
    "lower_einsum",
    "lift_einsum",
    "random_sql",
    "random_einsum",
    "round_trips",
    "Table",
    "Database",
    "Scan",
    "Join",
    "Reduce",
    "plan_as_written",
    "plan_rewritten",
    "plan_text",
    "dense_madds",
    "Choice",
    "choose_representation",
    "Execution",
    "execute",
    "FixpointRun",
    "evaluate_fixpoint",
    "Workload",
    "relational_workload",
    "relational_reference",
    "tensor_workload",
    "graph_workload",
    "reachability_program",
    "shortest_path_program",
    "result_error",
    "Config",
    "PlanRun",
    "Result",
    "run_experiment",
    "check_claim",
    "ExploreResult",
    "explore_density",
    "plot_rewrite_gain",
    "plot_specialisation",
    "plot_explore",
]

log = logging.getLogger(__name__)

SEMIRINGS = ("sum_product", "boolean", "min_plus")
REPRESENTATIONS = ("dense", "sparse")
VARIANTS = ("mechanism", "no_rewrite", "fixed_dense")
VARIANT_NAMES = {
    "mechanism": "rewrite + cost rule",
    "no_rewrite": "plans as written",
    "fixed_dense": "always dense",
}
COMPARE_OPS = ("<", "<=", ">", ">=", "=", "!=")
GRAPHS = ("karate", "les_miserables")
SEMIRING_ZERO = {"sum_product": 0.0, "boolean": 0.0, "min_plus": math.inf}

# The cost rule's prices, in units of one dense multiply-add (measured on a laptop
# CPU: BLAS and einsum spend about 0.3-0.5 ns per multiply-add, the sparse kernel
# 2-4 ns per matching pair).
DENSE_COST = 1.0  # per point of a dense node's index space
SPARSE_PAIR_COST = 8.0  # per matching pair in a sparse join or reduction
SPARSE_ENTRY_COST = 2.0  # per input entry a sparse node reads
ACCUMULATOR_COST = 1.0  # per slot of the dense accumulator a sparse node clears

MAX_BROADCAST = 50_000_000  # largest dense min-plus product materialised at once
MAX_ACCUMULATOR = 50_000_000  # largest output index space of a sparse node

# The claim's thresholds (see check_claim).
FLOAT_TOLERANCE = 1e-9
MIN_REWRITE_GAIN = 10.0
MIN_PICK_SPEEDUP = 1.5
MIN_ROUND_TRIPS = 20

_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")


# ------------------------------------------------------------------ the IR


def _check_name(name: str, value) -> str:
    if not isinstance(value, str) or not _IDENT.match(value):
        raise ValueError(f"{name} must be an identifier, got {value!r}")
    return value


def _check_vars(name: str, value) -> tuple[str, ...]:
    if not isinstance(value, tuple):
        raise TypeError(f"{name} must be a tuple of names, got {type(value).__name__}")
    for v in value:
        _check_name(f"{name}[i]", v)
    if len(set(value)) != len(value):
        raise ValueError(f"{name} must not repeat a variable, got {value}")
    return value


@dataclass(frozen=True)
class Atom:
    """A stored relation used as a factor: ``relation(vars...)``.

    The relation's columns are bound to the variables by position; two factors that
    share a variable are joined on it.
    """

    relation: str  # name in the database (an SQL table, a tensor, an edge list)
    vars: tuple[str, ...]  # one variable per key column, no repeats

    def __post_init__(self):
        _check_name("relation", self.relation)
        _check_vars("vars", self.vars)


@dataclass(frozen=True)
class Compare:
    """An indicator factor ``[var op value]``: the semiring's one where it holds,
    its zero elsewhere (a selection)."""

    var: str
    op: str  # one of COMPARE_OPS
    value: int

    def __post_init__(self):
        _check_name("var", self.var)
        check_choice("op", self.op, COMPARE_OPS)
        check_int("value", self.value)

    @property
    def vars(self) -> tuple[str, ...]:
        return (self.var,)

    def holds(self, x: np.ndarray) -> np.ndarray:
        """Where the comparison holds for the integer values ``x``."""
        ops = {
            "<": np.less,
            "<=": np.less_equal,
            ">": np.greater,
            ">=": np.greater_equal,
            "=": np.equal,
            "!=": np.not_equal,
        }
        return ops[self.op](x, self.value)


@dataclass(frozen=True)
class SumProduct:
    """``Q(out) = (+)_{other vars} (x)_f factors[f]`` over one semiring.

    The sum runs over every variable that is not in ``out`` (group-by and projection
    are sums); the product is the join (selections are indicator factors).
    """

    out: tuple[str, ...]  # free variables, in output order
    factors: tuple[Atom | Compare, ...]  # at least one Atom
    semiring: str = "sum_product"  # one of SEMIRINGS

    def __post_init__(self):
        _check_vars("out", self.out)
        if not isinstance(self.factors, tuple) or not self.factors:
            raise ValueError("factors must be a non-empty tuple of Atom or Compare")
        for f in self.factors:
            if not isinstance(f, Atom | Compare):
                raise TypeError(
                    f"factors must hold Atom or Compare, got {type(f).__name__}"
                )
        if not self.atoms:
            raise ValueError("factors must contain at least one Atom")
        check_choice("semiring", self.semiring, SEMIRINGS)
        bound = set(self.variables)
        for v in self.out:
            if v not in bound:
                raise ValueError(f"output variable {v!r} appears in no Atom")
        for c in self.compares:
            if c.var not in bound:
                raise ValueError(f"selection variable {c.var!r} appears in no Atom")

    @property
    def atoms(self) -> tuple[Atom, ...]:
        return tuple(f for f in self.factors if isinstance(f, Atom))

    @property
    def compares(self) -> tuple[Compare, ...]:
        return tuple(f for f in self.factors if isinstance(f, Compare))

    @property
    def variables(self) -> tuple[str, ...]:
        """Every variable of the Atoms, in order of first appearance."""
        return _ordered_union(*(a.vars for a in self.atoms))

    @property
    def summed(self) -> tuple[str, ...]:
        """The variables summed out, in order of first appearance."""
        return tuple(v for v in self.variables if v not in self.out)


@dataclass(frozen=True)
class Fixpoint:
    """A recursive relation: the least ``X`` with ``X = base (+) step(X)``.

    ``step`` mentions the relation ``name`` exactly once (linear recursion), e.g.
    reachability ``X(s,t) = E(s,t) (+) (+)_m X(s,m) (x) E(m,t)``.
    """

    name: str  # the recursive relation
    base: SumProduct  # B, not mentioning ``name``
    step: SumProduct  # mentions ``name`` once

    def __post_init__(self):
        _check_name("name", self.name)
        if not isinstance(self.base, SumProduct) or not isinstance(
            self.step, SumProduct
        ):
            raise TypeError("base and step must be SumProduct queries")
        if self.base.out != self.step.out:
            raise ValueError("base and step must have the same output variables")
        if self.base.semiring != self.step.semiring:
            raise ValueError("base and step must use the same semiring")
        if any(a.relation == self.name for a in self.base.atoms):
            raise ValueError(f"base must not mention {self.name!r}")
        if sum(a.relation == self.name for a in self.step.atoms) != 1:
            raise ValueError(f"step must mention {self.name!r} exactly once")

    @property
    def semiring(self) -> str:
        return self.base.semiring


def _ordered_union(*groups: Sequence[str]) -> tuple[str, ...]:
    seen: dict[str, None] = {}
    for group in groups:
        for v in group:
            seen.setdefault(v, None)
    return tuple(seen)


_SYMBOLS = {
    "sum_product": ("Σ", " · "),
    "boolean": ("∃", " ∧ "),
    "min_plus": ("min", " + "),
}


def _factor_text(f: Atom | Compare) -> str:
    if isinstance(f, Atom):
        return f"{f.relation}({','.join(f.vars)})"
    return f"[{f.var} {f.op} {f.value}]"


def to_text(expr: SumProduct | Fixpoint, name: str = "Q") -> str:
    """The IR in mathematical notation, e.g. ``Q(a) = Σ_{b,c} R(a,b) · S(b,c)``.

    The sum symbol and the product symbol name the semiring: ``Σ``/``·`` for
    sum-product, ``∃``/``∧`` for Boolean, ``min``/``+`` for min-plus.
    """
    if isinstance(expr, Fixpoint):
        base = to_text(expr.base, expr.name).split(" = ", 1)[1]
        step = to_text(expr.step, expr.name).split(" = ", 1)[1]
        join = {"sum_product": "+", "boolean": "∨", "min_plus": "min"}[expr.semiring]
        head = f"{expr.name}({','.join(expr.base.out)})"
        if join == "min":
            return f"{head} = min( {base} , {step} )"
        return f"{head} = {base}  {join}  {step}"
    if not isinstance(expr, SumProduct):
        raise TypeError(f"expr must be a SumProduct or Fixpoint, got {type(expr)}")
    agg, times = _SYMBOLS[expr.semiring]
    body = times.join(_factor_text(f) for f in expr.factors)
    if expr.summed:
        body = f"{agg}_{{{','.join(expr.summed)}}} {body}"
    return f"{name}({','.join(expr.out)}) = {body}"


# ---------------------------------------------------------- the SQL frontend


@dataclass(frozen=True)
class TableSchema:
    """An SQL table seen as a semiring relation: key columns and one value column."""

    keys: tuple[str, ...]  # dictionary-encoded integer columns (the variables)
    value: str  # the numeric column the aggregate reads (the annotation)

    def __post_init__(self):
        _check_vars("keys", self.keys)
        _check_name("value", self.value)
        if self.value in self.keys:
            raise ValueError("value must not also be a key column")


_TOKEN = re.compile(r"\s*(<=|>=|!=|<>|[A-Za-z_][A-Za-z0-9_]*|-?\d+|[.,()*+=<>])")
_KEYWORDS = ("SELECT", "DISTINCT", "FROM", "WHERE", "AND", "GROUP", "BY", "SUM", "MIN")


def _tokenize(text: str) -> list[str]:
    tokens, pos = [], 0
    text = text.strip().rstrip(";")
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if not m:
            raise ValueError(f"cannot read the SQL text at {text[pos : pos + 15]!r}")
        tok = m.group(1)
        tokens.append(tok.upper() if tok.upper() in _KEYWORDS else tok)
        pos = m.end()
    return tokens


class _Tokens:
    def __init__(self, tokens: list[str]):
        self.tokens, self.i = tokens, 0

    def peek(self) -> str | None:
        return self.tokens[self.i] if self.i < len(self.tokens) else None

    def take(self, expected: str | None = None) -> str:
        tok = self.peek()
        if tok is None or (expected is not None and tok != expected):
            want = expected or "more text"
            raise ValueError(f"SQL: expected {want!r}, got {tok!r}")
        self.i += 1
        return tok

    def colref(self) -> tuple[str, str]:
        table = self.take()
        self.take(".")
        return table, self.take()


def _parse_sql(text: str) -> dict:
    """Parse the dialect into its parts (no catalog checks yet)."""
    t = _Tokens(_tokenize(text))
    t.take("SELECT")
    distinct = t.peek() == "DISTINCT"
    if distinct:
        t.take()
    items: list = []
    while True:
        if t.peek() in ("SUM", "MIN"):
            fn = t.take()
            t.take("(")
            refs = [t.colref()]
            while t.peek() in ("*", "+"):
                op = t.take()
                if (fn, op) not in (("SUM", "*"), ("MIN", "+")):
                    raise ValueError("SQL: write SUM(a * b * ...) or MIN(a + b + ...)")
                refs.append(t.colref())
            t.take(")")
            items.append((fn, refs))
        else:
            items.append(("COL", t.colref()))
        if t.peek() != ",":
            break
        t.take(",")
    t.take("FROM")
    tables = [t.take()]
    while t.peek() == ",":
        t.take(",")
        tables.append(t.take())
    conds: list = []
    if t.peek() == "WHERE":
        t.take()
        while True:
            left = t.colref()
            op = t.take()
            op = "!=" if op == "<>" else op
            if op not in COMPARE_OPS:
                raise ValueError(f"SQL: unknown comparison {op!r}")
            nxt = t.peek()
            if nxt is not None and re.fullmatch(r"-?\d+", nxt):
                conds.append(("CONST", left, op, int(t.take())))
            elif op == "=":
                conds.append(("EQ", left, t.colref()))
            else:
                raise ValueError("SQL: columns may only be compared with '='")
            if t.peek() != "AND":
                break
            t.take()
    group: list = []
    if t.peek() == "GROUP":
        t.take()
        t.take("BY")
        group.append(t.colref())
        while t.peek() == ",":
            t.take(",")
            group.append(t.colref())
    if t.peek() is not None:
        raise ValueError(f"SQL: unexpected {t.peek()!r} after the query")
    return {
        "distinct": distinct,
        "items": items,
        "tables": tables,
        "conds": conds,
        "group": group,
    }


def _check_catalog(catalog) -> dict[str, TableSchema]:
    if not isinstance(catalog, dict) or not catalog:
        raise TypeError("catalog must be a non-empty dict of name -> TableSchema")
    for name, schema in catalog.items():
        _check_name("catalog key", name)
        if not isinstance(schema, TableSchema):
            raise TypeError(f"catalog[{name!r}] must be a TableSchema")
    return catalog


def lower_sql(text: str, catalog: dict[str, TableSchema]) -> SumProduct:
    """Lower a query of the chapter's SQL dialect into a sum-product.

    The dialect::

        SELECT [DISTINCT] T.col, ..., [SUM(T.v * U.w ...) | MIN(T.v + U.w ...)]
        FROM T, U, ...
        [WHERE T.col = U.col AND T.col < 5 AND ...]
        [GROUP BY T.col, ...]

    ``SUM`` of a product gives the sum-product semiring, ``MIN`` of a sum the min-plus
    semiring, ``DISTINCT`` without an aggregate the Boolean semiring. The aggregate
    must mention every table's value column once (it is the product of the factors'
    annotations). Equalities between columns merge their variables (the join);
    comparisons with constants become indicator factors. A variable is named after
    the first key column of its class (in ``FROM`` order), suffixed with ``_T`` when
    another class already took that name.

    Raises
    ------
    ValueError
        If the text is not in the dialect or does not fit the catalog.
    """
    if not isinstance(text, str):
        raise TypeError(f"text must be a string, got {type(text).__name__}")
    catalog = _check_catalog(catalog)
    q = _parse_sql(text)
    tables = q["tables"]
    for name in tables:
        if name not in catalog:
            raise ValueError(f"SQL: unknown table {name!r}")
    if len(set(tables)) != len(tables):
        raise ValueError("SQL: a table may appear only once in FROM")

    def key_ref(ref):
        table, col = ref
        if table not in tables:
            raise ValueError(f"SQL: table {table!r} is not in FROM")
        if col not in catalog[table].keys:
            raise ValueError(f"SQL: {table}.{col} is not a key column")
        return ref

    parent = {(t, c): (t, c) for t in tables for c in catalog[t].keys}

    def find(ref):
        while parent[ref] != ref:
            ref = parent[ref]
        return ref

    for cond in q["conds"]:
        if cond[0] == "EQ":
            a, b = find(key_ref(cond[1])), find(key_ref(cond[2]))
            if a != b:
                parent[b] = a
    names: dict = {}
    for t in tables:
        for c in catalog[t].keys:
            root = find((t, c))
            if root not in names:
                names[root] = c if c not in names.values() else f"{c}_{t}"
    var = {ref: names[find(ref)] for ref in parent}

    aggregates = [it for it in q["items"] if it[0] != "COL"]
    if q["distinct"]:
        if aggregates or q["group"]:
            raise ValueError("SQL: DISTINCT takes no aggregate and no GROUP BY")
        semiring = "boolean"
    else:
        if len(aggregates) != 1:
            raise ValueError("SQL: write exactly one SUM(...) or MIN(...)")
        fn, refs = aggregates[0]
        semiring = "sum_product" if fn == "SUM" else "min_plus"
        wanted = sorted((t, catalog[t].value) for t in tables)
        if sorted(refs) != wanted:
            raise ValueError(
                "SQL: the aggregate must use each table's value column once: "
                + ", ".join(f"{t}.{c}" for t, c in wanted)
            )
    out = tuple(var[key_ref(it[1])] for it in q["items"] if it[0] == "COL")
    if len(set(out)) != len(out):
        raise ValueError("SQL: the SELECT list names the same variable twice")
    if q["distinct"] and not out:
        raise ValueError("SQL: DISTINCT needs at least one column")
    if not q["distinct"]:
        grouped = {var[key_ref(ref)] for ref in q["group"]}
        if grouped != set(out):
            raise ValueError("SQL: GROUP BY must list exactly the selected columns")
    atoms = tuple(Atom(t, tuple(var[(t, c)] for c in catalog[t].keys)) for t in tables)
    compares = tuple(
        Compare(var[key_ref(c[1])], c[2], c[3]) for c in q["conds"] if c[0] == "CONST"
    )
    return SumProduct(out, atoms + compares, semiring)


def lift_sql(query: SumProduct, catalog: dict[str, TableSchema]) -> str:
    """Print a sum-product as a query of the SQL dialect (the inverse of lowering).

    Each Atom becomes a table in ``FROM`` (columns bound by position); a variable shared
    by several tables becomes equalities from its first column to the others;
    indicators become comparisons; the semiring picks ``SUM``, ``MIN`` or
    ``DISTINCT``. ``lower_sql(lift_sql(q, c), c) == q`` for queries lowered with the
    same catalog.

    Raises
    ------
    ValueError
        If an Atom's relation is not in the catalog, has the wrong arity, or a
        relation appears twice.
    """
    check_instance("query", query, SumProduct)
    catalog = _check_catalog(catalog)
    refs: dict[str, list[str]] = {}
    names = [a.relation for a in query.atoms]
    if len(set(names)) != len(names):
        raise ValueError("lift_sql: a relation may appear only once")
    for a in query.atoms:
        schema = catalog.get(a.relation)
        if schema is None or len(schema.keys) != len(a.vars):
            raise ValueError(f"lift_sql: {a.relation} does not fit the catalog")
        for v, col in zip(a.vars, schema.keys, strict=True):
            refs.setdefault(v, []).append(f"{a.relation}.{col}")
    conds = [f"{r[0]} = {other}" for r in refs.values() for other in r[1:]]
    conds += [f"{refs[c.var][0]} {c.op} {c.value}" for c in query.compares]
    cols = [refs[v][0] for v in query.out]
    if query.semiring == "boolean":
        select = "SELECT DISTINCT " + ", ".join(cols)
    else:
        values = [f"{a.relation}.{catalog[a.relation].value}" for a in query.atoms]
        fn, op = ("SUM", " * ") if query.semiring == "sum_product" else ("MIN", " + ")
        select = "SELECT " + ", ".join([*cols, f"{fn}({op.join(values)})"])
    text = f"{select} FROM {', '.join(names)}"
    if conds:
        text += " WHERE " + " AND ".join(conds)
    if cols and query.semiring != "boolean":
        text += " GROUP BY " + ", ".join(cols)
    return text


def schema_for(query: SumProduct) -> dict[str, TableSchema]:
    """A catalog under which :func:`lift_sql` can print ``query``: each relation
    gets key columns named after its variables and a value column ``val``."""
    check_instance("query", query, SumProduct)
    return {a.relation: TableSchema(a.vars, "val") for a in query.atoms}


# ------------------------------------------------------- the einsum frontend


def lower_einsum(spec: str, names: Sequence[str]) -> SumProduct:
    """Lower an einsum expression such as ``"ij,jk,k->i"`` into a sum-product.

    Each operand becomes an Atom over its index letters, named by ``names``; letters
    not in the output are summed. A prefix ``"min_plus:"`` or ``"boolean:"`` picks
    another semiring (a tropical or Boolean einsum). Without ``->`` the output is the
    letters that appear once, in alphabetical order (NumPy's rule).

    Raises
    ------
    ValueError
        If the spec is malformed, repeats a letter within an operand (diagonals are
        not supported), or ``names`` does not name each operand once.
    """
    if not isinstance(spec, str):
        raise TypeError(f"spec must be a string, got {type(spec).__name__}")
    text = spec.replace(" ", "")
    semiring = "sum_product"
    if ":" in text:
        semiring, text = text.split(":", 1)
        check_choice("spec semiring", semiring, SEMIRINGS)
    lhs, arrow, rhs = text.partition("->")
    operands = lhs.split(",")
    for op in operands + ([rhs] if arrow else []):
        if not re.fullmatch(r"[a-z]*", op):
            raise ValueError(f"spec must use lowercase letters, got {spec!r}")
    if any(not op for op in operands):
        raise ValueError(f"spec has an empty operand: {spec!r}")
    if isinstance(names, str) or len(names) != len(operands):
        raise ValueError(f"names must name each of the {len(operands)} operands")
    names = tuple(_check_name("names[i]", n) for n in names)
    if len(set(names)) != len(names):
        raise ValueError("names must be distinct")
    for op in operands:
        if len(set(op)) != len(op):
            raise ValueError(f"operand {op!r} repeats a letter (diagonals unsupported)")
    if arrow:
        out = tuple(rhs)
    else:
        letters = "".join(operands)
        out = tuple(sorted(c for c in set(letters) if letters.count(c) == 1))
    atoms = tuple(Atom(n, tuple(op)) for n, op in zip(names, operands, strict=True))
    return SumProduct(out, atoms, semiring)


def lift_einsum(query: SumProduct) -> tuple[str, tuple[str, ...]]:
    """Print a sum-product as an einsum spec and its operand names.

    Variables with names longer than one letter are renamed to unused letters (in
    order of first appearance), so the result may differ from ``query`` by a renaming.

    Raises
    ------
    ValueError
        If the query has selections (einsum cannot express them) or needs more than
        26 letters.
    """
    check_instance("query", query, SumProduct)
    if query.compares:
        raise ValueError("einsum cannot express selections (indicator factors)")
    letters = {v: v for v in query.variables if re.fullmatch(r"[a-z]", v)}
    free = (c for c in "abcdefghijklmnopqrstuvwxyz" if c not in letters.values())
    for v in query.variables:
        if v not in letters:
            letter = next(free, None)
            if letter is None:
                raise ValueError("einsum has only 26 index letters")
            letters[v] = letter
    ops = ",".join("".join(letters[v] for v in a.vars) for a in query.atoms)
    spec = f"{ops}->{''.join(letters[v] for v in query.out)}"
    if query.semiring != "sum_product":
        spec = f"{query.semiring}:{spec}"
    return spec, tuple(a.relation for a in query.atoms)


# ----------------------------------------------------- generated round trips

ROUND_TRIP_CATALOG = {
    "R": TableSchema(("a", "b"), "x"),
    "S": TableSchema(("b", "c"), "y"),
    "T": TableSchema(("c", "d"), "z"),
    "U": TableSchema(("a", "d"), "w"),
}


def random_sql(rng: np.random.Generator, catalog: dict | None = None) -> str:
    """A random query of the SQL dialect over ``catalog`` (default: four tables
    R(a,b), S(b,c), T(c,d), U(a,d)) with joins, selections and one of SUM, MIN or
    DISTINCT. Every query it returns lowers without error."""
    if not isinstance(rng, np.random.Generator):
        raise TypeError(f"rng must be a numpy Generator, got {type(rng).__name__}")
    catalog = _check_catalog(ROUND_TRIP_CATALOG if catalog is None else catalog)
    names = sorted(catalog)
    while True:
        k = int(rng.integers(1, min(3, len(names)) + 1))
        tables = [names[i] for i in rng.permutation(len(names))[:k]]
        conds = []
        for i, t in enumerate(tables):
            for u in tables[i + 1 :]:
                for col in catalog[t].keys:
                    if col in catalog[u].keys and rng.random() < 0.7:
                        conds.append(f"{t}.{col} = {u}.{col}")
        refs = [f"{t}.{c}" for t in tables for c in catalog[t].keys]
        for _ in range(int(rng.integers(0, 3))):
            op = COMPARE_OPS[int(rng.integers(len(COMPARE_OPS)))]
            conds.append(
                f"{refs[int(rng.integers(len(refs)))]} {op} {rng.integers(10)}"
            )
        kind = ("SUM", "MIN", "DISTINCT")[int(rng.integers(3))]
        n_cols = int(rng.integers(1 if kind == "DISTINCT" else 0, 3))
        cols = [refs[i] for i in rng.permutation(len(refs))[:n_cols]]
        values = [f"{t}.{catalog[t].value}" for t in tables]
        if kind == "DISTINCT":
            text = "SELECT DISTINCT " + ", ".join(cols)
        else:
            agg = f"{kind}({(' * ' if kind == 'SUM' else ' + ').join(values)})"
            text = "SELECT " + ", ".join([*cols, agg])
        text += " FROM " + ", ".join(tables)
        if conds:
            text += " WHERE " + " AND ".join(conds)
        if cols and kind != "DISTINCT":
            text += " GROUP BY " + ", ".join(cols)
        try:
            lower_sql(text, catalog)
        except ValueError:
            continue  # two selected columns named one variable: draw again
        return text


def random_einsum(rng: np.random.Generator) -> tuple[str, tuple[str, ...]]:
    """A random einsum spec (1-4 operands over the letters i-m, any semiring) and
    operand names A, B, C, D."""
    if not isinstance(rng, np.random.Generator):
        raise TypeError(f"rng must be a numpy Generator, got {type(rng).__name__}")
    pool = np.array(list("ijklm"))
    n_ops = int(rng.integers(1, 5))
    ops = [
        "".join(rng.permutation(pool)[: int(rng.integers(1, 4))]) for _ in range(n_ops)
    ]
    used = sorted(set("".join(ops)))
    out = "".join(rng.permutation(used)[: int(rng.integers(0, len(used) + 1))])
    semiring = SEMIRINGS[int(rng.integers(len(SEMIRINGS)))]
    spec = f"{','.join(ops)}->{out}"
    if semiring != "sum_product":
        spec = f"{semiring}:{spec}"
    return spec, tuple("ABCD"[:n_ops])


def round_trips(n_queries: int, seed: int) -> dict[str, list[tuple[str, bool]]]:
    """Check ``lower(lift(lower(q))) == lower(q)`` on generated queries.

    Returns, for each frontend (``"sql"``, ``"einsum"``), ``n_queries`` pairs of the
    query text and whether its round trip held.
    """
    n_queries = check_int("n_queries", n_queries, minimum=1)
    rng = np.random.default_rng(check_int("seed", seed, minimum=0))
    out: dict[str, list[tuple[str, bool]]] = {"sql": [], "einsum": []}
    for _ in range(n_queries):
        text = random_sql(rng)
        ir = lower_sql(text, ROUND_TRIP_CATALOG)
        ok = lower_sql(lift_sql(ir, ROUND_TRIP_CATALOG), ROUND_TRIP_CATALOG) == ir
        out["sql"].append((text, ok))
        spec, names = random_einsum(rng)
        ir = lower_einsum(spec, names)
        out["einsum"].append((spec, lower_einsum(*lift_einsum(ir)) == ir))
    return out


# ------------------------------------------------------------- the database


@dataclass(frozen=True)
class Table:
    """A stored relation: rows of dictionary-encoded keys and one value each.

    Rows may repeat a key (an SQL table); reading the table under a semiring adds the
    repeats with the semiring's sum, which is exact for ``SUM`` of products and ``MIN``
    of sums because the product distributes over the sum.
    """

    shape: tuple[int, ...]  # domain size of each key column
    coords: np.ndarray  # int64, (n_rows, len(shape)): key values in [0, shape[c])
    vals: np.ndarray  # float64, (n_rows,)

    def __post_init__(self):
        if not isinstance(self.shape, tuple) or not self.shape:
            raise ValueError("shape must be a non-empty tuple of domain sizes")
        for s in self.shape:
            check_int("shape[i]", s, minimum=1)
        coords = check_array(
            "coords", self.coords, ndim=2, shape=(None, len(self.shape))
        )
        if coords.size and not np.issubdtype(coords.dtype, np.integer):
            raise TypeError(f"coords must hold integers, got dtype {coords.dtype}")
        coords = coords.astype(np.int64, copy=False)
        if coords.size and (
            coords.min() < 0 or np.any(coords.max(axis=0) >= np.array(self.shape))
        ):
            raise ValueError("coords must lie in [0, shape) column by column")
        vals = check_array(
            "vals", self.vals, ndim=1, dtype=np.float64, shape=(coords.shape[0],)
        )
        if np.isnan(vals).any():
            raise ValueError("vals must not contain NaN")
        object.__setattr__(self, "coords", coords)
        object.__setattr__(self, "vals", vals)

    @property
    def nnz(self) -> int:
        return int(self.coords.shape[0])


@dataclass(frozen=True)
class _Sparse:
    """An intermediate sparse relation: distinct coordinates and their values."""

    vars: tuple[str, ...]
    shape: tuple[int, ...]
    coords: np.ndarray  # int64, (len(vars), nnz): one contiguous row per column
    vals: np.ndarray  # float64, (nnz,)

    @property
    def nnz(self) -> int:
        return int(self.vals.shape[0])

    def to_dense(self, semiring: str) -> np.ndarray:
        out = np.full(self.shape, SEMIRING_ZERO[semiring])
        if not self.vars:  # a scalar: at most one entry, and no index to place it
            if self.nnz:
                out[()] = self.vals[0]
            return out
        out[tuple(self.coords)] = self.vals
        return out


def _merge(coords, vals, shape, semiring: str) -> tuple[np.ndarray, np.ndarray]:
    """Add rows that share a key with the semiring's sum; keys come out sorted."""
    if coords.shape[0] == 0:
        return np.zeros((len(shape), 0), dtype=np.int64), vals.copy()
    flat = np.ravel_multi_index(tuple(coords.T), shape)
    if np.all(flat[1:] > flat[:-1]):  # already sorted and distinct (dense-derived data)
        return np.ascontiguousarray(coords.T), vals.copy()
    order = np.argsort(flat, kind="stable")
    flat, vals = flat[order], vals[order]
    starts = np.flatnonzero(np.concatenate(([True], flat[1:] != flat[:-1])))
    reducer = {"sum_product": np.add, "boolean": np.maximum, "min_plus": np.minimum}
    merged = reducer[semiring].reduceat(vals, starts)
    keys = np.stack(np.unravel_index(flat[starts], shape)).astype(np.int64)
    return keys, merged


class Database:
    """Named tables, read as semiring relations in either representation.

    Both representations of a table under a semiring are built on first use and kept
    (the catalog holds a dense array and a coordinate list of every table, so timing a
    plan measures the plan, not a conversion). Under the Boolean semiring a table's
    value is 1 wherever it has a row.
    """

    def __init__(self, tables: dict[str, Table]):
        if not isinstance(tables, dict) or not tables:
            raise TypeError("tables must be a non-empty dict of name -> Table")
        for name, table in tables.items():
            _check_name("table name", name)
            if not isinstance(table, Table):
                raise TypeError(f"tables[{name!r}] must be a Table")
        self.tables = dict(tables)
        self._sparse: dict = {}
        self._dense: dict = {}

    def __contains__(self, name: str) -> bool:
        return name in self.tables

    def shape(self, name: str) -> tuple[int, ...]:
        return self._table(name).shape

    def _table(self, name: str) -> Table:
        if name not in self.tables:
            raise ValueError(f"no table named {name!r} in the database")
        return self.tables[name]

    def sparse(self, name: str, semiring: str) -> tuple[np.ndarray, np.ndarray]:
        """The table's distinct keys, sorted (an int64 array with one row per key
        column, a columnar layout), and their merged values."""
        key = (name, semiring)
        if key not in self._sparse:
            t = self._table(name)
            vals = np.ones_like(t.vals) if semiring == "boolean" else t.vals
            self._sparse[key] = _merge(t.coords, vals, t.shape, semiring)
        return self._sparse[key]

    def dense(self, name: str, semiring: str) -> np.ndarray:
        """The table as a dense array, the semiring's zero where it has no row."""
        key = (name, semiring)
        if key not in self._dense:
            coords, vals = self.sparse(name, semiring)
            out = np.full(self._table(name).shape, SEMIRING_ZERO[semiring])
            out[tuple(coords)] = vals
            self._dense[key] = out
        return self._dense[key]

    def nnz(self, name: str, semiring: str) -> int:
        """Number of distinct keys of the table."""
        return int(self.sparse(name, semiring)[1].shape[0])

    def warm(self, names: Sequence[str], semiring: str) -> None:
        """Build both representations of ``names`` under ``semiring`` now."""
        for name in names:
            self.dense(name, semiring)


def _domains(atoms: Sequence[Atom], db: Database) -> dict[str, int]:
    """Each variable's domain size, read from the tables its atoms bind."""
    sizes: dict[str, int] = {}
    for a in atoms:
        shape = db.shape(a.relation)
        if len(shape) != len(a.vars):
            raise ValueError(
                f"{a.relation} has {len(shape)} columns but the atom binds {a.vars}"
            )
        for v, s in zip(a.vars, shape, strict=True):
            if sizes.setdefault(v, s) != s:
                raise ValueError(f"variable {v!r} has domains {sizes[v]} and {s}")
    return sizes


# ---------------------------------------------------------------- the plans


@dataclass(frozen=True)
class Scan:
    """Read a stored relation, keeping the rows where its selections hold."""

    atom: Atom
    filters: tuple[Compare, ...] = ()

    @property
    def vars(self) -> tuple[str, ...]:
        return self.atom.vars


@dataclass(frozen=True)
class Join:
    """``out = (+)_{vars(left) | vars(right) - out} left (x) right``: a binary
    join-aggregate (a join followed by a group-by, or a pairwise contraction)."""

    left: Scan | Join | Reduce
    right: Scan | Join | Reduce
    out: tuple[str, ...]

    @property
    def vars(self) -> tuple[str, ...]:
        return self.out


@dataclass(frozen=True)
class Reduce:
    """``out = (+)_{vars(child) - out} child``: an aggregation of one input (or a
    transpose, when nothing is summed)."""

    child: Scan | Join | Reduce
    out: tuple[str, ...]

    @property
    def vars(self) -> tuple[str, ...]:
        return self.out


PlanNode = Scan | Join | Reduce


def _scans(query: SumProduct) -> list[Scan]:
    """One Scan per Atom, each selection pushed into the first Atom that binds its
    variable (a selection is a factor on one variable, so distributivity lets it
    move next to any factor that mentions that variable)."""
    filters: dict[int, list[Compare]] = {}
    for c in query.compares:
        owner = next(i for i, a in enumerate(query.atoms) if c.var in a.vars)
        filters.setdefault(owner, []).append(c)
    return [Scan(a, tuple(filters.get(i, ()))) for i, a in enumerate(query.atoms)]


def _left_deep(nodes: Sequence[PlanNode], out: tuple[str, ...]) -> PlanNode:
    """Join ``nodes`` left to right, keeping every variable until the last join,
    which produces exactly ``out``."""
    node = nodes[0]
    for k, nxt in enumerate(nodes[1:], start=2):
        keep = out if k == len(nodes) else _ordered_union(node.vars, nxt.vars)
        node = Join(node, nxt, keep)
    if node.vars != out:
        node = Reduce(node, out)
    return node


def plan_as_written(query: SumProduct) -> PlanNode:
    """The plan a query's text suggests: join the factors in the written order and
    sum a variable at the first join after which no factor and no output needs it.

    For ``Σ_{j,k} A(i,j) B(j,k) v(k)`` this is ``(A B) v``; for an SQL join with a
    group-by it is the join followed by the aggregation.
    """
    check_instance("query", query, SumProduct)
    scans = _scans(query)
    node: PlanNode = scans[0]
    for k in range(1, len(scans)):
        later = {v for s in scans[k + 1 :] for v in s.vars} | set(query.out)
        union = _ordered_union(node.vars, scans[k].vars)
        last = k == len(scans) - 1
        node = Join(
            node, scans[k], query.out if last else tuple(v for v in union if v in later)
        )
    if node.vars != query.out:
        node = Reduce(node, query.out)
    return node


def _index_space(vars_: Sequence[str], domains: dict[str, int]) -> int:
    return math.prod(domains[v] for v in vars_)


def _span(var: str, factors: Sequence[PlanNode], domains: dict[str, int]) -> int:
    """Index space of the factors that mention ``var``: the cost of eliminating it."""
    touching = [f.vars for f in factors if var in f.vars]
    return _index_space(_ordered_union(*touching), domains)


def plan_rewritten(query: SumProduct, domains: dict[str, int]) -> PlanNode:
    """The plan after the distributivity rewrite (variable elimination).

    Distributivity, ``a (x) b (+) a (x) c = a (x) (b (+) c)``, lets a sum over a
    variable move past every factor that does not mention it. Repeatedly, pick the
    summed variable whose factors span the smallest index space, join only those
    factors, sum the variable out right there, and put the result back among the
    factors; at the end join what is left. The same code rewrites SQL, einsum and
    fixpoint steps: ``Σ_c R(a,b) S(b,c)`` becomes ``R(a,b) Σ_c S(b,c)``, and
    ``(A B) v`` becomes ``A (B v)``.

    Parameters
    ----------
    query : SumProduct
    domains : dict of str to int
        Domain size of every variable (guides the elimination order).
    """
    check_instance("query", query, SumProduct)
    for v in query.variables:
        if v not in domains:
            raise ValueError(f"domains has no size for variable {v!r}")
    factors: list[PlanNode] = list(_scans(query))
    summed = list(query.summed)
    while summed:
        var = min(summed, key=lambda v: (_span(v, factors, domains), summed.index(v)))
        group = [f for f in factors if var in f.vars]
        keep = tuple(v for v in _ordered_union(*(f.vars for f in group)) if v != var)
        combined = _left_deep(group, keep)
        first = factors.index(group[0])
        factors = [f for f in factors if var not in f.vars]
        factors.insert(min(first, len(factors)), combined)
        summed.remove(var)
    return _left_deep(factors, query.out)


def plan_text(node: PlanNode, semiring: str = "sum_product") -> str:
    """A plan as a nested expression, e.g. ``Σ_b( R(a,b) · Σ_c( S(b,c) ) )``."""
    agg, times = _SYMBOLS[check_choice("semiring", semiring, SEMIRINGS)]
    if isinstance(node, Scan):
        parts = [_factor_text(node.atom)] + [_factor_text(c) for c in node.filters]
        return times.join(parts)
    if isinstance(node, Join):
        inner = plan_text(node.left, semiring) + times + plan_text(node.right, semiring)
        gone = [
            v
            for v in _ordered_union(node.left.vars, node.right.vars)
            if v not in node.out
        ]
    elif isinstance(node, Reduce):
        inner = plan_text(node.child, semiring)
        gone = [v for v in node.child.vars if v not in node.out]
    else:
        raise TypeError(f"node must be a plan node, got {type(node).__name__}")
    if not gone:
        return f"({inner})"
    return f"{agg}_{{{','.join(gone)}}}( {inner} )"


def _nodes(node: PlanNode) -> list[PlanNode]:
    if isinstance(node, Scan):
        return [node]
    if isinstance(node, Join):
        return _nodes(node.left) + _nodes(node.right) + [node]
    return _nodes(node.child) + [node]


def _plan_atoms(node: PlanNode) -> list[Atom]:
    return [n.atom for n in _nodes(node) if isinstance(n, Scan)]


def dense_madds(node: PlanNode, domains: dict[str, int]) -> int:
    """Multiply-adds of a plan run on dense arrays: every point of each join's index
    space, and every input point of each reduction that sums something."""
    total = 0
    for n in _nodes(node):
        if isinstance(n, Join):
            total += _index_space(_ordered_union(n.left.vars, n.right.vars), domains)
        elif isinstance(n, Reduce) and set(n.out) != set(n.child.vars):
            total += _index_space(n.child.vars, domains)
    return total


# -------------------------------------------------------------- the cost rule


@dataclass(frozen=True)
class Choice:
    """The cost rule's verdict on one plan."""

    dense_cost: float  # estimated cost on dense arrays (dense multiply-add units)
    sparse_cost: float  # estimated cost on coordinate lists (same units)
    dense_madds: int  # multiply-adds on dense arrays (exact)
    sparse_madds: float  # estimated multiply-adds on coordinate lists
    pick: str  # "dense" or "sparse": the cheaper

    @property
    def ratio(self) -> float:
        """Estimated cost of the rejected representation over the picked one."""
        hi, lo = (
            max(self.dense_cost, self.sparse_cost),
            min(self.dense_cost, self.sparse_cost),
        )
        return hi / lo if lo > 0 else math.inf


def _filter_fraction(filters: Sequence[Compare], domains: dict[str, int]) -> float:
    frac = 1.0
    for c in filters:
        frac *= np.count_nonzero(c.holds(np.arange(domains[c.var]))) / domains[c.var]
    return frac


def _sparse_estimate(node, db, semiring, domains) -> tuple[float, float, float]:
    """(estimated entries, multiply-adds, cost) of a plan on coordinate lists,
    assuming keys spread independently and uniformly over their domains."""
    if isinstance(node, Scan):
        # reading a table is charged to the node that consumes it
        nnz = db.nnz(node.atom.relation, semiring)
        return nnz * _filter_fraction(node.filters, domains), 0.0, 0.0
    if isinstance(node, Join):
        nl, ml, cl = _sparse_estimate(node.left, db, semiring, domains)
        nr, mr, cr = _sparse_estimate(node.right, db, semiring, domains)
        shared = [v for v in node.left.vars if v in node.right.vars]
        pairs = nl * nr / _index_space(shared, domains)
        n_in, madds = nl + nr, pairs
        inputs = (ml + mr, cl + cr)
    else:
        n_in, m_in, c_in = _sparse_estimate(node.child, db, semiring, domains)
        summing = set(node.out) != set(node.child.vars)
        pairs = madds = n_in if summing else 0.0
        inputs = (m_in, c_in)
    space = _index_space(node.out, domains)
    nnz = space * -math.expm1(-pairs / space) if space else 0.0
    cost = (
        SPARSE_PAIR_COST * pairs + SPARSE_ENTRY_COST * n_in + ACCUMULATOR_COST * space
    )
    return nnz, inputs[0] + madds, inputs[1] + cost


def choose_representation(node: PlanNode, db: Database, semiring: str) -> Choice:
    """The cost rule: estimate a plan's cost on dense arrays and on coordinate lists
    and pick the cheaper.

    Dense cost is the plan's exact multiply-adds (:func:`dense_madds`) at one unit
    each. Sparse cost prices the estimated matching pairs of every join and reduction
    at ``SPARSE_PAIR_COST``, every entry read at ``SPARSE_ENTRY_COST`` and every slot of
    the dense accumulator cleared at ``ACCUMULATOR_COST``; pairs are estimated as
    ``nnz(left) * nnz(right) / |shared domain|``.
    """
    check_instance("db", db, Database)
    check_choice("semiring", semiring, SEMIRINGS)
    domains = _domains(_plan_atoms(node), db)
    d_madds = dense_madds(node, domains)
    _, s_madds, s_cost = _sparse_estimate(node, db, semiring, domains)
    d_cost = DENSE_COST * d_madds
    pick = "sparse" if s_cost < d_cost else "dense"
    log.debug("cost rule: dense %.3g, sparse %.3g -> %s", d_cost, s_cost, pick)
    return Choice(float(d_cost), float(s_cost), int(d_madds), float(s_madds), pick)


# ---------------------------------------------------------------- execution


@dataclass(frozen=True)
class Execution:
    """What running a plan produced."""

    vars: tuple[str, ...]  # the result's variables
    representation: str  # "dense" or "sparse"
    value: np.ndarray | _Sparse  # the result in that representation
    madds: int  # multiply-adds performed
    semiring: str

    def to_dense(self) -> np.ndarray:
        """The result as a dense array over ``vars``."""
        if isinstance(self.value, _Sparse):
            return self.value.to_dense(self.semiring)
        return np.asarray(self.value)


_LETTERS = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"


def _dense_join(left, lvars, right, rvars, out, semiring):
    union = _ordered_union(lvars, rvars)
    summed = [v for v in union if v not in out]
    if semiring == "min_plus":
        size = math.prod(
            max(
                left.shape[lvars.index(v)] if v in lvars else 1,
                right.shape[rvars.index(v)] if v in rvars else 1,
            )
            for v in union
        )
        if size > MAX_BROADCAST:
            raise ValueError(f"a dense min-plus join over {size:,} points is too large")
        order = list(out) + summed
        lb = _align(left, lvars, order)
        rb = _align(right, rvars, order)
        total = lb + rb
        axes = tuple(range(len(out), len(order)))
        return total.min(axis=axes) if axes else total
    letter = {v: _LETTERS[i] for i, v in enumerate(union)}
    spec = (
        "".join(letter[v] for v in lvars)
        + ","
        + "".join(letter[v] for v in rvars)
        + "->"
        + "".join(letter[v] for v in out)
    )
    # NumPy may only use BLAS when every summed variable is in both inputs; otherwise
    # its optimiser would pre-sum a one-sided variable, i.e. apply the rewrite itself.
    blas = all(v in lvars and v in rvars for v in summed)
    res = np.einsum(spec, left, right, optimize=blas)
    return np.minimum(res, 1.0) if semiring == "boolean" else res


def _align(arr, vars_, order):
    """View ``arr`` (axes ``vars_``) with axes in ``order``, size 1 where absent."""
    perm = [vars_.index(v) for v in order if v in vars_]
    moved = np.transpose(arr, perm)
    shape = [arr.shape[vars_.index(v)] if v in vars_ else 1 for v in order]
    return moved.reshape(shape)


def _dense_reduce(arr, vars_, out, semiring):
    summed = tuple(i for i, v in enumerate(vars_) if v not in out)
    if summed:
        fn = {"sum_product": np.sum, "boolean": np.max, "min_plus": np.min}[semiring]
        arr = fn(arr, axis=summed)
        vars_ = tuple(v for v in vars_ if v in out)
    return np.transpose(arr, [vars_.index(v) for v in out])


def _ravel(coords, cols, dims) -> np.ndarray:
    """Row-major flat index of the columns ``cols`` (values already in range)."""
    if not cols:
        return np.zeros(coords.shape[1], dtype=np.int64)
    flat = coords[cols[0]]
    for c, d in zip(cols[1:], dims[1:], strict=True):
        flat = flat * d + coords[c]
    return flat


def _unravel(index: np.ndarray, dims: tuple[int, ...]) -> np.ndarray:
    """Columns (one row each) of the flat indices ``index`` over ``dims``."""
    if not dims:
        return np.zeros((0, index.shape[0]), dtype=np.int64)
    return np.stack(np.unravel_index(index, dims)).astype(np.int64)


def _sparse_join(left: _Sparse, right: _Sparse, out, semiring) -> tuple[_Sparse, int]:
    # build the accumulator over the smaller input (side b), probe with the other
    a, b = (left, right) if left.nnz >= right.nnz else (right, left)
    size = dict(zip(a.vars, a.shape, strict=True)) | dict(
        zip(b.vars, b.shape, strict=True)
    )
    shared = [v for v in a.vars if v in b.vars]
    kept_a = [v for v in out if v in a.vars]
    kept_b = [v for v in out if v in b.vars and v not in a.vars]
    key_dims = tuple(size[v] for v in shared)
    dims_a, dims_b = tuple(size[v] for v in kept_a), tuple(size[v] for v in kept_b)
    n_gb, n_out = math.prod(dims_b), math.prod(dims_a) * math.prod(dims_b)
    if n_out > MAX_ACCUMULATOR:
        raise ValueError(f"a sparse join into {n_out:,} groups is too large")
    index, vals, madds = sparse_join_aggregate(
        _ravel(a.coords, [a.vars.index(v) for v in shared], key_dims),
        _ravel(a.coords, [a.vars.index(v) for v in kept_a], dims_a),
        a.vals,
        _ravel(b.coords, [b.vars.index(v) for v in shared], key_dims),
        _ravel(b.coords, [b.vars.index(v) for v in kept_b], dims_b),
        b.vals,
        math.prod(key_dims),
        n_gb,
        n_out,
        SEMIRING_IDS[semiring],
    )
    layout = kept_a + kept_b
    coords = _unravel(index, dims_a + dims_b)[[layout.index(v) for v in out]]
    return _Sparse(tuple(out), tuple(size[v] for v in out), coords, vals), int(madds)


def _sparse_reduce(child: _Sparse, out, semiring) -> tuple[_Sparse, int]:
    cols = [child.vars.index(v) for v in out]
    dims = tuple(child.shape[c] for c in cols)
    if set(out) == set(child.vars):
        return _Sparse(tuple(out), dims, child.coords[cols], child.vals), 0
    flat = _ravel(child.coords, cols, dims)
    acc = np.full(math.prod(dims), SEMIRING_ZERO[semiring])
    ufunc = {"sum_product": np.add, "boolean": np.maximum, "min_plus": np.minimum}
    ufunc[semiring].at(acc, flat, child.vals)
    touched = np.zeros(acc.shape[0], dtype=bool)
    touched[flat] = True
    index = np.flatnonzero(touched)
    return _Sparse(tuple(out), dims, _unravel(index, dims), acc[index]), child.nnz


def _scan_dense(scan: Scan, db, semiring, bindings):
    arr = bindings.get(scan.atom.relation)
    arr = db.dense(scan.atom.relation, semiring) if arr is None else arr
    for c in scan.filters:
        axis = scan.vars.index(c.var)
        keep = c.holds(np.arange(arr.shape[axis]))
        shape = [1] * arr.ndim
        shape[axis] = -1
        arr = np.where(keep.reshape(shape), arr, SEMIRING_ZERO[semiring])
    return arr


def _scan_sparse(scan: Scan, db, semiring, bindings) -> _Sparse:
    bound = bindings.get(scan.atom.relation)
    if bound is not None:
        coords, vals, shape = bound.coords, bound.vals, bound.shape
    else:
        coords, vals = db.sparse(scan.atom.relation, semiring)
        shape = db.shape(scan.atom.relation)
    if scan.filters:
        keep = np.ones(vals.shape[0], dtype=bool)
        for c in scan.filters:
            keep &= c.holds(coords[scan.vars.index(c.var)])
        coords, vals = coords[:, keep], vals[keep]
    return _Sparse(scan.vars, tuple(shape), coords, vals)


def _run(node, db, semiring, representation, bindings):
    if isinstance(node, Scan):
        if representation == "dense":
            return _scan_dense(node, db, semiring, bindings), 0
        return _scan_sparse(node, db, semiring, bindings), 0
    if isinstance(node, Join):
        left, ml = _run(node.left, db, semiring, representation, bindings)
        right, mr = _run(node.right, db, semiring, representation, bindings)
        if representation == "dense":
            dom = {}
            for vs, arr in ((node.left.vars, left), (node.right.vars, right)):
                dom.update(zip(vs, arr.shape, strict=True))
            union = _ordered_union(node.left.vars, node.right.vars)
            value = _dense_join(
                left, node.left.vars, right, node.right.vars, node.out, semiring
            )
            return value, ml + mr + math.prod(dom[v] for v in union)
        value, m = _sparse_join(left, right, node.out, semiring)
        return value, ml + mr + m
    child, mc = _run(node.child, db, semiring, representation, bindings)
    if representation == "dense":
        summing = set(node.out) != set(node.child.vars)
        value = _dense_reduce(child, node.child.vars, node.out, semiring)
        return value, mc + (child.size if summing else 0)
    value, m = _sparse_reduce(child, node.out, semiring)
    return value, mc + m


def execute(
    node: PlanNode,
    db: Database,
    semiring: str,
    representation: str,
    bindings: dict | None = None,
) -> Execution:
    """Run a plan on dense arrays or on coordinate lists.

    Dense joins go to ``numpy.einsum`` (BLAS when the join is a matrix product),
    min-plus joins to broadcasting; sparse joins go to the kernel
    :func:`paperlab.kernels.semiring.sparse_join_aggregate`.

    Parameters
    ----------
    node : Scan, Join or Reduce
        The plan.
    db : Database
    semiring : {"sum_product", "boolean", "min_plus"}
    representation : {"dense", "sparse"}
    bindings : dict, optional
        Relations that override the database's, by name (an ndarray for dense, the
        ``value`` of a sparse :class:`Execution` for sparse); fixpoints use this.

    Returns
    -------
    Execution
    """
    if not isinstance(node, Scan | Join | Reduce):
        raise TypeError(f"node must be a plan node, got {type(node).__name__}")
    check_instance("db", db, Database)
    check_choice("semiring", semiring, SEMIRINGS)
    check_choice("representation", representation, REPRESENTATIONS)
    value, madds = _run(node, db, semiring, representation, bindings or {})
    if representation == "dense":
        value = np.asarray(value, dtype=np.float64)  # a 0-d array for scalars
    return Execution(node.vars, representation, value, int(madds), semiring)


@dataclass(frozen=True)
class FixpointRun:
    """What evaluating a recursive query produced."""

    values: np.ndarray  # the least fixpoint, dense over the output variables
    rounds: int  # steps evaluated, including the last one that changed nothing
    madds: int  # multiply-adds over all steps
    representation: str


def _edge_pattern(fix: Fixpoint):
    """Match ``step = (+)_m X(rows..., m) (x) E(m, t)`` with output ``(rows..., t)``."""
    step = fix.step
    if len(step.atoms) != 2 or step.compares:
        return None
    rec = next(a for a in step.atoms if a.relation == fix.name)
    edge = next(a for a in step.atoms if a.relation != fix.name)
    if len(edge.vars) != 2 or not rec.vars or rec.vars[-1] != edge.vars[0]:
        return None
    if step.out != rec.vars[:-1] + (edge.vars[1],):
        return None
    return edge


def evaluate_fixpoint(
    fix: Fixpoint, db: Database, representation: str, max_rounds: int = 1_000
) -> FixpointRun:
    """Evaluate ``X = base (+) step(X)`` by naive iteration from ``X = base``.

    Dense: each round runs the step's plan on arrays and adds the base. Sparse: a
    linear step over an edge relation, ``(+)_m X(..., m) (x) E(m, t)``, is specialised
    to the fused relaxation loop :func:`paperlab.kernels.semiring.semiring_relax` over
    the edge list (breadth-first search for Boolean, Bellman-Ford for min-plus). Both
    run the same sequence of iterates, so they stop at the same round.

    Raises
    ------
    ValueError
        If the iteration has not converged after ``max_rounds``, or a sparse fixpoint's
        step is not a linear step over one edge relation.
    """
    check_instance("fix", fix, Fixpoint)
    check_choice("representation", representation, REPRESENTATIONS)
    max_rounds = check_int("max_rounds", max_rounds, minimum=1)
    semiring = fix.semiring
    base_plan = plan_rewritten(fix.base, _domains(fix.base.atoms, db))
    base = execute(base_plan, db, semiring, "dense").to_dense()
    if representation == "sparse":
        edge = _edge_pattern(fix)
        if edge is None:
            raise ValueError(
                "a sparse fixpoint needs a linear step over one edge relation"
            )
        coords, vals = db.sparse(edge.relation, semiring)
        rows = base.reshape(-1, base.shape[-1])
        x, rounds, madds, converged = semiring_relax(
            np.ascontiguousarray(rows),
            coords[0],
            coords[1],
            vals,
            SEMIRING_IDS[semiring],
            max_rounds,
        )
        if not converged:
            raise ValueError(f"the fixpoint did not converge in {max_rounds} rounds")
        return FixpointRun(x.reshape(base.shape), int(rounds), int(madds), "sparse")
    # the recursive atom binds X's columns (the head's variables) by position
    rec = next(a for a in fix.step.atoms if a.relation == fix.name)
    domains = _domains([a for a in fix.step.atoms if a is not rec], db)
    for v, size in zip(rec.vars, base.shape, strict=True):
        if domains.setdefault(v, size) != size:
            raise ValueError(f"variable {v!r} has domains {domains[v]} and {size}")
    step_plan = plan_rewritten(fix.step, domains)
    add = {"sum_product": np.add, "boolean": np.maximum, "min_plus": np.minimum}[
        semiring
    ]
    x, madds = base, 0
    for rounds in range(1, max_rounds + 1):
        step = execute(step_plan, db, semiring, "dense", {fix.name: x})
        new = add(base, step.to_dense())
        madds += step.madds
        if np.array_equal(new, x):
            return FixpointRun(new, rounds, madds, "dense")
        x = new
    raise ValueError(f"the fixpoint did not converge in {max_rounds} rounds")


# ---------------------------------------------------------------- workloads


@dataclass(frozen=True)
class Workload:
    """A query, the database it runs on, and an independently computed answer."""

    name: str  # e.g. "SQL join + GROUP BY"
    db: Database
    query: SumProduct
    reference: np.ndarray  # dense over query.out, the semiring's zero where empty


SQL_CATALOG = {"R": TableSchema(("a", "b"), "x"), "S": TableSchema(("b", "c"), "y")}
SQL_QUERY = "SELECT R.a, SUM(R.x * S.y) FROM R, S WHERE R.b = S.b GROUP BY R.a"
TENSOR_SPEC = ("ij,jk,k->i", ("A", "B", "v"))


def relational_reference(db: Database, n_groups: int) -> np.ndarray:
    """``SUM(R.x * S.y) GROUP BY R.a`` computed the way a textbook engine would,
    with NumPy only: materialise every joined row pair, then a grouped sum."""
    r, s = db.tables["R"], db.tables["S"]
    order = np.argsort(s.coords[:, 0], kind="stable")
    s_b = s.coords[order, 0]
    lo = np.searchsorted(s_b, r.coords[:, 1], side="left")
    hi = np.searchsorted(s_b, r.coords[:, 1], side="right")
    counts = hi - lo
    r_idx = np.repeat(np.arange(r.nnz), counts)
    within = np.arange(r_idx.shape[0]) - np.repeat(np.cumsum(counts) - counts, counts)
    s_idx = order[np.repeat(lo, counts) + within]
    weights = r.vals[r_idx] * s.vals[s_idx]
    return np.bincount(r.coords[r_idx, 0], weights=weights, minlength=n_groups)


def relational_workload(
    n_rows: int, n_keys: int, n_groups: int, rng: np.random.Generator
) -> Workload:
    """Tables R(a, b, x) and S(b, c, y) with ``n_rows`` rows each, join keys b drawn
    uniformly from ``n_keys`` values and a, c from ``n_groups``; the query is
    ``SELECT R.a, SUM(R.x * S.y) FROM R, S WHERE R.b = S.b GROUP BY R.a``, which joins
    about ``n_rows**2 / n_keys`` row pairs when evaluated naively."""
    n_rows = check_int("n_rows", n_rows, minimum=1)
    n_keys = check_int("n_keys", n_keys, minimum=1)
    n_groups = check_int("n_groups", n_groups, minimum=1)
    if not isinstance(rng, np.random.Generator):
        raise TypeError(f"rng must be a numpy Generator, got {type(rng).__name__}")

    def table(first: int, second: int) -> Table:
        coords = np.stack(
            [rng.integers(0, first, n_rows), rng.integers(0, second, n_rows)], axis=1
        )
        return Table((first, second), coords, rng.uniform(0.0, 1.0, n_rows))

    db = Database({"R": table(n_groups, n_keys), "S": table(n_keys, n_groups)})
    query = lower_sql(SQL_QUERY, SQL_CATALOG)
    return Workload(
        "SQL join + GROUP BY", db, query, relational_reference(db, n_groups)
    )


def tensor_workload(n: int, density: float, rng: np.random.Generator) -> Workload:
    """Random ``n x n`` matrices A and B with a fraction ``density`` of non-zeros
    (standard normal values) and a dense vector v; the query is the einsum
    ``ij,jk,k->i``, i.e. ``A B v``, checked against ``numpy.einsum``."""
    n = check_int("n", n, minimum=1)
    density = check_float(
        "density", density, minimum=0.0, strict_minimum=True, maximum=1.0
    )
    if not isinstance(rng, np.random.Generator):
        raise TypeError(f"rng must be a numpy Generator, got {type(rng).__name__}")

    def matrix() -> Table:
        coords = np.argwhere(rng.random((n, n)) < density)
        return Table((n, n), coords, rng.standard_normal(coords.shape[0]))

    v = Table((n,), np.arange(n).reshape(-1, 1), rng.standard_normal(n))
    db = Database({"A": matrix(), "B": matrix(), "v": v})
    query = lower_einsum(*TENSOR_SPEC)
    dense = [db.dense(name, "sum_product") for name in TENSOR_SPEC[1]]
    reference = np.einsum(TENSOR_SPEC[0], *dense, optimize=True)
    return Workload(f"einsum ij,jk,k->i at {density:.0%}", db, query, reference)


def _load_graph(name: str):
    import networkx as nx

    check_choice("name", name, GRAPHS)
    graph = nx.karate_club_graph() if name == "karate" else nx.les_miserables_graph()
    nodes = list(graph.nodes)
    return graph, nodes, {node: i for i, node in enumerate(nodes)}


def reachability_program(edge: str = "Edag") -> Fixpoint:
    """``X(s,t) = E(s,t) ∨ ∃_m X(s,m) ∧ E(m,t)``: pairs joined by a path of one or more
    edges (transitive closure), in the Boolean semiring."""
    _check_name("edge", edge)
    base = SumProduct(("s", "t"), (Atom(edge, ("s", "t")),), "boolean")
    step = SumProduct(
        ("s", "t"), (Atom("X", ("s", "m")), Atom(edge, ("m", "t"))), "boolean"
    )
    return Fixpoint("X", base, step)


def shortest_path_program(edge: str = "E", source: str = "Src") -> Fixpoint:
    """``D(t) = min( Src(t), min_m D(m) + E(m,t) )``: single-source shortest path
    lengths, in the min-plus semiring (``Src`` is 0 at the source, absent elsewhere)."""
    _check_name("edge", edge)
    _check_name("source", source)
    base = SumProduct(("t",), (Atom(source, ("t",)),), "min_plus")
    step = SumProduct(("t",), (Atom("D", ("m",)), Atom(edge, ("m", "t"))), "min_plus")
    return Fixpoint("D", base, step)


def graph_workload(name: str) -> tuple[Database, dict[str, np.ndarray], str]:
    """One of networkx's built-in graphs as tables, and networkx's answers.

    Tables: ``E`` (both directions of every edge, its ``weight`` as length), ``Edag``
    (every edge once, from the lower-numbered to the higher-numbered node, so that
    reachability is not trivially all pairs), and ``Src`` (the source of the shortest
    paths: the node of highest degree). References: reachability from
    ``networkx.descendants`` on the oriented graph, distances from Dijkstra.

    Returns
    -------
    db : Database
    reference : dict
        ``"reachability"``: (n, n) array of 0/1; ``"shortest paths"``: (n,) array of
        lengths, ``inf`` where unreachable.
    source : str
        The source node's name.
    """
    import networkx as nx

    graph, nodes, index = _load_graph(name)
    n = len(nodes)
    pairs = np.array([(index[u], index[v]) for u, v in graph.edges], dtype=np.int64)
    weights = np.array([d["weight"] for _, _, d in graph.edges(data=True)], float)
    both = np.concatenate((pairs, pairs[:, ::-1]))
    source = max(nodes, key=lambda node: (graph.degree(node), -index[node]))
    db = Database(
        {
            "E": Table((n, n), both, np.concatenate((weights, weights))),
            "Edag": Table((n, n), np.sort(pairs, axis=1), np.ones(pairs.shape[0])),
            "Src": Table((n,), np.array([[index[source]]]), np.zeros(1)),
        }
    )
    dag = nx.DiGraph()
    dag.add_nodes_from(range(n))
    dag.add_edges_from(map(tuple, np.sort(pairs, axis=1)))
    reach = np.zeros((n, n))
    for s in range(n):
        reach[s, list(nx.descendants(dag, s))] = 1.0
    dist = np.full(n, math.inf)
    for node, d in nx.single_source_dijkstra_path_length(graph, source).items():
        dist[index[node]] = d
    return db, {"reachability": reach, "shortest paths": dist}, str(source)


def result_error(got: np.ndarray, reference: np.ndarray, semiring: str) -> float:
    """Largest difference from the reference, relative to ``max(1, max |ref|)``.

    Entries that are infinite (min-plus: unreachable) must match exactly; a shape or
    infinity mismatch gives ``inf``.
    """
    got = check_array("got", got, dtype=np.float64)
    reference = check_array("reference", reference, dtype=np.float64)
    check_choice("semiring", semiring, SEMIRINGS)
    if got.shape != reference.shape:
        return math.inf
    inf_got, inf_ref = np.isinf(got), np.isinf(reference)
    if not np.array_equal(inf_got, inf_ref) or np.any(
        got[inf_got] != reference[inf_ref]
    ):
        return math.inf
    finite = ~inf_ref
    if not finite.any():
        return 0.0
    diff = np.max(np.abs(got[finite] - reference[finite]))
    return float(diff / max(1.0, np.max(np.abs(reference[finite]))))


# --------------------------------------------------------------- experiment


@dataclass(frozen=True)
class Config:
    """Sizes, seeds and the system under test (the mechanism or a baseline)."""

    variant: str = "mechanism"  # one of VARIANTS: rewrite + cost rule, or a baseline
    sql_rows: int = 20_000  # rows in each of R and S
    sql_keys: int = 200  # distinct join keys b
    sql_groups: int = 2_000  # distinct values of a (and of c)
    tensor_n: int = 2_000  # A and B are n x n
    densities: tuple[float, ...] = (0.01, 0.5)  # non-zero fraction of A and B
    graphs: tuple[str, ...] = GRAPHS  # networkx graphs for the fixpoints
    n_round_trips: int = 20  # generated queries per frontend
    timing_repeats: int = 7  # timed samples per quick plan (median reported)
    max_dense_madds: float = 1e8  # dense plans above this are costed, not run
    max_sparse_madds: float = 1e8  # sparse plans above this are costed, not run
    seed: int = 0

    def __post_init__(self):
        check_choice("variant", self.variant, VARIANTS)
        check_int("sql_rows", self.sql_rows, minimum=1)
        check_int("sql_keys", self.sql_keys, minimum=1)
        check_int("sql_groups", self.sql_groups, minimum=1)
        check_int("tensor_n", self.tensor_n, minimum=2)
        if not isinstance(self.densities, tuple) or not self.densities:
            raise ValueError("densities must be a non-empty tuple of fractions")
        for d in self.densities:
            check_float(
                "densities[i]", d, minimum=0.0, strict_minimum=True, maximum=1.0
            )
        if list(self.densities) != sorted(set(self.densities)):
            raise ValueError("densities must be increasing")
        if not isinstance(self.graphs, tuple):
            raise TypeError("graphs must be a tuple of names")
        for g in self.graphs:
            check_choice("graphs[i]", g, GRAPHS)
        check_int("n_round_trips", self.n_round_trips, minimum=1)
        check_int("timing_repeats", self.timing_repeats, minimum=1)
        check_float("max_dense_madds", self.max_dense_madds, minimum=0.0)
        check_float("max_sparse_madds", self.max_sparse_madds, minimum=0.0)
        check_int("seed", self.seed, minimum=0)


@dataclass(frozen=True)
class PlanRun:
    """One plan in one representation on one workload case."""

    workload: str  # "relational", "tensor" or "graph"
    case: str  # e.g. "1%" or "karate: reachability"
    plan: str  # "as written", "rewritten" or "fixpoint"
    representation: str  # "dense" or "sparse"
    picked: bool  # the system under test runs this plan in this representation
    executed: bool  # False: too costly, only costed
    madds: float  # counted when executed; else exact (dense) or estimated (sparse)
    cost: float  # the cost rule's estimate
    seconds: float  # median wall time (nan when not executed)
    error: float  # result_error against the reference (nan when not executed)
    exact: bool  # the reference must match exactly (Boolean, integer min-plus)
    rounds: int = 0  # fixpoint rounds (0 for non-recursive queries)


@dataclass(frozen=True)
class Result:
    config: Config
    runs: tuple[PlanRun, ...]
    round_trips: dict[str, tuple[int, int]]  # frontend -> (passed, generated)
    plans: dict[str, dict[str, str]]  # case -> plan kind -> plan text
    examples: dict[str, list[str]] = field(default_factory=dict)  # generated queries

    def get(self, workload: str, case: str, plan: str, representation: str) -> PlanRun:
        """The run of one plan in one representation."""
        for r in self.runs:
            if (r.workload, r.case, r.plan, r.representation) == (
                workload,
                case,
                plan,
                representation,
            ):
                return r
        raise KeyError((workload, case, plan, representation))

    def cases(self, workload: str) -> list[str]:
        """The cases of a workload, in the order they ran."""
        return list(dict.fromkeys(r.case for r in self.runs if r.workload == workload))

    def picked(self, workload: str, case: str) -> PlanRun:
        """The run the system under test chooses for a case."""
        return next(
            r
            for r in self.runs
            if (r.workload, r.case) == (workload, case) and r.picked
        )

    def rewrite_gain(self, workload: str, case: str) -> float:
        """Multiply-adds of the plan as written over those of the picked plan, both in
        the picked representation."""
        pick = self.picked(workload, case)
        written = self.get(workload, case, "as written", pick.representation)
        return written.madds / pick.madds

    def pick_speedup(self, workload: str, case: str) -> float:
        """Median time of the picked plan in the other representation over its median
        time in the picked one (nan if the other was not run)."""
        pick = self.picked(workload, case)
        other = "dense" if pick.representation == "sparse" else "sparse"
        return self.get(workload, case, pick.plan, other).seconds / pick.seconds


QUICK_SECONDS = 0.05  # runs faster than this are repeated for a median
SAMPLE_SECONDS = 0.005  # a timed sample loops a quick run at least this long
GRAPH_TIMING_REPEATS = 3


def _timed_together(fns: Sequence, repeats: int) -> tuple[list, list[float]]:
    """Run every function once (keeping its value and time); then time the quick
    ones ``repeats`` more times, round robin, so that the load on a shared machine
    falls on all of them alike. A sample of a very quick function loops it for at
    least ``SAMPLE_SECONDS``, so one hiccup of the machine cannot fill a whole sample.
    Returns the values and the median seconds per call."""
    values, seconds = [], []
    for fn in fns:
        start = time.perf_counter()
        values.append(fn())
        seconds.append(time.perf_counter() - start)
    quick = [i for i, t in enumerate(seconds) if t < QUICK_SECONDS]
    loops = {
        i: max(1, math.ceil(SAMPLE_SECONDS / max(seconds[i], 1e-6))) for i in quick
    }
    samples: dict[int, list[float]] = {i: [] for i in quick}
    for _ in range(repeats):
        for i in quick:
            start = time.perf_counter()
            for _ in range(loops[i]):
                fns[i]()
            samples[i].append((time.perf_counter() - start) / loops[i])
    for i in quick:
        seconds[i] = float(np.median(samples[i]))
    return values, seconds


def _timed(fn, repeats: int):
    """One function through :func:`_timed_together`: its value and median seconds."""
    values, seconds = _timed_together([fn], repeats)
    return values[0], seconds[0]


def _warm_kernels() -> None:
    """Compile (or load from Numba's cache) the kernels before anything is timed."""
    one = np.zeros(1, dtype=np.int64)
    for semiring in SEMIRING_IDS.values():
        sparse_join_aggregate(
            one, one, np.ones(1), one, one, np.ones(1), 1, 1, 1, semiring
        )
        semiring_relax(np.zeros((1, 1)), one, one, np.ones(1), semiring, 2)


def _query_runs(workload: Workload, kind: str, case: str, config: Config) -> list:
    """Both plans of a query in both representations (too costly ones only costed)."""
    q, db = workload.query, workload.db
    domains = _domains(q.atoms, db)
    plans = {
        "as written": plan_as_written(q),
        "rewritten": plan_rewritten(q, domains),
    }
    system = "as written" if config.variant == "no_rewrite" else "rewritten"
    choices = {k: choose_representation(p, db, q.semiring) for k, p in plans.items()}
    pick = "dense" if config.variant == "fixed_dense" else choices[system].pick
    db.warm([a.relation for a in q.atoms], q.semiring)
    runs, todo = [], []
    for name, plan in plans.items():
        choice = choices[name]
        for rep in REPRESENTATIONS:
            dense = rep == "dense"
            estimate = choice.dense_madds if dense else choice.sparse_madds
            limit = config.max_dense_madds if dense else config.max_sparse_madds
            common = dict(
                workload=kind,
                case=case,
                plan=name,
                representation=rep,
                picked=name == system and rep == pick,
                cost=choice.dense_cost if dense else choice.sparse_cost,
                exact=q.semiring != "sum_product",
            )
            if estimate <= limit:
                todo.append((common, plan, rep))
                continue
            log.info("%s %s %s: not run (%.3g madds)", case, name, rep, estimate)
            runs.append(
                PlanRun(
                    **common,
                    executed=False,
                    madds=float(estimate),
                    seconds=math.nan,
                    error=math.nan,
                )
            )
    values, seconds = _timed_together(
        [lambda p=p, r=r: execute(p, db, q.semiring, r) for _, p, r in todo],
        config.timing_repeats,
    )
    for (common, _, _), ex, sec in zip(todo, values, seconds, strict=True):
        error = result_error(ex.to_dense(), workload.reference, q.semiring)
        runs.append(
            PlanRun(
                **common, executed=True, madds=float(ex.madds), seconds=sec, error=error
            )
        )
    order = {
        (p, r): i
        for i, (p, r) in enumerate((p, r) for p in plans for r in REPRESENTATIONS)
    }
    return sorted(runs, key=lambda run: order[(run.plan, run.representation)])


def _fixpoint_pick(fix: Fixpoint, db: Database, n_rows: int, n_nodes: int) -> str:
    """The cost rule for a linear fixpoint: one dense step (rows x nodes x nodes
    multiply-adds) against one relaxation sweep over the edge list."""
    edge = _edge_pattern(fix)
    nnz = db.nnz(edge.relation, fix.semiring)
    dense = DENSE_COST * n_rows * n_nodes * n_nodes
    sparse = (SPARSE_PAIR_COST + SPARSE_ENTRY_COST) * n_rows * nnz
    return "sparse" if sparse < dense else "dense"


def _graph_runs(name: str, config: Config) -> list:
    db, reference, _ = graph_workload(name)
    n = db.shape("E")[0]
    programs = {
        "reachability": (reachability_program(), n),
        "shortest paths": (shortest_path_program(), 1),
    }
    runs = []
    for task, (fix, n_rows) in programs.items():
        pick = _fixpoint_pick(fix, db, n_rows, n)
        if config.variant == "fixed_dense":
            pick = "dense"
        for rep in REPRESENTATIONS:
            out, seconds = _timed(
                lambda f=fix, r=rep: evaluate_fixpoint(f, db, r),
                GRAPH_TIMING_REPEATS,  # graph times are shown, never compared
            )
            runs.append(
                PlanRun(
                    workload="graph",
                    case=f"{name}: {task}",
                    plan="fixpoint",
                    representation=rep,
                    picked=rep == pick,
                    executed=True,
                    madds=float(out.madds),
                    cost=math.nan,
                    seconds=seconds,
                    error=result_error(out.values, reference[task], fix.semiring),
                    exact=True,
                    rounds=out.rounds,
                )
            )
    return runs


def run_experiment(config: Config) -> Result:
    """Run the three workloads under every specialisation and the round trips.

    1. Relational: ``SUM(R.x * S.y) GROUP BY R.a`` over a many-to-many join.
    2. Tensor: ``einsum("ij,jk,k->i", A, B, v)`` at each density of ``config``.
    3. Graph: reachability and shortest paths by fixpoint on networkx's graphs.

    Queries 1 and 2 run as written and rewritten, each on dense arrays and on
    coordinate lists; the system under test (``config.variant``) picks one plan and one
    representation per case. Each executed run is checked against its reference
    (grouped sums of the materialised join, ``numpy.einsum``, networkx).
    """
    check_instance("config", config, Config)
    rng = np.random.default_rng(config.seed)
    _warm_kernels()
    runs: list[PlanRun] = []
    plans: dict[str, dict[str, str]] = {}
    cases = [("relational", "R ⋈ S", None)]
    cases += [("tensor", f"{d * 100:g}%", d) for d in config.densities]
    for kind, case, density in cases:
        # one workload at a time, so only one case's dense arrays are in memory
        if kind == "relational":
            wl = relational_workload(
                config.sql_rows, config.sql_keys, config.sql_groups, rng
            )
        else:
            wl = tensor_workload(config.tensor_n, density, rng)
        domains = _domains(wl.query.atoms, wl.db)
        plans[case] = {
            "as written": plan_text(plan_as_written(wl.query)),
            "rewritten": plan_text(plan_rewritten(wl.query, domains)),
        }
        runs += _query_runs(wl, kind, case, config)
    for name in config.graphs:
        runs += _graph_runs(name, config)
    trips = round_trips(config.n_round_trips, config.seed)
    return Result(
        config,
        tuple(runs),
        {k: (sum(ok for _, ok in v), len(v)) for k, v in trips.items()},
        plans,
        {k: [text for text, _ in v] for k, v in trips.items()},
    )


def check_claim(result: Result) -> None:
    """Check the chapter's claim on the system named by ``result.config.variant``.

    1. Every executed plan, in every representation, matches its reference: exactly
       for Boolean and min-plus results, within ``1e-9`` (relative) for floats; and
       the picked plan of every query ran both dense and sparse.
    2. ``lower(lift(lower(q))) == lower(q)`` for every generated query, at least 20
       per frontend.
    3. The picked plan needs at least 10x fewer multiply-adds than the plan as
       written, in the relational workload and in every tensor case.
    4. The cost rule picks sparse at the lowest density and dense at the highest, and
       at every density the pick is at least 1.5x faster (median time) than the other
       representation.

    Raises
    ------
    paperlab.claims.ClaimFailed
        If any part fails; the message names the case and the numbers.
    """
    check_instance("result", result, Result)
    for r in result.runs:
        if not r.executed:
            continue
        tol = 0.0 if r.exact else FLOAT_TOLERANCE
        require(
            r.error <= tol,
            f"{r.case}, {r.plan}, {r.representation}: error {r.error:.3g} > {tol:g}",
        )
    for frontend, (passed, total) in result.round_trips.items():
        require(
            passed == total and total >= MIN_ROUND_TRIPS,
            f"{frontend}: {passed} of {total} round trips held (need all, >= 20)",
        )
    for kind in ("relational", "tensor"):
        for case in result.cases(kind):
            gain = result.rewrite_gain(kind, case)
            require(
                gain >= MIN_REWRITE_GAIN,
                f"{case}: the picked plan saves only {gain:.2f}x multiply-adds "
                f"(need >= {MIN_REWRITE_GAIN:g}x)",
            )
    for kind in ("relational", "tensor", "graph"):
        for case in result.cases(kind):
            pick = result.picked(kind, case)
            for rep in REPRESENTATIONS:
                require(
                    result.get(kind, case, pick.plan, rep).executed,
                    f"{case}: the picked plan did not run {rep}",
                )
    cases = result.cases("tensor")
    require(bool(cases), "no tensor case ran")
    lowest, highest = (
        result.picked("tensor", cases[0]),
        result.picked("tensor", cases[-1]),
    )
    require(
        lowest.representation == "sparse" and highest.representation == "dense",
        f"picks: {lowest.representation} at {cases[0]}, "
        f"{highest.representation} at {cases[-1]} (want sparse, dense)",
    )
    for case in cases:
        speedup = result.pick_speedup("tensor", case)
        require(
            speedup >= MIN_PICK_SPEEDUP,
            f"{case}: the pick is only {speedup:.2f}x faster than the alternative "
            f"(need >= {MIN_PICK_SPEEDUP:g}x)",
        )


# ---------------------------------------------------------- exploring, plots


@dataclass(frozen=True)
class ExploreResult:
    """The tensor query at one density: the cost rule's view and the measurement."""

    density: float
    n: int
    plan: str  # the rewritten plan's text
    choice: Choice
    madds: dict[str, int]  # representation -> counted multiply-adds
    seconds: dict[str, float]  # representation -> median seconds


def explore_density(
    density: float, n: int = 1_000, seed: int = 0, repeats: int = 3
) -> ExploreResult:
    """Run the rewritten tensor query ``A (B v)`` at one density, dense and sparse."""
    density = check_float(
        "density", density, minimum=0.0, strict_minimum=True, maximum=1.0
    )
    n = check_int("n", n, minimum=2)
    repeats = check_int("repeats", repeats, minimum=1)
    wl = tensor_workload(
        n, density, np.random.default_rng(check_int("seed", seed, minimum=0))
    )
    plan = plan_rewritten(wl.query, _domains(wl.query.atoms, wl.db))
    wl.db.warm(TENSOR_SPEC[1], "sum_product")
    _warm_kernels()
    madds, seconds = {}, {}
    for rep in REPRESENTATIONS:
        ex, seconds[rep] = _timed(
            lambda r=rep: execute(plan, wl.db, "sum_product", r), repeats
        )
        madds[rep] = ex.madds
    choice = choose_representation(plan, wl.db, "sum_product")
    return ExploreResult(density, n, plan_text(plan), choice, madds, seconds)


def _pick_edges(ax, bars, picked: list[bool]) -> None:
    for bar, p in zip(bars, picked, strict=True):
        if p:
            bar.set_edgecolor("black")
            bar.set_linewidth(2.0)


def plot_rewrite_gain(result: Result):
    """Bars (log scale): multiply-adds of each query as written and rewritten, in the
    representation the system picks, with the saving written above."""
    from paperlab import plotting

    cases = [("relational", c) for c in result.cases("relational")]
    cases += [("tensor", c) for c in result.cases("tensor")]
    fig, ax = plotting.subplots(width=6.4, height=3.6)
    x = np.arange(len(cases))
    labels = []
    for k, (label, color, offset) in enumerate(
        (
            ("as written", plotting.COLORS[1], -0.2),
            ("rewritten", plotting.COLORS[0], 0.2),
        )
    ):
        heights = []
        for kind, case in cases:
            rep = result.picked(kind, case).representation
            heights.append(result.get(kind, case, label, rep).madds)
        ax.bar(x + offset, heights, width=0.4, color=color, label=label)
        if k == 0:
            tops = heights
    for i, (kind, case) in enumerate(cases):
        rep = result.picked(kind, case).representation
        name = "SQL join" if kind == "relational" else f"A B v, {case}"
        labels.append(f"{name}\n({rep})")
        ax.text(
            i,
            tops[i] * 1.6,
            f"{result.rewrite_gain(kind, case):,.0f}x fewer",
            ha="center",
            fontsize=9,
        )
    ax.set_yscale("log")
    ax.set_xticks(x, labels)
    ax.set_ylim(top=max(tops) * 30)
    plotting.label_axes(
        ax,
        title="One rewrite (push sums past factors) across paradigms",
        xlabel="query (representation picked by the cost rule)",
        ylabel="multiply-adds (count)",
    )
    return fig


def plot_specialisation(result: Result):
    """Bars (log scale): median time of the picked tensor plan on dense arrays and on
    coordinate lists at each density; the cost rule's pick is outlined."""
    from paperlab import plotting

    cases = result.cases("tensor")
    fig, ax = plotting.subplots(width=6.0, height=3.4)
    x = np.arange(len(cases))
    drawn = []
    for k, rep in enumerate(REPRESENTATIONS):
        runs = [
            result.get("tensor", c, result.picked("tensor", c).plan, rep) for c in cases
        ]
        bars = ax.bar(
            x + (k - 0.5) * 0.4,
            [r.seconds * 1e3 for r in runs],
            width=0.4,
            color=plotting.COLORS[2 + k],
            label=rep,
        )
        drawn.append((bars, [r.picked for r in runs]))
    ax.set_yscale("log")
    ax.set_xticks(x, [f"density {c}" for c in cases])
    plotting.label_axes(
        ax,
        title="Dense or sparse? The cost rule's pick is outlined",
        xlabel="non-zero fraction of A and B",
        ylabel="median time of A (B v) (ms)",
    )
    for bars, picked in drawn:  # after the legend, which should show plain colours
        _pick_edges(ax, bars, picked)
    return fig


def plot_explore(explored: ExploreResult):
    """Two panels for one density: multiply-adds and median time, dense vs sparse."""
    from paperlab import plotting

    fig, (left, right) = plotting.subplots(1, 2, width=8.4, height=3.2)
    picked = [rep == explored.choice.pick for rep in REPRESENTATIONS]
    colors = [plotting.COLORS[2], plotting.COLORS[3]]
    bars = left.bar(
        REPRESENTATIONS, [explored.madds[r] for r in REPRESENTATIONS], color=colors
    )
    _pick_edges(left, bars, picked)
    left.set_yscale("log")
    plotting.label_axes(
        left,
        title=f"multiply-adds at density {explored.density:.1%}",
        xlabel="representation",
        ylabel="multiply-adds (count)",
    )
    bars = right.bar(
        REPRESENTATIONS,
        [explored.seconds[r] * 1e3 for r in REPRESENTATIONS],
        color=colors,
    )
    _pick_edges(right, bars, picked)
    plotting.label_axes(
        right,
        title=f"cost rule picks {explored.choice.pick} (outlined)",
        xlabel="representation",
        ylabel="median time (ms)",
    )
    return fig
