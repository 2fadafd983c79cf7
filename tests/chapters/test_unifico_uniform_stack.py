"""Unifico (arXiv 2512.24530): compiler, migration, bad input and the claim."""

from dataclasses import replace

import numpy as np
import pytest

from paperlab.claims import ClaimFailed
from paperlab.kernels import toy_isa as vm
from paperlab.systems_data import unifico_uniform_stack as ch


@pytest.fixture(scope="module")
def result():
    """The chapter's default experiment (about a second once Numba has compiled)."""
    return ch.run_experiment(ch.Config())


def _as_variant(result, variant):
    """The same measurements, with the claim pointed at another variant."""
    return replace(result, config=replace(result.config, variant=variant))


# ------------------------------------------------------------------ the claim


def test_claim_holds_for_unifico(result):
    ch.check_claim(result)


def test_claim_fails_for_the_transformation_on_its_growing_cost(result):
    with pytest.raises(ClaimFailed, match="migration cost grows"):
        ch.check_claim(_as_variant(result, "transform"))


def test_transformation_is_correct_but_its_cost_grows(result):
    """The baseline migrates correctly (part 1 holds); only its cost fails."""
    run = ch.run_experiment(ch.Config(variant="transform", timing_repeats=1))
    assert all(b.migrated_ok and b.migrated.migrations >= 10 for b in run.benchmarks)
    assert run.cost_ratio("transform") >= 10
    with pytest.raises(ClaimFailed, match="transform migration cost grows"):
        ch.check_claim(run)


def test_claim_fails_for_a_naive_switch_on_correctness():
    run = ch.run_experiment(ch.Config(variant="naive", timing_repeats=1))
    with pytest.raises(ClaimFailed, match="naive migrations the run"):
        ch.check_claim(run)


def test_claim_fails_without_code_padding():
    """Unified frames but unaligned code: return addresses and migration points
    no longer coincide, so switching the instruction stream breaks the program."""
    run = ch.run_experiment(ch.Config(pad_code=False, timing_repeats=1))
    assert not all(b.migrated_ok for b in run.benchmarks)
    with pytest.raises(ClaimFailed, match="unified migrations the run"):
        ch.check_claim(run)


def test_claim_fails_when_size_overhead_is_too_large(result):
    bloated = tuple(
        replace(b, code_bytes={**b.code_bytes, "unified": 3 * b.code_bytes["native"]})
        for b in result.benchmarks
    )
    with pytest.raises(ClaimFailed, match="adds"):
        ch.check_claim(replace(result, benchmarks=bloated))


def test_claim_fails_when_instruction_overhead_is_too_large(result):
    slow = tuple(
        replace(b, steps={**b.steps, ("unified", "A"): 2 * b.steps[("native", "A")]})
        for b in result.benchmarks
    )
    with pytest.raises(ClaimFailed, match="more instructions"):
        ch.check_claim(replace(result, benchmarks=slow))


def test_measured_numbers(result):
    assert result.cost_words["unified"] == (32,) * len(result.config.depths)
    assert result.cost_ratio("transform") > 15
    assert 0.0 < result.instruction_overhead("unified") < 0.10
    assert (
        result.size_overhead("unified") < 0.2 < 0.5 < result.size_overhead("transform")
    )
    for b in result.benchmarks:
        assert b.plain_ok and b.migrated_ok and b.migrated.migrations >= 10


# ------------------------------------------------------------- the mechanism


@pytest.mark.parametrize("name", list(ch.BENCHMARKS))
def test_compiled_code_matches_plain_python(name):
    bench = ch.BENCHMARKS[name]
    memory, args = bench.make_input(np.random.default_rng(3))
    value, final = ch.reference_output(bench.source, memory, args)
    for mode in ch.MODES:
        for isa, binary in ch.build(bench.source, mode).items():
            run = ch.execute(binary, memory, args)
            assert run.status == vm.HALTED, (mode, isa)
            assert run.value == value and np.array_equal(run.memory, final)


