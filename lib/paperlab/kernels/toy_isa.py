"""Kernels of the toy heterogeneous-ISA machine behind the Unifico chapter.

Mavrogeorgis et al., "A Magnified View into Heterogeneous-ISA Thread Migration
Performance without State Transformation", arXiv 2512.24530.

- :func:`run_vm` interprets toy machine code, one instruction per step, and stops at
  a migration point once a step budget is spent.
- :func:`transform_frames` is the Popcorn-style baseline: it walks every frame of a
  stack laid out by one ISA's compiler and rebuilds it in the other ISA's layout,
  using per-site stack maps.

Machine model shared by both kernels
------------------------------------
An instruction is one row ``(op, a, b, c)`` of an int32 array. The register file holds
16 float64 registers: ``r0`` to ``r11`` are general, ``r12`` is the link register
(used by ISA "A"), ``r14`` the frame pointer and ``r15`` the stack pointer. The stack
is a float64 array indexed in 4-byte *units*; an 8-byte slot spans two units and keeps
its value in the lower one. Global data lives in a separate float64 ``memory`` array
that both ISAs address identically. Every frame, in every layout, keeps the caller's
frame pointer at ``stack[fp]`` and the return address at ``stack[fp + 2]``.

Both ISAs share one opcode table; a compiler emits only the opcodes its ISA has
(``ADDM``/``PUSH``/``CALLX`` only on "X", ``BL``/``STP``/``LDP`` only on "A").
Register fields are trusted: the chapter's compiler only emits register numbers below
16. Stack, memory and jump addresses are checked, and a bad one stops the run with
status :data:`FAULT`, so a corrupted stack cannot crash the process.
"""

from __future__ import annotations

import math

import numba
import numpy as np

from paperlab.kernels import BenchCase

__all__ = [
    "OPCODES",
    "N_REGS",
    "LR",
    "FP",
    "SP",
    "HALTED",
    "MIGRATE",
    "FAULT",
    "STEP_LIMIT",
    "SLOT",
    "REG",
    "run_vm",
    "run_vm_reference",
    "transform_frames",
    "transform_frames_reference",
    "benchmarks",
]

OPCODES = (
    "NOP", "HALT", "MIGPT", "LI", "MOV", "ADDI", "ADD", "SUB", "MUL", "DIV", "LT",
    "LE", "EQ", "ADDM", "SUBM", "MULM", "LD", "ST", "LDG", "STG", "JMP", "JZ",
    "CALLX", "RETX", "PUSH", "POP", "BL", "RET", "STP", "LDP",
)  # fmt: skip
(
    NOP, HALT, MIGPT, LI, MOV, ADDI, ADD, SUB, MUL, DIV, LT, LE, EQ, ADDM, SUBM,
    MULM, LD, ST, LDG, STG, JMP, JZ, CALLX, RETX, PUSH, POP, BL, RET, STP, LDP,
) = range(len(OPCODES))  # fmt: skip

N_REGS = 16
LR, FP, SP = 12, 14, 15
HALTED, MIGRATE, FAULT, STEP_LIMIT = 0, 1, 2, 3  # run_vm status codes
SLOT, REG = 0, 1  # kinds of a stack-map location: fp-relative slot or register
_MAX_ADDRESS = 1e15  # floats beyond this are never valid addresses


# ------------------------------------------------------------------ interpreter


@numba.njit(cache=True)
def _address(value, offset, size):
    """``int(value) + offset`` if that indexes an array of ``size``, else -1."""
    if not (value > -_MAX_ADDRESS and value < _MAX_ADDRESS):
        return -1
    addr = int(value) + offset
    if addr < 0 or addr >= size:
        return -1
    return addr


@numba.njit(cache=True, error_model="numpy")
def _arith(op, x, y):
    if op == ADD or op == ADDM:
        return x + y
    if op == SUB or op == SUBM:
        return x - y
    if op == MUL or op == MULM:
        return x * y
    if op == DIV:
        return x / y
    if op == LT:
        return 1.0 if x < y else 0.0
    if op == LE:
        return 1.0 if x <= y else 0.0
    return 1.0 if x == y else 0.0


