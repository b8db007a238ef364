#!/usr/bin/env python
"""Stack traffic of every kernel at every level: a register tile that does
not fit in the register file shows up as loads and stores relative to the
stack or frame pointer inside the kernel.

Compiles each csrc/*.c as setup.py does (with CC, default gcc), disassembles
it, and prints for each kernel variant (name_<level>_<type>, GCC's clones
of it included) that has product loops (innermost loops a quarter or more
of whose instructions multiply: a heuristic) their instructions and how
many of them move a vector to or from the stack: none where the tiles fit
in registers. The heuristic also takes in loops of a cell's arithmetic (an
exponential is a chain of multiply-adds): the gated steps' loops over a
tile's rows, whose cells read the tile's accumulators from the stack one
row at a time, show dozens; read a count with `perf annotate` of the
kernel at hand before taking it for a spilled tile.

Usage: python tools/check_spills.py [--cc clang] [--filter cell_step]
"""
import argparse
import os
import re
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
CSRC = os.path.join(HERE, "..", "csrc")
FLAGS = ["-O3", "-std=gnu99", "-fno-math-errno", "-Wno-unused-function", "-c"]
# (GCC's clones of a function, as rnn_step_avx2_f.constprop.0, by the name)
VARIANT = re.compile(r"^[0-9a-f]+ <(\w+_(avx512|avx2|base)_[fd])(?:\.\w+\.\d+)*>:$")
STACK = re.compile(r"\((%rsp|%rbp)\)|\[(sp|x29)")
# a vector register: what a tile keeps (a pointer reloaded from the stack
# into a general register is one load, not a tile out of its registers)
VECTOR = re.compile(r"%[xyz]mm\d+|\bq\d+\b|\bv\d+\.")
JUMP = re.compile(r"^j\w+\s+([0-9a-f]+) <")
# a product loop multiplies values of x with vectors of weights: a quarter
# or more of its instructions multiply (a cell's code does much else)
MULTIPLY = re.compile(r"fmadd|fmla|mulp[sd]")


def disassemble(cc, source, out):
    subprocess.run([cc, *FLAGS, "-I", CSRC, "-I", os.path.join(CSRC, "generated"), source, "-o",
                    out], check=True)
    return subprocess.run(["objdump", "-d", "--no-show-raw-insn", out], check=True,
                          capture_output=True, text=True).stdout


def functions(listing):
    """{variant: [(address, instruction text)]} for each kernel variant."""
    found, name = {}, None
    for line in listing.splitlines():
        match = VARIANT.match(line)
        if match:
            name = match.group(1)
            found[name] = []
        elif not line.strip() or line.endswith(">:"):
            name = None
        elif name and ":" in line:
            address, text = line.split(":", 1)
            found[name].append((int(address, 16), text.strip()))
    return found


def inner_loops(code):
    """The innermost loops, as (start, end) addresses: ranges closed by a
    backward jump that contain no other such range."""
    loops = []
    for address, text in code:
        jump = JUMP.match(text)
        if jump and int(jump.group(1), 16) < address:
            loops.append((int(jump.group(1), 16), address))
    return [(a, b) for a, b in loops
            if not any(a <= c and d <= b and (c, d) != (a, b) for c, d in loops)]


def spills(code):
    """(instructions in the innermost product loops, of which move a vector
    to or from the stack)."""
    total = stack = 0
    for start, end in inner_loops(code):
        body = [text for address, text in code if start <= address <= end]
        if 4 * sum(bool(MULTIPLY.search(text)) for text in body) < len(body):
            continue
        total += len(body)
        stack += sum(bool(STACK.search(text) and VECTOR.search(text)) for text in body)
    return total, stack


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--cc", default=os.environ.get("CC", "gcc"))
    ap.add_argument("--filter", default="")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        for source in sorted(f for f in os.listdir(CSRC) if f.endswith(".c")):
            listing = disassemble(args.cc, os.path.join(CSRC, source),
                                  os.path.join(tmp, source + ".o"))
            for name, code in sorted(functions(listing).items()):
                total, stack = spills(code)
                if args.filter in name and total:
                    print(f"{name:45s} inner loops: {total:6d} instructions, "
                          f"{stack:5d} vectors on the stack")
    return 0


if __name__ == "__main__":
    sys.exit(main())