@pytest.mark.parametrize("every", [1, 13, 250])
@pytest.mark.parametrize("variant", ["unified", "transform"])
def test_migrating_at_any_interval_keeps_the_answer(variant, every):
    for name in ("fib", "quicksort", "nbody"):
        bench = ch.BENCHMARKS[name]
        memory, args = bench.make_input(np.random.default_rng(every))
        value, final = ch.reference_output(bench.source, memory, args)
        mode = "unified" if variant == "unified" else "native"
        run = ch.run_migrating(
            ch.build(bench.source, mode), variant, memory, args, every
        )
        assert run.status == vm.HALTED and run.migrations > 0
        assert run.value == value and np.array_equal(run.memory, final)


def test_unified_layout_gives_the_same_stack_on_both_isas():
    """Run the dive program to depth 9 natively on each ISA (no migration): in the
    unified layout the two stacks are the same array; natively they differ."""
    for mode, same in (("unified", True), ("native", False)):
        binaries = ch.build(ch.DIVE_SOURCE, mode)
        stacks = []
        for isa in ch.ISAS:
            binary = binaries[isa]
            site = binary.site_kind.index("loop")
            regs, stack = ch.initial_state(binary, (9, 0.5))
            status, _, _ = vm.run_vm(
                binary.code, binary.consts, np.zeros(1), regs, stack, 0, 0, site, 10**6
            )
            assert status == vm.MIGRATE
            stacks.append(stack)
        assert np.array_equal(stacks[0], stacks[1]) == same


def test_transformation_rebuilds_what_a_native_run_on_A_would_have():
    """Independent check of the baseline: transforming X's native stack gives the
    frames that running natively on A to the same point builds."""
    state = ch.stack_at_depth(6, "native")
    x, a = state.binaries["X"], state.binaries["A"]
    regs, stack, pc, _ = ch.migrate(
        "transform", x, a, state.regs, state.stack, state.pc, np.zeros(ch.STACK_UNITS)
    )
    native_regs, native_stack = ch.initial_state(a, (6, 0.5))
    status, native_pc, _ = vm.run_vm(
        a.code,
        a.consts,
        np.zeros(1),
        native_regs,
        native_stack,
        0,
        0,
        state.site,
        10**6,
    )
    assert status == vm.MIGRATE and pc == native_pc
    frames = ch.walk_frames(a, native_stack, native_regs, state.site)
    assert frames == ch.walk_frames(a, stack, regs, state.site) and len(frames) == 6
    for fp, func in frames:
        used = [fp, fp + 2] + [fp + off for _, off, _ in a.frames[func]]
        np.testing.assert_array_equal(stack[used[:2]], native_stack[used[:2]])
        live = [fp + off for name, off, _ in a.frames[func] if name != "z"]
        np.testing.assert_array_equal(stack[live], native_stack[live])


def test_unified_binaries_share_addresses_and_native_ones_do_not():
    for bench in ch.BENCHMARKS.values():
        unified, native = (
            ch.build(bench.source, "unified"),
            ch.build(bench.source, "native"),
        )
        x, a = unified["X"], unified["A"]
        assert x.func_pc == a.func_pc and np.array_equal(x.site_pc, a.site_pc)
        assert x.code.shape == a.code.shape
        assert not np.array_equal(native["X"].code, native["A"].code)


def test_migration_cost_is_flat_for_unifico_and_linear_for_transformation():
    depths = range(1, 12)
    unified = [ch.migration_words(d, "unified") for d in depths]
    transform = [ch.migration_words(d, "transform") for d in depths]
    assert set(unified) == {2 * vm.N_REGS}
    steps = np.diff(transform)
    assert np.all(steps == steps[0]) and steps[0] > 0  # a fixed price per frame


def test_frame_layouts():
    types = ("int", "float", "int")
    x_off, x_size, x_frame = ch.frame_layout(types, "X", "native")
    a_off, a_size, a_frame = ch.frame_layout(types, "A", "native")
    assert x_size == (1, 2, 1) and a_size == (2, 2, 2)
    assert all(o < 0 for o in x_off) and all(o > 0 for o in a_off)
    ux, ua = (
        ch.frame_layout(types, "X", "unified"),
        ch.frame_layout(types, "A", "unified"),
    )
    assert ux == ua and ux[1] == (2, 2, 2) and ux[2] % 4 == 0


