"""Unifico: thread migration between two ISAs without rewriting the stack.

Mavrogeorgis, Vasiladiotis, Mu, Khordadi, Franke and Barbalace, "A Magnified View
into Heterogeneous-ISA Thread Migration Performance without State Transformation",
arXiv 2512.24530.

A thread that moves between cores of different instruction sets (ISAs) carries a
stack laid out by one ISA's compiler. The state-transformation approach (Popcorn)
rewrites every frame into the other ISA's layout at each migration, guided by stack
maps that the compiler emits. Unifico instead makes both backends agree on one layout
(same slots, sizes, frame records and frame sizes, one register convention, code
padded so that return addresses coincide), so a migration only switches the
instruction stream.

This module holds a small compiler from a subset of Python (functions, int and float
locals, arithmetic, ``if``, ``while``, calls, a global array ``mem``) to two toy ISAs
that differ the way x86-64 and AArch64 do, in a native mode (each backend picks its
own layout) and a unified mode; migration by transformation, by Unifico's switch and
by a naive switch; and the chapter's experiment and claim. The interpreter and the
frame rewriting are Numba kernels in :mod:`paperlab.kernels.toy_isa`.

The two ISAs
------------
**X** (x86-64-like): 8 general registers, three of them for locals; ``CALLX`` pushes
the return address; frame record above the locals; int locals in 4-byte slots;
arithmetic may read one operand straight from a stack slot (``ADDM``).
**A** (AArch64-like): 12 general registers, seven for locals; ``BL`` leaves the
return address in the link register and the prologue stores ``(fp, lr)`` with ``STP``
at the bottom of the frame, locals above it; every slot 8 bytes; load/store only.
"""

from __future__ import annotations

import ast
import functools
import logging
import math
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from paperlab.claims import require
from paperlab.kernels import toy_isa as vm
from paperlab.timing import median_time
from paperlab.validation import check_array, check_choice, check_instance, check_int

__all__ = [
    "ISAS", "MODES", "VARIANTS", "BENCHMARKS", "DIVE_SOURCE", "STACK_UNITS",
    "STUB_RET", "FunctionInfo", "parse_program", "frame_layout", "Binary", "build",
    "disassemble", "initial_state", "Run", "execute", "reference_output", "migrate",
    "run_migrating", "walk_frames", "StackState", "stack_at_depth", "migration_words",
    "migration_seconds", "Config", "BenchmarkResult", "Result", "run_experiment",
    "check_claim", "plot_migration_cost", "plot_overheads", "plot_stacks",
]  # fmt: skip

log = logging.getLogger(__name__)

ISAS = ("X", "A")
MODES = ("native", "unified")
VARIANTS = ("unified", "transform", "naive")
SCRATCH = (0, 1, 2, 3, 4)  # expression temporaries and the five argument registers
HOME_REGS = {"X": (5, 6, 7), "A": (5, 6, 7, 8, 9, 10, 11)}  # registers for locals
STACK_UNITS = 8192  # stack size in 4-byte units
STUB_RET = 1  # return address of the start stub (CALL entry; HALT)
MAX_STEPS = 50_000_000
INSTRUCTION_BYTES = 4
SITE_BYTES, ENTRY_BYTES, FRAME_BYTES = 8, 8, 8  # stack-map record sizes
LABEL, SYNC, FUNC = -1, -2, -3  # pseudo-instructions, removed when linking

# The claim's thresholds (see check_claim).
MIN_MIGRATIONS = 10
MAX_FLAT_RATIO = 1.5
MIN_TRANSFORM_GROWTH = 10.0
MAX_INSTRUCTION_OVERHEAD = 0.15
MAX_SIZE_FRACTION = 0.5

_BINOPS = {ast.Add: vm.ADD, ast.Sub: vm.SUB, ast.Mult: vm.MUL, ast.Div: vm.DIV}
_COMPARES = {ast.Lt: (vm.LT, False), ast.LtE: (vm.LE, False), ast.Gt: (vm.LT, True)}
_COMPARES |= {ast.GtE: (vm.LE, True), ast.Eq: (vm.EQ, False)}
_MEMORY_FORM = {vm.ADD: vm.ADDM, vm.SUB: vm.SUBM, vm.MUL: vm.MULM}
FP, SP = vm.FP, vm.SP
_STATUS = {vm.HALTED: "halted", vm.FAULT: "faulted", vm.STEP_LIMIT: "ran out of steps"}


# ------------------------------------------------------------------ the compiler


@dataclass(frozen=True)
class FunctionInfo:
    """One function of a program, as the compiler sees it."""

    name: str
    params: tuple[str, ...]
    types: dict  # local name -> "int" or "float"; parameters first
    weights: dict  # local name -> uses, each weighted 8 ** (loop depth)
    node: ast.FunctionDef = field(repr=False)


def _annotation(node, where: str) -> str:
    if isinstance(node, ast.Name) and node.id in ("int", "float"):
        return node.id
    raise ValueError(f"{where}: annotate every parameter and local with int or float")


def _use_weights(node: ast.FunctionDef, names) -> dict:
    weights = dict.fromkeys(names, 0.0)

    def visit(sub, depth):
        if isinstance(sub, ast.Name) and sub.id in weights:
            weights[sub.id] += 8.0**depth
        inner = depth + 1 if isinstance(sub, ast.While) else depth
        for child in ast.iter_child_nodes(sub):
            visit(child, inner)

    visit(node, 0)
    return weights


def parse_program(source: str) -> tuple[FunctionInfo, ...]:
    """Read a program: top-level functions, the first one being the entry point.

    Parameters
    ----------
    source : str
        Python source of functions whose parameters and locals are annotated
        ``int`` or ``float`` (``x: int = 0`` declares a local).

    Returns
    -------
    tuple of FunctionInfo

    Raises
    ------
    ValueError
        If the source has anything but function definitions at top level, an
        unannotated parameter, or a local declared with two types.
    """
    if not isinstance(source, str):
        raise TypeError(f"source must be a string, got {type(source).__name__}")
    try:
        tree = ast.parse(source)
    except SyntaxError as err:
        raise ValueError(f"source is not valid Python: {err}") from err
    funcs = []
    for node in tree.body:
        if not isinstance(node, ast.FunctionDef):
            raise ValueError(f"line {node.lineno}: only functions at top level")
        where = f"{node.name}, line {node.lineno}"
        types = {a.arg: _annotation(a.annotation, where) for a in node.args.args}
        for sub in ast.walk(node):
            if isinstance(sub, ast.AnnAssign):
                if not isinstance(sub.target, ast.Name):
                    raise ValueError(f"{where}: annotate only local names")
                kind = _annotation(sub.annotation, f"{node.name}, line {sub.lineno}")
                if types.setdefault(sub.target.id, kind) != kind:
                    raise ValueError(f"{where}: {sub.target.id} declared twice")
        params = tuple(a.arg for a in node.args.args)
        funcs.append(
            FunctionInfo(node.name, params, types, _use_weights(node, types), node)
        )
    if not funcs:
        raise ValueError("source must define at least one function")
    return tuple(funcs)