@numba.njit(cache=True)
def run_vm(code, consts, memory, regs, stack, pc, budget, stop_site, max_steps):
    """Run toy machine code from ``pc`` until it halts, faults or must migrate.

    A migration point (``MIGPT site``) stops the run once at least ``budget`` steps
    have run and ``site`` equals ``stop_site`` (any site when ``stop_site < 0``);
    otherwise it does nothing. ``regs``, ``stack`` and ``memory`` change in place.

    Parameters
    ----------
    code : ndarray of int32, shape (n_code, 4)
        Instructions ``(op, a, b, c)``; see the module docstring.
    consts : ndarray of float64, shape (n_consts,)
        Constant pool read by ``LI``.
    memory : ndarray of float64, shape (n_memory,)
        Global data.
    regs : ndarray of float64, shape (16,)
    stack : ndarray of float64, shape (n_stack,)
    pc : int
        Address of the first instruction to run.
    budget : int
        Steps to run before a migration point may stop the run.
    stop_site : int
        Migration point that may stop the run, or -1 for any.
    max_steps : int
        Hard limit on steps.

    Returns
    -------
    status : int
        :data:`HALTED`, :data:`MIGRATE`, :data:`FAULT` or :data:`STEP_LIMIT`.
    pc : int
        Address of the instruction that halted, faulted or must migrate.
    steps : int
        Instructions executed (a migration point that stops the run is not counted).
    """
    n_code, n_stack, n_mem = code.shape[0], stack.shape[0], memory.shape[0]
    steps = 0
    while steps < max_steps:
        if pc < 0 or pc >= n_code:
            return FAULT, pc, steps
        op, a, b, c = code[pc, 0], code[pc, 1], code[pc, 2], code[pc, 3]
        nxt = pc + 1
        if op == NOP:
            pass
        elif op == HALT:
            return HALTED, pc, steps
        elif op == MIGPT:
            if steps >= budget and (stop_site < 0 or a == stop_site):
                return MIGRATE, pc, steps
        elif op == LI:
            regs[a] = consts[b]
        elif op == MOV:
            regs[a] = regs[b]
        elif op == ADDI:
            regs[a] = regs[b] + c
        elif op >= ADD and op <= EQ:
            regs[a] = _arith(op, regs[b], regs[c])
        elif op >= ADDM and op <= MULM:
            addr = _address(regs[FP], c, n_stack)
            if addr < 0:
                return FAULT, pc, steps
            regs[a] = _arith(op, regs[b], stack[addr])
        elif op == LD or op == ST or op == STP or op == LDP:
            base = b if op == LD or op == ST else a
            offset = c if op == LD or op == ST else b
            addr = _address(regs[base], offset, n_stack - (2 if op >= STP else 0))
            if addr < 0:
                return FAULT, pc, steps
            if op == LD:
                regs[a] = stack[addr]
            elif op == ST:
                stack[addr] = regs[a]
            elif op == STP:
                stack[addr] = regs[FP]
                stack[addr + 2] = regs[LR]
            else:
                regs[FP] = stack[addr]
                regs[LR] = stack[addr + 2]
        elif op == LDG or op == STG:
            addr = _address(regs[b], c, n_mem)
            if addr < 0:
                return FAULT, pc, steps
            if op == LDG:
                regs[a] = memory[addr]
            else:
                memory[addr] = regs[a]
        elif op == JMP:
            nxt = a
        elif op == JZ:
            if regs[a] == 0.0:
                nxt = b
        elif op == CALLX or op == PUSH:
            addr = _address(regs[SP], -2, n_stack)
            if addr < 0:
                return FAULT, pc, steps
            stack[addr] = pc + 1 if op == CALLX else regs[a]
            regs[SP] = addr
            if op == CALLX:
                nxt = a
        elif op == RETX or op == POP:
            addr = _address(regs[SP], 0, n_stack)
            if addr < 0:
                return FAULT, pc, steps
            regs[SP] = addr + 2
            if op == POP:
                regs[a] = stack[addr]
            else:
                nxt = _address(stack[addr], 0, n_code)
        elif op == BL:
            regs[LR] = pc + 1
            nxt = a
        elif op == RET:
            nxt = _address(regs[LR], 0, n_code)
        else:
            return FAULT, pc, steps
        pc = nxt
        steps += 1
    return STEP_LIMIT, pc, steps