def test_register_allocation_differs_natively():
    """Native A keeps more locals in registers than X; unified A is held to X's."""
    src = ch.BENCHMARKS["nbody"].source
    loads = {}
    for mode in ch.MODES:
        a = ch.build(src, mode)["A"]
        loads[mode] = int(np.sum(a.code[:, 0] == vm.LD))
    assert loads["unified"] > loads["native"]


def test_disassembly_names_the_instructions():
    binary = ch.build(ch.BENCHMARKS["fib"].source, "native")["X"]
    lines = ch.disassemble(binary, "fib")
    assert lines[0].split()[1:] == ["PUSH", "fp"]
    assert any("CALLX fib" in line for line in lines)
    lines = ch.disassemble(ch.build(ch.BENCHMARKS["fib"].source, "native")["A"], "fib")
    assert "STP   fp, lr, [sp+0]" in lines[1]


# ------------------------------------------------------------------ bad input


@pytest.mark.parametrize(
    ("source", "message"),
    [
        ("x = 1\n", "only functions"),
        ("def f(n):\n    return n\n", "annotate"),
        ("def f(n: int) -> int:\n    for i in n:\n        pass\n", "unsupported"),
        ("def f(n: int) -> int:\n    x: float = 1\n    x: int = 2\n", "declared twice"),
        ("def f(n: int) -> int:\n    return g(n)\n", "unsupported expression"),
        (
            "def f(n: int) -> int:\n    x: int = g(n)\n    return x\n",
            "defined function",
        ),
        ("def f(n: int) -> int:\n    return q\n", "declared local"),
        ("def f(n: int) -> int:\n    return 'a'\n", "unsupported expression"),
        ("def f(n: int) -> int:\n    return -n\n", "unsupported expression"),
        ("def f(n: int) -> int:\n    return n +\n", "not valid Python"),
        ("def f(n: int) -> int:\n    n = n = 1\n", "one target"),
        ("def f(n: int) -> int:\n    mem[0]: float = 1.0\n", "only local names"),
        ("def f(n: int) -> int:\n    return n * (n * (n * (n * (n * n))))\n", "deep"),
        ("", "at least one function"),
    ],
)
def test_bad_programs(source, message):
    with pytest.raises(ValueError, match=message):
        ch.build(source, "native")


def test_bad_arguments():
    with pytest.raises(TypeError, match="source must be a string"):
        ch.parse_program(3)
    with pytest.raises(ValueError, match="mode must be one of"):
        ch.build(ch.DIVE_SOURCE, "fast")
    with pytest.raises(ValueError, match="isa must be one of"):
        ch.frame_layout(("int",), "Z", "native")
    with pytest.raises(ValueError, match="types entry must be one of"):
        ch.frame_layout(("int", "double"), "X", "native")
    binary = ch.build(ch.DIVE_SOURCE, "native")["X"]
    with pytest.raises(ValueError, match="args must have at most 5"):
        ch.initial_state(binary, (1, 2, 3, 4, 5, 6))
    with pytest.raises(ValueError, match="depth must be >= 1"):
        ch.stack_at_depth(0)
    with pytest.raises(ValueError, match="variant must be one of"):
        ch.migration_words(3, "teleport")
    with pytest.raises(ValueError, match="every must be >= 1"):
        ch.run_migrating(
            ch.build(ch.DIVE_SOURCE, "native"), "transform", [0.0], (2, 0.5), 0
        )
    with pytest.raises(TypeError, match="config must be a Config"):
        ch.run_experiment({"variant": "unified"})
    with pytest.raises(TypeError, match="result must be a Result"):
        ch.check_claim(None)


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"variant": "popcorn"}, ValueError, "variant must be one of"),
        ({"seed": -1}, ValueError, "seed must be >= 0"),
        ({"migrate_every": 0}, ValueError, "migrate_every must be >= 1"),
        ({"depths": (4, 2)}, ValueError, "strictly increasing"),
        ({"depths": [1, 64]}, TypeError, "depths must be a tuple"),
        ({"pad_code": "yes"}, TypeError, "pad_code must be a bool"),
    ],
)
def test_bad_config(kwargs, error, message):
    with pytest.raises(error, match=message):
        ch.Config(**kwargs)