def frame_layout(types, isa: str, mode: str) -> tuple[tuple, tuple, int]:
    """Where one frame keeps its locals.

    Native X packs int locals in 4-byte slots and floats in aligned 8-byte slots
    below the frame pointer; native A gives every local an 8-byte slot above its
    16-byte frame record; the unified layout is X's with every slot widened to 8
    bytes, on both ISAs.

    Parameters
    ----------
    types : sequence of {"int", "float"}
        The frame's locals, in order.
    isa : {"X", "A"}
    mode : {"native", "unified"}

    Returns
    -------
    offsets : tuple of int
        Each local's slot, in 4-byte units from the frame pointer.
    sizes : tuple of int
        Each slot's size in units (1 or 2).
    frame : int
        Units the locals take, rounded up to 16 bytes.
    """
    isa = check_choice("isa", isa, ISAS)
    mode = check_choice("mode", mode, MODES)
    types = [check_choice("types entry", t, ("int", "float")) for t in types]
    packed = isa == "X" and mode == "native"
    sizes = tuple(1 if packed and t == "int" else 2 for t in types)
    if isa == "A" and mode == "native":
        offsets = tuple(4 + 2 * i for i in range(len(sizes)))
        used = 2 * len(sizes)
    else:
        offsets, used = [], 0
        for size in sizes:
            used += size
            used += used % size  # 8-byte slots sit on 8-byte boundaries
            offsets.append(-used)
        offsets = tuple(offsets)
    return offsets, sizes, -(-used // 4) * 4


def _geometry(isa: str, mode: str, frame: int) -> tuple[int, int]:
    """``(delta, gamma)``: ``fp = caller's sp - delta`` and ``sp = fp - gamma``."""
    return (frame + 4, 0) if (isa, mode) == ("A", "native") else (4, frame)


@dataclass
class _Tables:
    """What one ISA's compilation collects across functions."""

    funcs: dict
    consts: dict = field(default_factory=dict)
    sites: list = field(default_factory=list)  # (function index, kind)
    maps: list = field(default_factory=list)  # per site: (kind, value) per local


class _Emitter:
    """Code generation for one function on one ISA, native or unified."""

    def __init__(self, fn: FunctionInfo, index: int, isa: str, mode: str, tables):
        self.fn, self.index, self.tables = fn, index, tables
        self.isa, self.mode = isa, mode
        offsets, _, self.frame = frame_layout(fn.types.values(), isa, mode)
        self.slot = dict(zip(fn.types, offsets, strict=True))
        ranked = sorted(fn.types, key=lambda name: -fn.weights[name])
        homes = HOME_REGS["X" if mode == "unified" else isa]
        self.home = dict(zip(ranked, homes, strict=False))
        self.out, self.n_labels = [], 0

    def emit(self, op, a=0, b=0, c=0):
        self.out.append((op, a, b, c))

    def error(self, node, what: str) -> ValueError:
        return ValueError(f"{self.fn.name}, line {node.lineno}: {what}")

    def label(self):
        self.n_labels += 1
        return ("L", self.index, self.n_labels)

    def site(self, kind: str) -> int:
        """A migration point or call site, with its stack map (all locals live)."""
        in_reg = kind != "call"  # at a call every register was just spilled
        locs = [
            (vm.REG, self.home[v]) if in_reg and v in self.home else (vm.SLOT, s)
            for v, s in self.slot.items()
        ]
        self.tables.sites.append((self.index, kind))
        self.tables.maps.append(locs)
        return len(self.tables.sites) - 1

    def local(self, node) -> str:
        if not isinstance(node, ast.Name) or node.id not in self.slot:
            raise self.error(node, "expected a declared local")
        return node.id

    def in_slot(self, node) -> bool:
        return isinstance(node, ast.Name) and self.local(node) not in self.home

    def const(self, value) -> int:
        return self.tables.consts.setdefault(float(value), len(self.tables.consts))

    def expr(self, node, depth: int) -> int:
        """Evaluate ``node``; return the register holding it (scratch ``depth``)."""
        if depth >= len(SCRATCH):
            raise self.error(node, "expression too deep for the scratch registers")
        r = SCRATCH[depth]
        if isinstance(node, ast.UnaryOp) and _is_number(node.operand):
            if isinstance(node.op, ast.USub):
                node = ast.Constant(-node.operand.value, lineno=node.lineno)
        if _is_number(node):
            self.emit(vm.LI, r, self.const(node.value))
        elif isinstance(node, ast.Name):
            if self.local(node) in self.home:
                return self.home[node.id]
            self.emit(vm.LD, r, FP, self.slot[node.id])
        elif _is_mem(node):
            self.emit(vm.LDG, r, self.expr(node.slice, depth), 0)
        else:
            op, left, right = self.operands(node)
            lhs = self.expr(left, depth)
            if self.isa == "X" and op in _MEMORY_FORM and self.in_slot(right):
                self.emit(_MEMORY_FORM[op], r, lhs, self.slot[right.id])
            elif op in (vm.ADD, vm.SUB) and _is_int(right):
                imm = right.value if op == vm.ADD else -right.value
                self.emit(vm.ADDI, r, lhs, imm)
            else:
                self.emit(op, r, lhs, self.expr(right, depth + 1))
        return r

    def operands(self, node):
        if isinstance(node, ast.BinOp) and type(node.op) in _BINOPS:
            return _BINOPS[type(node.op)], node.left, node.right
        if isinstance(node, ast.Compare) and len(node.ops) == 1:
            op, swap = _COMPARES.get(type(node.ops[0]), (None, False))
            if op is not None:
                left, right = node.left, node.comparators[0]
                return (op, right, left) if swap else (op, left, right)
        raise self.error(node, f"unsupported expression {type(node).__name__}")

    def store(self, name: str, reg: int):
        if name in self.home:
            if reg != self.home[name]:
                self.emit(vm.MOV, self.home[name], reg)
        else:
            self.emit(vm.ST, reg, FP, self.slot[name])

    def call(self, target, node: ast.Call):
        """``target = f(args)``: arguments in r0.., locals spilled, result in r0."""
        callee = self.tables.funcs.get(getattr(node.func, "id", None))
        if callee is None or len(node.args) != len(callee.params):
            raise self.error(node, "call a defined function with its arguments")
        for i, arg in enumerate(node.args):
            reg = self.expr(arg, i)
            if reg != i:
                self.emit(vm.MOV, i, reg)
        for name, reg in self.home.items():  # registers are caller-saved
            self.emit(vm.ST, reg, FP, self.slot[name])
        self.emit(SYNC)
        call = vm.CALLX if self.isa == "X" else vm.BL
        self.emit(call, ("F", callee.name), 0, self.site("call"))
        for name, reg in self.home.items():
            self.emit(vm.LD, reg, FP, self.slot[name])
        self.store(self.local(target), 0)

    def statement(self, node):
        if isinstance(node, ast.Assign) and len(node.targets) != 1:
            raise self.error(node, "assign to one target at a time")
        if isinstance(node, (ast.Assign, ast.AnnAssign)):
            target = node.target if isinstance(node, ast.AnnAssign) else node.targets[0]
            if node.value is None:
                return
            if isinstance(node.value, ast.Call):
                self.call(target, node.value)
            elif _is_mem(target):
                value = self.expr(node.value, 0)
                self.emit(vm.STG, value, self.expr(target.slice, 1), 0)
            else:
                self.store(self.local(target), self.expr(node.value, 0))
        elif isinstance(node, ast.If):
            skip, end = self.label(), self.label()
            self.emit(vm.JZ, self.expr(node.test, 0), skip)
            self.block(node.body)
            if node.orelse:
                self.emit(vm.JMP, end)
            self.emit(LABEL, skip)
            self.block(node.orelse)
            self.emit(LABEL, end)
        elif isinstance(node, ast.While):
            head, end = self.label(), self.label()
            self.emit(SYNC)
            self.emit(LABEL, head)
            self.emit(vm.MIGPT, self.site("loop"))
            self.emit(vm.JZ, self.expr(node.test, 0), end)
            self.block(node.body)
            self.emit(vm.JMP, head)
            self.emit(LABEL, end)
        elif isinstance(node, ast.Return) and node.value is not None:
            reg = self.expr(node.value, 0)
            if reg != 0:
                self.emit(vm.MOV, 0, reg)
            self.epilogue()
        else:
            raise self.error(node, f"unsupported statement {type(node).__name__}")

    def block(self, nodes):
        for node in nodes:
            self.statement(node)

    def prologue(self):
        """X: push fp. A: store (fp, lr) with STP; native A keeps the record at the
        bottom of the frame, unified A at the top, where X has it."""
        f = self.frame
        if self.isa == "X":
            self.out += [(vm.PUSH, FP, 0, 0), (vm.MOV, FP, SP, 0)]
        elif self.mode == "native":
            self.out += [(vm.ADDI, SP, SP, -f - 4), (vm.STP, SP, 0, 0)]
            self.emit(vm.MOV, FP, SP)
            return
        else:
            self.out += [(vm.ADDI, SP, SP, -4), (vm.STP, SP, 0, 0), (vm.MOV, FP, SP, 0)]
        if f:
            self.emit(vm.ADDI, SP, SP, -f)

    def epilogue(self):
        if self.isa == "X":
            self.out += [(vm.MOV, SP, FP, 0), (vm.POP, FP, 0, 0), (vm.RETX, 0, 0, 0)]
        elif self.mode == "native":
            self.out += [(vm.LDP, SP, 0, 0), (vm.ADDI, SP, SP, self.frame + 4)]
            self.emit(vm.RET)
        else:
            self.out += [(vm.MOV, SP, FP, 0), (vm.LDP, SP, 0, 0), (vm.ADDI, SP, SP, 4)]
            self.emit(vm.RET)

    def compile(self) -> list:
        if len(self.fn.params) > len(SCRATCH):
            raise self.error(self.fn.node, "at most five parameters")
        self.out += [(SYNC, 0, 0, 0), (FUNC, self.fn.name, 0, 0)]
        self.prologue()
        for i, name in enumerate(self.fn.params):
            self.store(name, i)
        self.emit(SYNC)
        self.emit(vm.MIGPT, self.site("entry"))
        self.block(self.fn.node.body)
        if not isinstance(self.fn.node.body[-1], ast.Return):
            self.epilogue()
        return self.out


def _is_mem(node) -> bool:
    return (
        isinstance(node, ast.Subscript)
        and isinstance(node.value, ast.Name)
        and node.value.id == "mem"
    )


def _is_number(node) -> bool:
    return isinstance(node, ast.Constant) and type(node.value) in (int, float)


def _is_int(node) -> bool:
    return isinstance(node, ast.Constant) and type(node.value) is int


def _pad(streams: dict) -> dict:
    """Insert NOPs so that every synchronisation point (function start, call, and
    migration point) sits at the same address in both ISAs' code."""
    parts = {isa: [[]] for isa in streams}
    for isa, stream in streams.items():
        for ins in stream:
            if ins[0] == SYNC:
                parts[isa].append([])
            else:
                parts[isa][-1].append(ins)
    padded = {isa: [] for isa in streams}
    for segments in zip(*parts.values(), strict=True):
        lengths = [sum(ins[0] >= 0 for ins in seg) for seg in segments]
        for isa, seg, n in zip(streams, segments, lengths, strict=True):
            padded[isa] += seg + [(vm.NOP, 0, 0, 0)] * (max(lengths) - n)
    return padded


@dataclass(frozen=True)
class Binary:
    """Machine code for one ISA, with the tables a migration runtime reads."""

    isa: str
    mode: str
    code: np.ndarray = field(repr=False)  # int32 (n_code, 4)
    consts: np.ndarray = field(repr=False)  # float64 constant pool
    func_names: tuple  # functions in address order; the first is the entry
    func_pc: tuple  # first address of each function
    frames: tuple  # per function: ((local, offset, size), ...)
    geom: np.ndarray = field(repr=False)  # int64 (n_funcs, 2): delta, gamma
    site_func: np.ndarray = field(repr=False)  # int64 (n_sites,)
    site_kind: tuple  # "entry", "loop" or "call" per site
    site_pc: np.ndarray = field(repr=False)  # MIGPT pc, or return pc of a call
    pc_site: np.ndarray = field(repr=False)  # call site per return pc, else -1
    site_loc: np.ndarray = field(repr=False)  # int64 (n_sites, max_locals, 2)

    @property
    def code_bytes(self) -> int:
        """Size of the code at 4 bytes per instruction."""
        return self.code.shape[0] * INSTRUCTION_BYTES

    @property
    def map_bytes(self) -> int:
        """Size of the stack maps a transforming runtime needs for this binary."""
        entries = int(np.sum(self.site_loc[:, :, 0] >= 0))
        return (
            len(self.site_kind) * SITE_BYTES
            + entries * ENTRY_BYTES
            + len(self.func_names) * FRAME_BYTES
        )


def _compile_isa(funcs, isa: str, mode: str):
    tables = _Tables({f.name: f for f in funcs})
    call = vm.CALLX if isa == "X" else vm.BL
    stream = [(call, ("F", funcs[0].name), 0, -1), (vm.HALT, 0, 0, 0)]
    for index, fn in enumerate(funcs):
        stream += _Emitter(fn, index, isa, mode, tables).compile()
    return stream, tables


def _link(stream, isa: str, mode: str, funcs, tables: _Tables) -> Binary:
    """Resolve labels and functions to addresses; build the site tables."""
    where, addr = {}, 0
    for op, a, _, _ in stream:
        if op == LABEL:
            where[a] = addr
        elif op == FUNC:
            where[("F", a)] = addr
        elif op >= 0:
            addr += 1
    n_sites = len(tables.sites)
    site_pc, pc_site = np.zeros(n_sites, np.int64), np.full(addr + 1, -1, np.int64)
    code = []
    for op, a, b, c in (ins for ins in stream if ins[0] >= 0):
        if op in (vm.JMP, vm.CALLX, vm.BL):
            a = where[a]
        elif op == vm.JZ:
            b = where[b]
        if op in (vm.CALLX, vm.BL) and c >= 0:
            site_pc[c], pc_site[len(code) + 1] = len(code) + 1, c
        elif op == vm.MIGPT:
            site_pc[a] = len(code)
        code.append((op, a, b, c))
    width = max(len(f.types) for f in funcs)
    site_loc = np.full((n_sites, width, 2), -1, np.int64)
    for s, locs in enumerate(tables.maps):
        site_loc[s, : len(locs)] = locs
    layouts = [frame_layout(f.types.values(), isa, mode) for f in funcs]
    return Binary(
        isa=isa,
        mode=mode,
        code=np.array(code, dtype=np.int32),
        consts=np.array(list(tables.consts), dtype=np.float64),
        func_names=tuple(f.name for f in funcs),
        func_pc=tuple(where[("F", f.name)] for f in funcs),
        frames=tuple(
            tuple(zip(f.types, off, size, strict=True))
            for f, (off, size, _) in zip(funcs, layouts, strict=True)
        ),
        geom=np.array([_geometry(isa, mode, lay[2]) for lay in layouts], np.int64),
        site_func=np.array([f for f, _ in tables.sites], dtype=np.int64),
        site_kind=tuple(kind for _, kind in tables.sites),
        site_pc=site_pc,
        pc_site=pc_site,
        site_loc=site_loc,
    )


@functools.lru_cache(maxsize=64)
def build(source: str, mode: str, pad: bool = True) -> dict:
    """Compile a program for both ISAs.

    Parameters
    ----------
    source : str
        The program (see :func:`parse_program`).
    mode : {"native", "unified"}
        ``native``: each ISA uses its own registers and frame layout. ``unified``:
        both use X's three local registers and the unified frame layout, and the
        code is padded with NOPs so that functions, return addresses and migration
        points share addresses.
    pad : bool
        Pad unified code (``False`` only for the ablation that shows why).

    Returns
    -------
    dict
        ``{"X": Binary, "A": Binary}`` (cached: do not modify the arrays).
    """
    mode = check_choice("mode", mode, MODES)
    check_instance("pad", pad, bool)
    funcs = parse_program(source)
    compiled = {isa: _compile_isa(funcs, isa, mode) for isa in ISAS}
    streams = {isa: stream for isa, (stream, _) in compiled.items()}
    if mode == "unified" and pad:
        streams = _pad(streams)
    return {
        isa: _link(streams[isa], isa, mode, funcs, compiled[isa][1]) for isa in ISAS
    }


_OPERANDS = dict.fromkeys(vm.OPCODES, "")
_OPERANDS |= dict.fromkeys(vm.OPCODES[vm.ADD : vm.EQ + 1], "{ra}, {rb}, {rc}")
_OPERANDS |= dict.fromkeys(("ADDM", "SUBM", "MULM"), "{ra}, {rb}, [fp{c:+d}]")
_OPERANDS |= dict.fromkeys(("LD", "ST"), "{ra}, [{rb}{c:+d}]")
_OPERANDS |= dict.fromkeys(("LDG", "STG"), "{ra}, mem[{rb}{c:+d}]")
_OPERANDS |= dict.fromkeys(("STP", "LDP"), "fp, lr, [{ra}{b:+d}]")
_OPERANDS |= dict.fromkeys(("CALLX", "BL"), "{func}")
_OPERANDS |= dict.fromkeys(("PUSH", "POP"), "{ra}")
_OPERANDS |= {"LI": "{ra}, #{const:g}", "MOV": "{ra}, {rb}", "ADDI": "{ra}, {rb}, #{c}"}
_OPERANDS |= {"JMP": "{a}", "JZ": "{ra}, {b}", "MIGPT": "site {a}"}


def disassemble(binary: Binary, function: str) -> list[str]:
    """One line of assembly text per instruction of ``function``."""
    check_instance("binary", binary, Binary)
    index = binary.func_names.index(
        check_choice("function", function, binary.func_names)
    )
    stop = (binary.func_pc + (binary.code.shape[0],))[index + 1]
    names = {vm.LR: "lr", FP: "fp", SP: "sp"}
    lines = []
    for pc in range(binary.func_pc[index], stop):
        op, a, b, c = (int(v) for v in binary.code[pc])
        reg = [names.get(v, f"r{v}") for v in (a, b, c)]
        func = binary.func_names[binary.func_pc.index(a)] if a in binary.func_pc else ""
        const = binary.consts[b] if op == vm.LI else 0.0
        text = _OPERANDS[vm.OPCODES[op]].format(
            ra=reg[0], rb=reg[1], rc=reg[2], a=a, b=b, c=c, func=func, const=const
        )
        lines.append(f"{pc:4d}  {vm.OPCODES[op]:<5} {text}".rstrip())
    return lines


# ------------------------------------------------------------- running programs


def initial_state(binary: Binary, args) -> tuple[np.ndarray, np.ndarray]:
    """Registers (arguments in r0..) and an empty stack for a run from the stub."""
    check_instance("binary", binary, Binary)
    args = check_array("args", args, ndim=1, dtype=np.float64, finite=True)
    if args.shape[0] > len(SCRATCH):
        raise ValueError(f"args must have at most 5 values, got {args.shape[0]}")
    regs = np.zeros(vm.N_REGS)
    regs[: args.shape[0]] = args
    regs[SP] = STACK_UNITS
    return regs, np.zeros(STACK_UNITS)


@dataclass(frozen=True)
class Run:
    """The outcome of one run, with or without migrations."""

    value: float  # r0 when the program halted (NaN if it faulted)
    memory: np.ndarray = field(repr=False)  # global data afterwards
    steps: int  # instructions executed
    status: int  # toy_isa.HALTED, FAULT or STEP_LIMIT
    migrations: int = 0  # migrations performed
    words: int = 0  # words the migrations read and wrote


def execute(binary: Binary, memory, args, max_steps: int = MAX_STEPS) -> Run:
    """Run a program on one ISA, never migrating."""
    memory = check_array("memory", memory, ndim=1, dtype=np.float64).copy()
    max_steps = check_int("max_steps", max_steps, minimum=1)
    regs, stack = initial_state(binary, args)
    status, _, steps = vm.run_vm(
        binary.code, binary.consts, memory, regs, stack, 0, MAX_STEPS, -1, max_steps
    )
    value = float(regs[0]) if status == vm.HALTED else math.nan
    return Run(value, memory, int(steps), int(status))


def reference_output(source: str, memory, args) -> tuple[float, np.ndarray]:
    """Run the program as plain Python (``mem`` a list): the independent answer."""
    entry = parse_program(source)[0].name
    mem = [float(v) for v in check_array("memory", memory, ndim=1)]
    namespace = {"mem": mem}
    exec(compile(source, "<program>", "exec"), namespace)
    return float(namespace[entry](*args)), np.array(mem)


def migrate(variant: str, src: Binary, dst: Binary, regs, stack, pc: int, spare):
    """Move a thread stopped at a migration point from ``src``'s ISA to ``dst``'s.

    Every variant copies the register context (16 words read, 16 written).
    ``unified`` keeps the stack and the pc: the layouts and addresses already agree.
    ``transform`` rewrites the stack into ``spare`` with
    :func:`~paperlab.kernels.toy_isa.transform_frames` (Popcorn's approach).
    ``naive`` translates only the pc, leaving the stack in the source layout.

    Returns
    -------
    regs, stack, pc, words
        The destination state and the words moved.
    """
    variant = check_choice("variant", variant, VARIANTS)
    site = int(src.code[pc, 1])
    new_regs, words = regs.copy(), 2 * vm.N_REGS
    if variant == "unified":
        return new_regs, stack, pc, words
    if variant == "naive":
        return new_regs, stack, int(dst.site_pc[site]), words
    src_maps = (src.site_func, src.pc_site, src.site_loc, STUB_RET)
    dst_maps = (dst.site_pc, dst.geom, dst.site_loc, STUB_RET)
    new_pc, moved = vm.transform_frames(
        stack, regs, spare, new_regs, site, *src_maps, *dst_maps, STACK_UNITS
    )
    return new_regs, spare, int(new_pc), words + int(moved)


def run_migrating(
    binaries: dict, variant: str, memory, args, every: int, max_steps: int = MAX_STEPS
) -> Run:
    """Run a program that migrates X -> A -> X ... at the first migration point
    after every ``every`` instructions.

    Parameters
    ----------
    binaries : dict
        ``{"X": Binary, "A": Binary}`` from :func:`build`.
    variant : {"unified", "transform", "naive"}
        How each migration moves the thread (see :func:`migrate`).
    memory : array_like, shape (n_memory,)
    args : sequence of float
        The entry function's arguments.
    every : int
        Instructions between forced migrations (K).

    Returns
    -------
    Run
    """
    variant = check_choice("variant", variant, VARIANTS)
    every = check_int("every", every, minimum=1)
    if not isinstance(binaries, dict) or set(binaries) != set(ISAS):
        raise TypeError("binaries must be the dict {'X': Binary, 'A': Binary}")
    memory = check_array("memory", memory, ndim=1, dtype=np.float64).copy()
    regs, stack = initial_state(binaries["X"], args)
    spare, isa, pc, total, count, words = np.zeros_like(stack), "X", 0, 0, 0, 0
    while True:
        b = binaries[isa]
        status, pc, steps = vm.run_vm(
            b.code, b.consts, memory, regs, stack, pc, every, -1, max_steps - total
        )
        total += int(steps)
        if status != vm.MIGRATE:
            break
        other = "A" if isa == "X" else "X"
        regs, new_stack, pc, moved = migrate(
            variant, b, binaries[other], regs, stack, pc, spare
        )
        if new_stack is spare:
            spare, stack = stack, new_stack
        isa, count, words = other, count + 1, words + moved
    value = float(regs[0]) if status == vm.HALTED else math.nan
    return Run(value, memory, total, int(status), count, words)


def walk_frames(binary: Binary, stack, regs, site: int) -> list[tuple[int, int]]:
    """``(fp, function index)`` of every frame, innermost first, for a thread
    stopped at migration point ``site``."""
    fp, func, frames = int(regs[FP]), int(binary.site_func[site]), []
    while True:
        frames.append((fp, func))
        ret = int(stack[fp + 2])
        if ret == STUB_RET:
            return frames
        fp, func = int(stack[fp]), int(binary.site_func[binary.pc_site[ret]])


# ------------------------------------------------------------------ benchmarks


@dataclass(frozen=True)
class Benchmark:
    """A program and the inputs it runs on."""

    name: str
    source: str
    make_input: Callable  # rng -> (memory, args)


_CHECKSUM = """
def checksum(start: int, count: int) -> float:
    s: float = 0.0
    t: int = 0
    while t < count:
        s = s + mem[start + t] * (t + 1)
        t = t + 1
    return s
"""

_FIB = """
def main(n: int) -> float:
    r: int = fib(n)
    return r * 1.0

def fib(n: int) -> int:
    if n < 2:
        return n
    a: int = fib(n - 1)
    b: int = fib(n - 2)
    return a + b
"""

_MATMUL = """
def main(n: int) -> float:
    i: int = 0
    while i < n:
        j: int = 0
        while j < n:
            acc: float = 0.0
            k: int = 0
            while k < n:
                acc = acc + mem[i * n + k] * mem[n * n + k * n + j]
                k = k + 1
            mem[2 * n * n + i * n + j] = acc
            j = j + 1
        i = i + 1
    c: float = checksum(2 * n * n, n * n)
    return c
"""

_QSORT = """
def main(n: int) -> float:
    z: int = qsort(0, n - 1)
    c: float = checksum(0, n)
    return c

def qsort(lo: int, hi: int) -> int:
    if lo < hi:
        p: int = partition(lo, hi)
        a: int = qsort(lo, p - 1)
        b: int = qsort(p + 1, hi)
    return 0

def partition(lo: int, hi: int) -> int:
    pivot: float = mem[hi]
    i: int = lo
    j: int = lo
    while j < hi:
        if mem[j] < pivot:
            t: float = mem[i]
            mem[i] = mem[j]
            mem[j] = t
            i = i + 1
        j = j + 1
    t = mem[i]
    mem[i] = mem[hi]
    mem[hi] = t
    return i
"""

_NBODY = """
def main(n: int, steps: int) -> float:
    s: int = 0
    while s < steps:
        i: int = 0
        while i < n:
            f: float = 0.0
            xi: float = mem[i]
            j: int = 0
            while j < n:
                d: float = mem[j] - xi
                f = f + d / (d * d + 0.01)
                j = j + 1
            mem[n + i] = mem[n + i] + 0.01 * f
            i = i + 1
        i = 0
        while i < n:
            mem[i] = mem[i] + 0.01 * mem[n + i]
            i = i + 1
        s = s + 1
    c: float = checksum(0, 2 * n)
    return c
"""

_TREE = """
def main(depth: int, seed: int) -> float:
    v: float = tree(depth, seed)
    return v

def tree(depth: int, seed: int) -> float:
    if depth == 0:
        return seed * 0.5
    left: float = tree(depth - 1, seed * 2)
    right: float = tree(depth - 1, seed * 2 + 1)
    return left * 0.5 + right * 0.25 + depth
"""

BENCHMARKS = {
    "fib": Benchmark("fib", _FIB, lambda rng: (np.zeros(1), (15,))),
    "matmul": Benchmark(
        "matmul",
        _MATMUL + _CHECKSUM,
        lambda rng: (np.concatenate([rng.normal(size=128), np.zeros(64)]), (8,)),
    ),
    "quicksort": Benchmark(
        "quicksort", _QSORT + _CHECKSUM, lambda rng: (rng.uniform(size=64), (64,))
    ),
    "nbody": Benchmark(
        "nbody",
        _NBODY + _CHECKSUM,
        lambda rng: (np.concatenate([rng.uniform(-1, 1, 6), np.zeros(6)]), (6, 8)),
    ),
    "tree": Benchmark(
        "tree", _TREE, lambda rng: (np.zeros(1), (9, int(rng.integers(1, 100))))
    ),
}

# The migration-cost probe: recursion to depth n, then a loop in the deepest frame
# whose migration point is the one the sweep stops at.
DIVE_SOURCE = """
def dive(n: int, x: float) -> float:
    k: int = n * 3
    y: float = x * 0.5 + k
    if n > 1:
        z: float = dive(n - 1, y)
        return z + k
    while k > 0:
        k = k - 1
        y = y + 0.25
    return y
"""


@dataclass(frozen=True)
class StackState:
    """A thread of :data:`DIVE_SOURCE` stopped on X at depth ``depth``."""

    depth: int
    mode: str
    binaries: dict = field(repr=False)
    regs: np.ndarray = field(repr=False)
    stack: np.ndarray = field(repr=False)
    pc: int
    site: int


def stack_at_depth(depth: int, mode: str = "native") -> StackState:
    """Run the dive program on X until ``depth`` frames sit on the stack.

    Parameters
    ----------
    depth : int
        Frames on the stack at the migration point, 1 to 512.
    mode : {"native", "unified"}

    Returns
    -------
    StackState
    """
    depth = check_int("depth", depth, minimum=1, maximum=512)
    binaries = build(DIVE_SOURCE, check_choice("mode", mode, MODES))
    x = binaries["X"]
    site = x.site_kind.index("loop")
    regs, stack = initial_state(x, (depth, 0.5))
    status, pc, _ = vm.run_vm(
        x.code, x.consts, np.zeros(1), regs, stack, 0, 0, site, MAX_STEPS
    )
    if status != vm.MIGRATE:
        raise RuntimeError(f"the dive program did not reach its loop (status {status})")
    return StackState(depth, mode, binaries, regs, stack, int(pc), site)


def _migration_call(depth: int, variant: str):
    variant = check_choice("variant", variant, VARIANTS)
    mode = "unified" if variant == "unified" else "native"
    state = stack_at_depth(depth, mode)
    src, dst = state.binaries["X"], state.binaries["A"]
    spare = np.zeros_like(state.stack)
    return lambda: migrate(variant, src, dst, state.regs, state.stack, state.pc, spare)


def migration_words(depth: int, variant: str) -> int:
    """Words one X -> A migration moves with ``depth`` frames on the stack."""
    return int(_migration_call(depth, variant)()[3])


def migration_seconds(depth: int, variant: str, repeats: int = 15) -> float:
    """Median wall time of that migration, in seconds (noisy: shown, not asserted)."""
    return median_time(_migration_call(depth, variant), repeats=repeats).median


# ------------------------------------------------------------------ experiment


@dataclass(frozen=True)
class Config:
    """The experiment: which migration variant is under test, and its sizes."""

    variant: str = "unified"  # "unified" (the paper), "transform" (Popcorn), "naive"
    seed: int = 0  # draws the benchmarks' input data
    migrate_every: int = 100  # K: instructions between forced migrations
    depths: tuple = (1, 2, 4, 8, 16, 32, 64)  # call depths of the cost sweep
    timing_repeats: int = 15  # timed migrations per depth (median; never asserted)
    pad_code: bool = True  # pad unified code so addresses coincide (ablation)

    def __post_init__(self):
        check_choice("variant", self.variant, VARIANTS)
        check_int("seed", self.seed, minimum=0)
        check_int("migrate_every", self.migrate_every, minimum=1)
        check_int("timing_repeats", self.timing_repeats, minimum=1)
        if not isinstance(self.depths, tuple) or len(self.depths) < 2:
            raise TypeError(f"depths must be a tuple of 2+ ints, got {self.depths!r}")
        for d in self.depths:
            check_int("depths entry", d, minimum=1, maximum=512)
        if list(self.depths) != sorted(set(self.depths)):
            raise ValueError(f"depths must be strictly increasing, got {self.depths}")
        if not isinstance(self.pad_code, bool):
            raise TypeError(f"pad_code must be a bool, got {self.pad_code!r}")


@dataclass(frozen=True)
class BenchmarkResult:
    """One benchmark: Python's answer, the four plain runs, the migrating run."""

    name: str
    reference: float  # the program's answer, run as plain Python
    steps: dict  # (mode, isa) -> instructions executed without migrating
    plain_ok: bool  # all four plain runs match Python (value and memory)
    migrated: Run  # the variant under test, migrating every K instructions
    migrated_ok: bool  # ... and still matching Python
    code_bytes: dict  # mode -> code bytes of both ISAs' binaries
    map_bytes: int  # stack maps of both native binaries

    def instruction_overhead(self, isa: str) -> float:
        """Extra instructions the unified code executes, as a fraction of native."""
        return self.steps[("unified", isa)] / self.steps[("native", isa)] - 1.0

    def size_overhead(self, variant: str) -> float:
        """Bytes a variant adds to a plain native build of both ISAs, as a fraction:
        padding and longer code (unified), stack maps (transform), none (naive)."""
        extra = {
            "unified": self.code_bytes["unified"] - self.code_bytes["native"],
            "transform": self.map_bytes,
            "naive": 0,
        }[check_choice("variant", variant, VARIANTS)]
        return extra / self.code_bytes["native"]


@dataclass(frozen=True)
class Result:
    """Everything the claim is checked on."""

    config: Config
    benchmarks: tuple  # of BenchmarkResult
    cost_words: dict  # variant -> words per migration at each of config.depths
    cost_seconds: dict  # variant -> seconds per migration at each depth

    def cost_ratio(self, variant: str) -> float:
        """Migration words at the largest depth over those at the smallest."""
        words = self.cost_words[variant]
        return words[-1] / words[0]

    def instruction_overhead(self, variant: str) -> float:
        """Mean extra instructions over benchmarks and ISAs (0 for native code)."""
        if variant != "unified":
            return 0.0
        return float(
            np.mean([b.instruction_overhead(i) for b in self.benchmarks for i in ISAS])
        )

    def size_overhead(self, variant: str) -> float:
        """Mean binary-size overhead over the benchmarks (see BenchmarkResult)."""
        return float(np.mean([b.size_overhead(variant) for b in self.benchmarks]))


def _same(run: Run, value: float, memory: np.ndarray) -> bool:
    return run.value == value and np.array_equal(run.memory, memory)


def _run_benchmark(bench: Benchmark, config: Config, rng) -> BenchmarkResult:
    memory, args = bench.make_input(rng)
    value, final_memory = reference_output(bench.source, memory, args)
    builds = {
        "native": build(bench.source, "native"),
        "unified": build(bench.source, "unified", config.pad_code),
    }
    plain = {
        (mode, isa): execute(builds[mode][isa], memory, args)
        for mode in MODES
        for isa in ISAS
    }
    binaries = builds["unified" if config.variant == "unified" else "native"]
    limit = 10 * max(run.steps for run in plain.values())  # a broken run may loop
    migrated = run_migrating(
        binaries, config.variant, memory, args, config.migrate_every, limit
    )
    log.info(
        "%s: %d migrations, value %r", bench.name, migrated.migrations, migrated.value
    )
    return BenchmarkResult(
        name=bench.name,
        reference=value,
        steps={key: run.steps for key, run in plain.items()},
        plain_ok=all(_same(run, value, final_memory) for run in plain.values()),
        migrated=migrated,
        migrated_ok=_same(migrated, value, final_memory),
        code_bytes={m: sum(b.code_bytes for b in builds[m].values()) for m in MODES},
        map_bytes=sum(b.map_bytes for b in builds["native"].values()),
    )


def run_experiment(config: Config) -> Result:
    """Run the five benchmarks with forced migrations, and sweep migration cost.

    For each benchmark: run it as Python, run it on both ISAs in both modes without
    migrating, then run it with ``config.variant`` migrating X -> A -> X ... every
    ``config.migrate_every`` instructions. Then measure, for every variant, the
    words and wall time of one migration of the dive program at each depth.

    Parameters
    ----------
    config : Config

    Returns
    -------
    Result
    """
    check_instance("config", config, Config)
    rng = np.random.default_rng(config.seed)
    results = tuple(_run_benchmark(b, config, rng) for b in BENCHMARKS.values())
    words = {v: tuple(migration_words(d, v) for d in config.depths) for v in VARIANTS}
    seconds = {
        v: tuple(migration_seconds(d, v, config.timing_repeats) for d in config.depths)
        for v in ("unified", "transform")
    }
    return Result(config, results, words, seconds)


def check_claim(result: Result) -> None:
    """Check the chapter's claim for the variant named by ``result.config.variant``.

    1. Every benchmark, compiled for either ISA in either mode, matches plain
       Python; migrated at least 10 times, it still matches bit for bit.
    2. A migration with 64 frames on the stack costs less than 1.5x one with 1
       frame, while the transformation's cost grows at least 10x.
    3. The variant executes under 15% more instructions than native code, averaged
       over benchmarks and ISAs.
    4. Its binary-size overhead is at most half the transformation's.

    Raises
    ------
    paperlab.claims.ClaimFailed
        If any part fails; the message names the benchmark and the numbers.
    """
    check_instance("result", result, Result)
    variant, depths = result.config.variant, result.config.depths
    for b in result.benchmarks:
        require(b.plain_ok, f"{b.name}: compiled code disagrees with plain Python")
        status = _STATUS[b.migrated.status]
        require(
            b.migrated_ok,
            f"{b.name}: after {b.migrated.migrations} {variant} migrations the run"
            f" {status} with {b.migrated.value!r}, not {b.reference!r}",
        )
        require(
            b.migrated.migrations >= MIN_MIGRATIONS,
            f"{b.name}: only {b.migrated.migrations} migrations",
        )
    ratio, growth = result.cost_ratio(variant), result.cost_ratio("transform")
    require(
        ratio < MAX_FLAT_RATIO,
        f"{variant} migration cost grows {ratio:.1f}x from depth {depths[0]} to"
        f" {depths[-1]} (claim: < {MAX_FLAT_RATIO})",
    )
    require(
        growth >= MIN_TRANSFORM_GROWTH,
        f"the transformation's cost grows only {growth:.1f}x over the same depths",
    )
    overhead = result.instruction_overhead(variant)
    require(
        overhead < MAX_INSTRUCTION_OVERHEAD,
        f"{variant} code executes {overhead:.1%} more instructions (claim: < 15%)",
    )
    size, baseline = result.size_overhead(variant), result.size_overhead("transform")
    require(
        size <= MAX_SIZE_FRACTION * baseline,
        f"{variant} adds {size:.0%} to the binary, the transformation {baseline:.0%}",
    )


# -------------------------------------------------------------------- figures


def plot_migration_cost(result: Result):
    """Figure: words and microseconds per migration against stack depth."""
    from paperlab.plotting import COLORS, label_axes, subplots

    fig, (left, right) = subplots(1, 2, width=10.0, height=3.6)
    depths = result.config.depths
    for color, variant, name in (
        (COLORS[0], "unified", "Unifico (switch ISA)"),
        (COLORS[1], "transform", "Popcorn-style transformation"),
    ):
        left.plot(depths, result.cost_words[variant], "o-", color=color, label=name)
        us = np.array(result.cost_seconds[variant]) * 1e6
        right.plot(depths, us, "o-", color=color, label=name)
    for ax in (left, right):
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
    label_axes(
        left,
        title="Work per migration",
        xlabel="frames on the stack at the migration point",
        ylabel="words read + written",
    )
    label_axes(
        right,
        title="Wall time per migration (this machine)",
        xlabel="frames on the stack at the migration point",
        ylabel="median time (µs)",
    )
    return fig


def plot_overheads(result: Result):
    """Figure: extra instructions (per ISA) and extra binary size, per benchmark."""
    from paperlab.plotting import COLORS, label_axes, subplots

    fig, (left, right) = subplots(1, 2, width=10.0, height=3.6)
    names = [b.name for b in result.benchmarks]
    x = np.arange(len(names))
    for shift, color, isa in ((-0.2, COLORS[0], "X"), (0.2, COLORS[4], "A")):
        values = [100 * b.instruction_overhead(isa) for b in result.benchmarks]
        left.bar(x + shift, values, width=0.4, color=color, label=f"ISA {isa}")
    left.axhline(100 * MAX_INSTRUCTION_OVERHEAD, color="0.3", ls="--", lw=1)
    for shift, color, variant, label in (
        (-0.2, COLORS[0], "unified", "Unifico: padding"),
        (0.2, COLORS[1], "transform", "transformation: stack maps"),
    ):
        values = [100 * b.size_overhead(variant) for b in result.benchmarks]
        right.bar(x + shift, values, width=0.4, color=color, label=label)
    for ax in (left, right):
        ax.set_xticks(x, names)
    label_axes(
        left,
        title="Unified code: extra instructions executed",
        xlabel="benchmark (dashed: the claim's 15%)",
        ylabel="overhead vs native code (%)",
    )
    label_axes(
        right,
        title="Binary size added to both native binaries",
        xlabel="benchmark",
        ylabel="size overhead (%)",
    )
    return fig


def _stack_roles(binary: Binary, stack, regs, site: int, names) -> np.ndarray:
    """Role of each stack unit, from the top of the stack down to the stack pointer:
    1 padding, 2 return address, 3 saved frame pointer, 4 + i local ``names[i]``."""
    base = int(regs[SP])
    roles = np.ones(STACK_UNITS - base, dtype=np.int64)
    for fp, func in walk_frames(binary, stack, regs, site):
        roles[fp - base : fp - base + 2] = 3
        roles[fp + 2 - base : fp + 4 - base] = 2
        for name, offset, size in binary.frames[func]:
            roles[fp + offset - base : fp + offset + size - base] = 4 + names.index(
                name
            )
    return roles[::-1]


def plot_stacks(depth: int, window: int = 68):
    """Figure: the innermost ``window`` stack units of the dive program with
    ``depth`` frames, in the four layouts (A's stack is X's after one migration),
    and the words that migration moved."""
    from matplotlib.colors import ListedColormap
    from matplotlib.patches import Patch

    from paperlab.plotting import COLORS, label_axes, subplots

    window = check_int("window", window, minimum=4)
    names = list(parse_program(DIVE_SOURCE)[0].types)
    columns, words = [], {}
    for mode, variant in (("native", "transform"), ("unified", "unified")):
        state = stack_at_depth(depth, mode)
        x, a = state.binaries["X"], state.binaries["A"]
        regs, stack, _, words[variant] = migrate(
            variant, x, a, state.regs, state.stack, state.pc, np.zeros(STACK_UNITS)
        )
        columns.append(_stack_roles(x, state.stack, state.regs, state.site, names))
        columns.append(_stack_roles(a, stack, regs, state.site, names))
    rows = min(window, max(c.shape[0] for c in columns))
    grid = np.zeros((rows, 4), dtype=np.int64)
    for j, roles in enumerate(columns):
        shown = roles[-rows:]
        grid[rows - shown.shape[0] :, j] = shown
    legend = ["padding", "return address", "saved fp"] + [f"local {n}" for n in names]
    colors = ["white", "#DDDDDD", COLORS[1], COLORS[7], COLORS[0]]
    colors += [COLORS[2], COLORS[3], COLORS[4], COLORS[5]][: len(names) - 1]
    fig, (left, right) = subplots(
        1, 2, width=10.0, height=4.2, gridspec_kw={"width_ratios": [1.4, 1]}
    )
    left.imshow(
        grid,
        aspect="auto",
        interpolation="nearest",
        cmap=ListedColormap(colors),
        vmin=0,
        vmax=len(colors) - 1,
        extent=(-0.5, 3.5, 0, 4 * rows),
    )
    for j in range(3):
        left.axvline(j + 0.5, color="white", lw=4)
    left.set_xticks(range(4), ["X native", "A native", "X unified", "A unified"])
    left.grid(False)
    left.legend(
        [Patch(color=c, ec="0.5") for c in colors[1:]],
        legend,
        loc="upper left",
        bbox_to_anchor=(1.0, 1.0),
        fontsize=7,
    )
    label_axes(
        left,
        title=f"Innermost stack of {depth} frame(s)",
        xlabel="ISA and layout",
        ylabel="bytes above the stack pointer",
        legend=False,
    )
    bars = right.bar(
        ["Unifico", "transformation"],
        [words["unified"], words["transform"]],
        color=[COLORS[0], COLORS[1]],
    )
    right.bar_label(bars, fontsize=8)
    label_axes(
        right,
        title="One X -> A migration",
        xlabel="migration variant",
        ylabel="words read + written",
    )
    return fig