def _address_reference(value, offset, size):
    if not (-_MAX_ADDRESS < value < _MAX_ADDRESS):
        return -1
    addr = int(value) + offset
    return addr if 0 <= addr < size else -1


def _divide(x, y):
    """IEEE division without Python's ZeroDivisionError."""
    if y != 0.0 or math.isnan(y):
        return x / y
    if x == 0.0 or math.isnan(x):
        return math.nan
    return math.copysign(math.inf, x) * math.copysign(1.0, y)


_REFERENCE_ARITH = {
    ADD: lambda x, y: x + y,
    SUB: lambda x, y: x - y,
    MUL: lambda x, y: x * y,
    DIV: _divide,
    LT: lambda x, y: float(x < y),
    LE: lambda x, y: float(x <= y),
    EQ: lambda x, y: float(x == y),
}


def run_vm_reference(
    code, consts, memory, regs, stack, pc, budget, stop_site, max_steps
):
    """Plain-Python version of :func:`run_vm` (same arguments and results)."""
    n_code, n_stack, n_mem = len(code), len(stack), len(memory)
    steps = 0
    while steps < max_steps:
        if not 0 <= pc < n_code:
            return FAULT, pc, steps
        op, a, b, c = (int(v) for v in code[pc])
        nxt = pc + 1
        if op in _REFERENCE_ARITH:
            regs[a] = _REFERENCE_ARITH[op](float(regs[b]), float(regs[c]))
        elif op in (ADDM, SUBM, MULM):
            addr = _address_reference(regs[FP], c, n_stack)
            if addr < 0:
                return FAULT, pc, steps
            base_op = {ADDM: ADD, SUBM: SUB, MULM: MUL}[op]
            regs[a] = _REFERENCE_ARITH[base_op](float(regs[b]), float(stack[addr]))
        elif op == HALT:
            return HALTED, pc, steps
        elif op == MIGPT and steps >= budget and (stop_site < 0 or stop_site == a):
            return MIGRATE, pc, steps
        elif op in (NOP, MIGPT):
            pass
        elif op == LI:
            regs[a] = consts[b]
        elif op == MOV:
            regs[a] = regs[b]
        elif op == ADDI:
            regs[a] = regs[b] + c
        elif op in (LD, ST):
            addr = _address_reference(regs[b], c, n_stack)
            if addr < 0:
                return FAULT, pc, steps
            if op == LD:
                regs[a] = stack[addr]
            else:
                stack[addr] = regs[a]
        elif op in (STP, LDP):
            addr = _address_reference(regs[a], b, n_stack - 2)
            if addr < 0:
                return FAULT, pc, steps
            if op == STP:
                stack[addr], stack[addr + 2] = regs[FP], regs[LR]
            else:
                regs[FP], regs[LR] = stack[addr], stack[addr + 2]
        elif op in (LDG, STG):
            addr = _address_reference(regs[b], c, n_mem)
            if addr < 0:
                return FAULT, pc, steps
            if op == LDG:
                regs[a] = memory[addr]
            else:
                memory[addr] = regs[a]
        elif op == JMP:
            nxt = a
        elif op == JZ:
            nxt = b if regs[a] == 0.0 else nxt
        elif op in (CALLX, PUSH):
            addr = _address_reference(regs[SP], -2, n_stack)
            if addr < 0:
                return FAULT, pc, steps
            stack[addr] = pc + 1 if op == CALLX else regs[a]
            regs[SP] = addr
            nxt = a if op == CALLX else nxt
        elif op in (RETX, POP):
            addr = _address_reference(regs[SP], 0, n_stack)
            if addr < 0:
                return FAULT, pc, steps
            regs[SP] = addr + 2
            if op == POP:
                regs[a] = stack[addr]
            else:
                nxt = _address_reference(stack[addr], 0, n_code)
        elif op == BL:
            regs[LR], nxt = pc + 1, a
        elif op == RET:
            nxt = _address_reference(regs[LR], 0, n_code)
        else:
            return FAULT, pc, steps
        pc = nxt
        steps += 1
    return STEP_LIMIT, pc, steps


