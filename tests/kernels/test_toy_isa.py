"""The toy-ISA kernels against their plain-Python references."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from paperlab.kernels import toy_isa as k
from paperlab.systems_data import unifico_uniform_stack as ch

SETTINGS = settings(max_examples=100, deadline=None)
REG_OPS = {k.LI, k.MOV, k.ADDI, k.PUSH, k.POP, k.JZ, k.STP, k.LDP}
THREE_REG_OPS = set(range(k.ADD, k.EQ + 1))
FLOATS = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True, width=64),
    st.integers(-40, 40).map(float),
)
SMALL = st.integers(-4, 60).map(float)
# every opcode can be drawn; moves, arithmetic and stack traffic more often
OPS = list(range(len(k.OPCODES))) + [k.LI, k.MOV, k.ADDI, k.ADD, k.MUL, k.LT, k.LD]
OPS += [k.ST, k.PUSH, k.POP, k.JZ, k.JMP, k.MIGPT, k.CALLX, k.RETX, k.BL, k.RET]


@st.composite
def machines(draw):
    """A random program over every opcode (register fields always valid), with
    random registers, stack, memory and constants; addresses may be anything."""
    n = draw(st.integers(0, 30))
    code = np.zeros((n, 4), dtype=np.int32)
    for i in range(n):
        op = draw(st.sampled_from(OPS))
        a, b = draw(st.integers(0, 15)), draw(st.integers(0, 15))
        c = (
            draw(st.integers(0, 15))
            if op in THREE_REG_OPS
            else draw(st.integers(-6, 8))
        )
        if op in (k.JMP, k.CALLX, k.BL, k.MIGPT):
            a = draw(st.integers(-1, n))
        if op == k.JZ:
            b = draw(st.integers(-1, n))
        code[i] = (op, a, b, c)
    regs = np.array(draw(st.lists(st.one_of(SMALL, FLOATS), min_size=16, max_size=16)))
    if draw(st.integers(0, 9)) > 0:  # plausible frame and stack pointers mostly
        regs[k.FP], regs[k.SP] = draw(st.integers(8, 56)), draw(st.integers(8, 56))
    size = draw(st.sampled_from([0, 1, 64]))
    stack = np.array(draw(st.lists(SMALL, min_size=size, max_size=size)))
    memory = np.array(draw(st.lists(FLOATS, min_size=0, max_size=8)))
    consts = np.array(draw(st.lists(FLOATS, min_size=16, max_size=16)))
    control = (
        0,  # pc
        draw(st.sampled_from([0, 0, 2, 10, 30])),  # budget
        draw(st.integers(-1, 3)),  # stop_site
        draw(st.integers(0, 300)),  # max_steps
    )
    return code, consts, memory, regs, stack, control


def _run_both(code, consts, memory, regs, stack, control):
    states = [[memory.copy(), regs.copy(), stack.copy()] for _ in range(2)]
    out = []
    for fn, (mem, reg, stk) in zip((k.run_vm, k.run_vm_reference), states, strict=True):
        out.append(tuple(int(v) for v in fn(code, consts, mem, reg, stk, *control)))
    return out, states


@SETTINGS
@given(machine=machines())
def test_run_vm_matches_reference_on_random_programs(machine):
    (got, ref), (state, ref_state) = _run_both(*machine)
    assert got == ref
    for a, b in zip(state, ref_state, strict=True):
        np.testing.assert_array_equal(a, b)  # NaN equals NaN here


STRAIGHT_OPS = [k.LI, k.MOV, k.ADDI, *THREE_REG_OPS, k.ADDM, k.SUBM, k.MULM, k.LD]
STRAIGHT_OPS += [k.ST, k.LDG, k.STG, k.PUSH, k.POP, k.STP, k.MIGPT, k.NOP]


@st.composite
def straight_programs(draw):
    """Straight-line code that mostly runs to its HALT: results go to r0-r11, stack
    accesses are relative to fp or sp, which point into the stack."""
    n = draw(st.integers(1, 40))
    code = np.zeros((n + 1, 4), dtype=np.int32)
    code[n, 0] = k.HALT
    for i in range(n):
        op = draw(st.sampled_from(STRAIGHT_OPS))
        a, b = draw(st.integers(0, 11)), draw(st.integers(0, 15))
        c = (
            draw(st.integers(0, 15))
            if op in THREE_REG_OPS
            else draw(st.integers(-6, 6))
        )
        if op in (k.LD, k.ST, k.STP):
            base = draw(st.sampled_from([k.FP, k.SP]))
            a, b = (base, c) if op == k.STP else (a, base)
        if op in (k.LDG, k.STG):
            b = draw(st.integers(0, 3))
        code[i] = (op, a, b, c)
    regs = np.array(draw(st.lists(SMALL, min_size=16, max_size=16)))
    regs[:4] = draw(st.lists(st.integers(0, 7).map(float), min_size=4, max_size=4))
    regs[4:12] = draw(st.lists(FLOATS, min_size=8, max_size=8))
    regs[k.FP], regs[k.SP] = draw(st.integers(10, 50)), draw(st.integers(10, 50))
    stack = np.array(draw(st.lists(FLOATS, min_size=64, max_size=64)))
    memory = np.array(draw(st.lists(FLOATS, min_size=8, max_size=8)))
    consts = np.array(draw(st.lists(FLOATS, min_size=16, max_size=16)))
    return code, consts, memory, regs, stack, (0, 10**6, -1, 1000)


@SETTINGS
@given(machine=straight_programs())
def test_run_vm_matches_reference_on_straight_line_code(machine):
    (got, ref), (state, ref_state) = _run_both(*machine)
    assert got == ref
    for a, b in zip(state, ref_state, strict=True):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("mode", ch.MODES)
@pytest.mark.parametrize("isa", ch.ISAS)
@pytest.mark.parametrize("name", ["fib", "quicksort"])
def test_run_vm_matches_reference_on_compiled_programs(mode, isa, name):
    bench = ch.BENCHMARKS[name]
    memory, args = bench.make_input(np.random.default_rng(0))
    binary = ch.build(bench.source, mode)[isa]
    regs, stack = ch.initial_state(binary, (10,) if name == "fib" else args)
    machine = (binary.code, binary.consts, memory, regs, stack, (0, 777, -1, 10**6))
    (got, ref), (state, ref_state) = _run_both(*machine)
    assert got == ref and got[0] == k.MIGRATE
    for a, b in zip(state, ref_state, strict=True):
        np.testing.assert_array_equal(a, b)


def test_run_vm_edge_cases():
    empty = np.zeros((0, 4), dtype=np.int32)
    args = (np.zeros(1), np.zeros(1), np.zeros(16), np.zeros(4))
    assert k.run_vm(empty, *args, 0, 0, -1, 10) == (k.FAULT, 0, 0)
    halt = np.array([[k.HALT, 0, 0, 0]], dtype=np.int32)
    assert k.run_vm(halt, *args, 0, 0, -1, 10) == (k.HALTED, 0, 0)
    assert k.run_vm(halt, *args, 0, 0, -1, 0) == (k.STEP_LIMIT, 0, 0)
    # NaN flows through arithmetic and never counts as zero for JZ
    code = np.array(
        [[k.LI, 1, 0, 0], [k.ADD, 2, 1, 1], [k.JZ, 2, 0, 0], [k.HALT, 0, 0, 0]],
        dtype=np.int32,
    )
    regs = np.zeros(16)
    status, pc, steps = k.run_vm(
        code, np.array([np.nan]), np.zeros(1), regs, np.zeros(4), 0, 0, -1, 10
    )
    assert (status, pc, steps) == (k.HALTED, 3, 3) and np.isnan(regs[2])
    # division by zero gives IEEE infinities in both, never an exception
    code = np.array([[k.DIV, 0, 1, 2], [k.HALT, 0, 0, 0]], dtype=np.int32)
    for fn in (k.run_vm, k.run_vm_reference):
        regs = np.zeros(16)
        regs[1], regs[2] = -3.0, 0.0
        fn(code, np.zeros(1), np.zeros(1), regs, np.zeros(4), 0, 0, -1, 10)
        assert regs[0] == -np.inf


def test_run_vm_stops_only_at_the_requested_migration_point():
    code = np.array(
        [[k.MIGPT, 0, 0, 0], [k.MIGPT, 1, 0, 0], [k.HALT, 0, 0, 0]], dtype=np.int32
    )
    args = (np.zeros(1), np.zeros(1), np.zeros(16), np.zeros(4))
    assert k.run_vm(code, *args, 0, 0, 1, 10) == (k.MIGRATE, 1, 1)
    assert k.run_vm(code, *args, 0, 1, -1, 10) == (k.MIGRATE, 1, 1)
    assert k.run_vm(code, *args, 0, 5, -1, 10) == (k.HALTED, 2, 2)


# ----------------------------------------------------------- transform_frames


def _transform_args(state, corrupt=None):
    src, dst = state.binaries["X"], state.binaries["A"]
    stack = state.stack.copy()
    if corrupt is not None:
        stack[corrupt[0]] = corrupt[1]
    return (
        stack,
        state.regs.copy(),
        np.zeros_like(stack),
        state.regs.copy(),
        state.site,
        src.site_func,
        src.pc_site,
        src.site_loc,
        ch.STUB_RET,
        dst.site_pc,
        dst.geom,
        dst.site_loc,
        ch.STUB_RET,
        ch.STACK_UNITS,
    )


@settings(max_examples=30, deadline=None)
@given(
    depth=st.integers(1, 80),
    where=st.integers(0, 300),
    value=st.one_of(st.just(np.nan), st.integers(-5, 9000).map(float)),
    corrupt=st.booleans(),
)
def test_transform_frames_matches_reference(depth, where, value, corrupt):
    state = ch.stack_at_depth(depth, "native")
    spot = (ch.STACK_UNITS - 1 - where, value) if corrupt else None
    got_args, ref_args = _transform_args(state, spot), _transform_args(state, spot)
    got = k.transform_frames(*got_args)
    ref = k.transform_frames_reference(*ref_args)
    assert tuple(int(v) for v in got) == ref
    np.testing.assert_array_equal(got_args[2], ref_args[2])  # destination stack
    np.testing.assert_array_equal(got_args[3], ref_args[3])  # destination registers


def test_transform_frames_edge_cases():
    state = ch.stack_at_depth(1, "native")
    pc, words = k.transform_frames(*_transform_args(state))
    assert pc == state.binaries["A"].site_pc[state.site] and words > 0
    # a frame pointer that leaves the stack, or a return address that names no
    # call site, is reported as a corrupt stack (-1), never a crash
    for spot in ((None, None), (int(state.regs[k.FP]) + 2, 5.0)):
        args = list(_transform_args(state, spot if spot[0] is not None else None))
        if spot[0] is None:
            args[1][k.FP] = np.nan
        assert k.transform_frames(*args)[0] == -1
        assert k.transform_frames_reference(*args)[0] == -1


def test_benchmark_cases_run():
    for case in k.benchmarks():
        assert case.kernel() is not None
        assert case.name in ("run_vm", "transform_frames")


@pytest.mark.parametrize("depth", [1, 7])
def test_transform_then_resume_gives_the_answer(depth):
    """Transform at depth, finish on A, compare with plain Python."""
    state = ch.stack_at_depth(depth, "native")
    args = _transform_args(state)
    pc, _ = k.transform_frames(*args)
    a = state.binaries["A"]
    status, _, _ = k.run_vm(
        a.code, a.consts, np.zeros(1), args[3], args[2], pc, 10**9, -1, 10**6
    )
    value, _ = ch.reference_output(ch.DIVE_SOURCE, np.zeros(1), (depth, 0.5))
    assert status == k.HALTED and args[3][0] == value
