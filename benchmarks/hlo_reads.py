"""What reads each gradient leaf in a compiled update: a small reader of the
optimized HLO text, ``jax.jit(f).lower(...).compile().as_text()``, where each
fusion of the ENTRY computation is one kernel (one pass over what it reads).
"""

from __future__ import annotations

import collections
import math
import re
from collections.abc import Sequence
from typing import NamedTuple


class Instr(NamedTuple):
    name: str
    opcode: str
    operands: tuple[str, ...]
    calls: tuple[str, ...]
    dtype: str | None  # None for a tuple shape
    elements: int | None  # None for a tuple shape
    index: int  # N of parameter(N); -1 for other instructions


_HEADER = re.compile(r"^(ENTRY\s+)?%?([\w.\-]+)\s+\(.*->.*\{\s*$")
_INSTR = re.compile(r"^\s+(ROOT\s+)?%?([\w.\-]+)\s*=\s*(.*)$")
_OPCODE = re.compile(r"\s([a-z][a-z0-9\-]*)\(")
_CALLS = re.compile(r"(?:calls|to_apply|body|condition)=%?([\w.\-]+)")
_BRANCHES = re.compile(r"branch_computations=\{([^}]*)\}")
_SHAPE = re.compile(r"\s*([a-z][a-z0-9]*)\[([\d,]*)\]")
_FREE = {"parameter", "constant", "get-tuple-element", "tuple", "bitcast"}


def _matching_paren(text: str, start: int) -> int:
    depth = 0
    for i in range(start, len(text)):
        depth += {"(": 1, ")": -1}.get(text[i], 0)
        if depth == 0:
            return i
    return len(text)


def _instruction(line: str) -> Instr | None:
    match = _INSTR.match(line)
    op = _OPCODE.search(match.group(3)) if match else None
    if not op:
        return None
    rest = match.group(3)
    close = _matching_paren(rest, op.end() - 1)
    operands = tuple(re.findall(r"%([\w.\-]+)", rest[op.end() : close]))
    calls = _CALLS.findall(rest[close:])
    for group in _BRANCHES.findall(rest[close:]):
        calls += [c.strip().lstrip("%") for c in group.split(",") if c.strip()]
    shape = _SHAPE.match(rest)
    dtype = elements = None
    if shape:
        dims = [int(d) for d in shape.group(2).split(",") if d]
        dtype, elements = shape.group(1), math.prod(dims)
    index = int(rest[op.end() : close]) if op.group(1) == "parameter" else -1
    name, opcode = match.group(2), op.group(1)
    return Instr(name, opcode, operands, tuple(calls), dtype, elements, index)


def parse_hlo(text: str) -> tuple[dict[str, list[Instr]], str]:
    """Optimized HLO text -> ({computation: instructions}, entry name)."""
    comps: dict[str, list[Instr]] = {}
    entry, current = None, None
    for line in text.splitlines():
        if current is None:
            header = _HEADER.match(line)
            if header:
                current = header.group(2)
                comps[current] = []
                entry = current if header.group(1) else entry
        elif line.startswith("}"):
            current = None
        elif (ins := _instruction(line)) is not None:
            comps[current].append(ins)
    if entry is None:
        raise ValueError("no ENTRY computation found")
    return comps, entry


def _opcodes(comps, name: str, seen: set[str]) -> set[str]:
    """Opcodes of a computation and of everything it calls."""
    if name in seen or name not in comps:
        return set()
    seen.add(name)
    ops = {ins.opcode for ins in comps[name]}
    for ins in comps[name]:
        for callee in ins.calls:
            ops |= _opcodes(comps, callee, seen)
    return ops


def _reduces(comps, ins: Instr) -> bool:
    return ins.opcode == "fusion" and bool(
        {"reduce", "reduce-window"} & _opcodes(comps, ins.calls[0], set())
    )


def entry_counts(text: str) -> dict[str, int]:
    """How many kernels of each kind the ENTRY computation runs."""
    comps, entry = parse_hlo(text)
    instrs = comps[entry]
    return {
        "ops": sum(i.opcode not in _FREE for i in instrs),
        "fusions": sum(i.opcode == "fusion" for i in instrs),
        "reduction_fusions": sum(_reduces(comps, i) for i in instrs),
        "conditionals": sum(i.opcode == "conditional" for i in instrs),
    }


def leaf_reads(text: str, shapes: Sequence[tuple[int, ...]]) -> list[dict[str, int]]:
    """For each gradient leaf of `shapes` (the first parameters, in order: the
    first argument of ``jax.jit(update, keep_unused=True)``), followed through free
    reshapes, the counts of its readers in the ENTRY computation: ``reductions``
    (one pass each), ``stacked`` (copies into a larger array) and
    ``stack_reductions`` (reductions of those), ``elementwise`` (other fusions:
    the rescale), ``cond`` (read only if the ``lax.cond`` branch runs), ``other``.
    """
    comps, entry = parse_hlo(text)
    instrs = comps[entry]
    users = collections.defaultdict(list)
    for ins in instrs:
        for operand in ins.operands:
            users[operand].append(ins)
    params = {ins.index: ins for ins in instrs if ins.opcode == "parameter"}

    def classify(ins: Instr, size: int, counts: collections.Counter) -> None:
        if ins.opcode in ("bitcast", "reshape"):
            for user in users[ins.name]:
                classify(user, size, counts)
        elif ins.opcode == "conditional" or (
            ins.opcode == "tuple"
            and any(u.opcode == "conditional" for u in users[ins.name])
        ):
            counts["cond"] += 1
        elif _reduces(comps, ins):
            counts["reductions"] += 1
        elif ins.opcode in ("fusion", "concatenate") and (ins.elements or 0) > size:
            counts["stacked"] += 1
            counts["stack_reductions"] += sum(
                _reduces(comps, u) for u in users[ins.name]
            )
        elif ins.opcode == "fusion":
            counts["elementwise"] += 1
        else:
            counts["other"] += 1

    keys = ("reductions", "stacked", "stack_reductions", "elementwise", "cond", "other")
    out = []
    for i, shape in enumerate(shapes):
        counts: collections.Counter = collections.Counter()
        for user in users[params[i].name]:
            classify(user, math.prod(shape), counts)
        out.append({k: counts[k] for k in keys})
    return out


def float32_temporaries(text: str, min_elements: int) -> int:
    """ENTRY instructions writing a float32 array of at least `min_elements`: zero
    for bfloat16 gradients means no float32 copy of them was materialised."""
    comps, entry = parse_hlo(text)
    return sum(
        ins.dtype == "f32"
        and (ins.elements or 0) >= min_elements
        and ins.opcode not in _FREE
        for ins in comps[entry]
    )


def while_body_fusions(text: str) -> int:
    """Fusions inside the ENTRY computation's while loops' bodies."""
    comps, entry = parse_hlo(text)
    bodies = {n for ins in comps[entry] if ins.opcode == "while" for n in ins.calls}
    return sum(ins.opcode == "fusion" for name in bodies for ins in comps[name])