# --------------------------------------------------------- stack transformation


@numba.njit(cache=True)
def transform_frames(
    src_stack,
    src_regs,
    dst_stack,
    dst_regs,
    top_site,
    site_func,
    src_pc_site,
    src_loc,
    src_stub_ret,
    dst_site_pc,
    dst_geom,
    dst_loc,
    dst_stub_ret,
    stack_top,
):
    """Rewrite a stack from the source ISA's frame layout into the destination's.

    The thread is stopped at migration point ``top_site``. The walk follows the chain
    of saved frame pointers from the top frame to the outermost one, naming each
    caller frame by the call site its return address belongs to. The destination
    stack is then built outermost first: each frame gets a frame record (the
    caller's frame pointer and the destination ISA's return address) and every local
    of the frame is copied from its source location to its destination location, as
    the two stack maps of the frame's site say.

    Parameters
    ----------
    src_stack, dst_stack : ndarray of float64, shape (n_stack,)
    src_regs, dst_regs : ndarray of float64, shape (16,)
        ``dst_regs`` should start as a copy of ``src_regs``; its frame, stack and
        link registers and the top frame's register-held locals are overwritten.
    top_site : int
        The migration point the thread is stopped at.
    site_func : ndarray of int64, shape (n_sites,)
        Function that owns each site.
    src_pc_site : ndarray of int64, shape (n_code_src,)
        Call site whose return address is each source pc, or -1.
    src_loc, dst_loc : ndarray of int64, shape (n_sites, max_locals, 2)
        Stack maps: ``(kind, value)`` per local, kind :data:`SLOT` (value: offset
        from fp in units), :data:`REG` (value: register) or -1 (no local).
    src_stub_ret, dst_stub_ret : int
        Return address of the start stub, where the walk ends.
    dst_site_pc : ndarray of int64, shape (n_sites,)
        Destination pc of each site (return address for call sites).
    dst_geom : ndarray of int64, shape (n_funcs, 2)
        Per function ``(delta, gamma)``: ``fp = caller's sp - delta`` and
        ``sp = fp - gamma`` in the destination layout.
    stack_top : int
        Stack pointer before the start stub's call.

    Returns
    -------
    pc : int
        Destination pc to resume at, or -1 if the source stack is corrupt.
    words : int
        Stack and register words read plus written.
    """
    n_stack = src_stack.shape[0]
    fps = np.empty(n_stack // 4 + 1, dtype=np.int64)
    sites = np.empty(n_stack // 4 + 1, dtype=np.int64)
    fp = _address(src_regs[FP], 0, n_stack - 2)
    site = top_site
    n, words = 0, 0
    while True:
        if fp < 0 or n >= fps.shape[0]:
            return -1, words
        fps[n], sites[n] = fp, site
        n += 1
        ret = src_stack[fp + 2]
        words += 1
        if ret == src_stub_ret:
            break
        ret_pc = _address(ret, 0, src_pc_site.shape[0])
        if ret_pc < 0 or src_pc_site[ret_pc] < 0:
            return -1, words
        site = src_pc_site[ret_pc]
        fp = _address(src_stack[fp], 0, n_stack - 2)
        words += 1

    sp, caller_fp, ret_dst = stack_top, src_stack[fps[n - 1]], dst_stub_ret
    words += 1
    for i in range(n - 1, -1, -1):
        s = sites[i]
        f = site_func[s]
        fp_dst = sp - dst_geom[f, 0]
        if fp_dst < 0 or fp_dst + 2 >= n_stack:
            return -1, words
        dst_stack[fp_dst] = caller_fp
        dst_stack[fp_dst + 2] = ret_dst
        words += 2
        for j in range(src_loc.shape[1]):
            if src_loc[s, j, 0] < 0:
                continue
            if src_loc[s, j, 0] == SLOT:
                value = src_stack[fps[i] + src_loc[s, j, 1]]
            else:
                value = src_regs[src_loc[s, j, 1]]
            if dst_loc[s, j, 0] == SLOT:
                dst_stack[fp_dst + dst_loc[s, j, 1]] = value
            else:
                dst_regs[dst_loc[s, j, 1]] = value
            words += 2
        sp = fp_dst - dst_geom[f, 1]
        caller_fp, ret_dst = fp_dst, dst_site_pc[s]
    dst_regs[FP], dst_regs[SP], dst_regs[LR] = caller_fp, sp, 0.0
    return dst_site_pc[top_site], words


def transform_frames_reference(
    src_stack,
    src_regs,
    dst_stack,
    dst_regs,
    top_site,
    site_func,
    src_pc_site,
    src_loc,
    src_stub_ret,
    dst_site_pc,
    dst_geom,
    dst_loc,
    dst_stub_ret,
    stack_top,
):
    """Plain-Python version of :func:`transform_frames` (same arguments and results)."""
    n_stack = len(src_stack)
    frames, words = [], 0
    fp, site = _address_reference(src_regs[FP], 0, n_stack - 2), top_site
    while True:
        if fp < 0 or len(frames) > n_stack // 4:
            return -1, words
        frames.append((fp, site))
        ret = src_stack[fp + 2]
        words += 1
        if ret == src_stub_ret:
            break
        ret_pc = _address_reference(ret, 0, len(src_pc_site))
        if ret_pc < 0 or src_pc_site[ret_pc] < 0:
            return -1, words
        site = int(src_pc_site[ret_pc])
        fp = _address_reference(src_stack[fp], 0, n_stack - 2)
        words += 1

    def read(kind, value, fp_src):
        return src_stack[fp_src + value] if kind == SLOT else src_regs[value]

    sp, caller_fp, ret_dst = stack_top, src_stack[frames[-1][0]], dst_stub_ret
    words += 1
    for fp_src, s in reversed(frames):
        delta, gamma = (int(v) for v in dst_geom[site_func[s]])
        fp_dst = sp - delta
        if not 0 <= fp_dst < n_stack - 2:
            return -1, words
        dst_stack[fp_dst], dst_stack[fp_dst + 2] = caller_fp, ret_dst
        words += 2
        for (kind, value), (dst_kind, dst_value) in zip(
            src_loc[s], dst_loc[s], strict=True
        ):
            if kind < 0:
                continue
            if dst_kind == SLOT:
                dst_stack[fp_dst + dst_value] = read(kind, value, fp_src)
            else:
                dst_regs[dst_value] = read(kind, value, fp_src)
            words += 2
        sp, caller_fp, ret_dst = fp_dst - gamma, fp_dst, dst_site_pc[s]
    dst_regs[FP], dst_regs[SP], dst_regs[LR] = caller_fp, sp, 0.0
    return int(dst_site_pc[top_site]), words


# ------------------------------------------------------------------ benchmarks


def benchmarks() -> list[BenchCase]:
    """Benchmark cases: the interpreter on recursive Fibonacci, and a 64-frame
    stack transformation, each against its Python reference (no NumPy form: both
    are sequential walks)."""
    from paperlab.systems_data import unifico_uniform_stack as ch

    fib = ch.build(ch.BENCHMARKS["fib"].source, "native")["X"]
    memory = np.zeros(1)

    def interpret(fn):
        regs, stack = ch.initial_state(fib, (20,))
        return fn(fib.code, fib.consts, memory, regs, stack, 0, 2**62, -1, 10**8)

    state = ch.stack_at_depth(64, "native")
    src, dst = state.binaries["X"], state.binaries["A"]
    args = (
        state.stack,
        state.regs,
        np.zeros_like(state.stack),
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
    return [
        BenchCase(
            name="run_vm",
            size="fib(20) on X, 459,720 instructions",
            kernel=lambda: interpret(run_vm),
            reference=lambda: interpret(run_vm_reference),
        ),
        BenchCase(
            name="transform_frames",
            size="64 frames, X to A",
            kernel=lambda: transform_frames(*args),
            reference=lambda: transform_frames_reference(*args),
        ),
    ]
