#!/usr/bin/env python
"""Two builds of cyrnn timed against each other, in alternating rounds.

A kernel's speed moves with more than its own code: GCC allocates registers
for a whole function, so a change to one cell's tile has moved another
cell's row offsets onto the stack (4-16% slower), and the machines are
noisy. Before a change to csrc/ lands, time it against the commit it
changes, at every level, with this: each revision is built once (from `git
archive`, or the working tree for WORKTREE), then every round runs each
build's cases in a fresh process, the builds' order alternating by round;
the table gives each case's median over the rounds, in ms, and B / A.

Usage: python tools/ab_builds.py HEAD WORKTREE --level 1 --rounds 5
       [--threads 1] [--cases lstm-medium gru-medium] [--no-training]

--level N caps cyrnn, OpenBLAS and numpy as benchmarks/compare.py's
--cpu-level N does (benchmarks/cpu_caps.py): at level 1 OpenBLAS runs its
AVX2 (Haswell) kernels, at level 0 its SSE ones (Nehalem). OpenBLAS runs one
thread.
"""
import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, os.path.join(ROOT, "benchmarks"))
from cpu_caps import capped_environ  # noqa: E402

CASES = {  # name: (cell, T, B, I, H, dtype, options)
    "lstm-small": ("LSTM", 50, 16, 64, 128, "float32", {}),
    "lstm-medium": ("LSTM", 100, 32, 128, 256, "float32", {}),
    "lstm-large": ("LSTM", 20, 64, 512, 512, "float32", {}),
    "gru-medium": ("GRU", 100, 32, 128, 256, "float32", {}),
    "rnn-small": ("RNN", 50, 16, 64, 128, "float32", {}),
    "rnn-medium": ("RNN", 100, 32, 128, 256, "float32", {}),
    "rnn-relu-small": ("RNN", 50, 16, 64, 128, "float32", {"nonlinearity": "relu"}),
    "rnn-relu-medium": ("RNN", 100, 32, 128, 256, "float32", {"nonlinearity": "relu"}),
    "rnn-relu-large": ("RNN", 20, 64, 512, 512, "float32", {"nonlinearity": "relu"}),
    "rnn-relu-medium-f64": ("RNN", 100, 32, 128, 256, "float64", {"nonlinearity": "relu"}),
    "lstm-medium-f64": ("LSTM", 100, 32, 128, 256, "float64", {}),
    "peephole-medium": ("LSTM", 100, 32, 128, 256, "float32", {"peephole": True}),
    "gru-reset-before-medium": ("GRU", 100, 32, 128, 256, "float32", {"reset_after": False}),
}
# One round of one build, in its own process: "case pass ms" per line.
ROUND = """
import sys, time, numpy as np, cyrnn
cyrnn.set_num_threads({threads})
def median_ms(f, reps):
    f()
    times = []
    for _ in range(reps):
        t = time.perf_counter(); f(); times.append(time.perf_counter() - t)
    return sorted(times)[reps // 2] * 1e3
rng = np.random.default_rng(0)
for name, (cell, T, B, I, H, dtype, options) in {cases!r}.items():
    model = getattr(cyrnn, cell)(I, H, seed=0, dtype=dtype, **options)
    x = rng.standard_normal((T, B, I)).astype(dtype)
    print(name, "inference", median_ms(lambda: model(x), 7))
    if {training}:
        def step():
            y, _, tape = model.forward(x)
            model.backward(tape, np.ones_like(y))
        print(name, "training", median_ms(step, 5))
"""


def build(revision, into):
    """cyrnn at `revision` (or the working tree) built into `into`/lib."""
    source = os.path.join(into, "src")
    if revision == "WORKTREE":
        shutil.copytree(ROOT, source, ignore=shutil.ignore_patterns(
            ".git", "build", "*.so", "*.egg-info", ".asv", "__pycache__"))
    else:
        os.makedirs(source)
        archive = subprocess.run(["git", "-C", ROOT, "archive", revision], check=True,
                                 capture_output=True).stdout
        subprocess.run(["tar", "-x", "-C", source], input=archive, check=True)
    lib = os.path.join(into, "lib")
    subprocess.run([sys.executable, "setup.py", "-q", "build_ext", "--build-lib", lib,
                    "--build-temp", os.path.join(into, "tmp")], cwd=source, check=True,
                   stdout=subprocess.DEVNULL)
    # the pure-Python modules, beside the extensions build_ext wrote
    shutil.copytree(os.path.join(source, "src", "cyrnn"), os.path.join(lib, "cyrnn"),
                    ignore=shutil.ignore_patterns("*.c", "*.so", "*.pyx", "*.pxd"),
                    dirs_exist_ok=True)
    return lib


def one_round(lib, args, cases):
    env = dict(capped_environ(args.level), PYTHONPATH=lib, OPENBLAS_NUM_THREADS="1")
    code = ROUND.format(threads=args.threads, cases=cases, training=not args.no_training)
    out = subprocess.run([sys.executable, "-c", code], env=env, check=True,
                         capture_output=True, text=True, cwd=tempfile.gettempdir()).stdout
    return {(name, part): float(ms) for name, part, ms in map(str.split, out.splitlines())}


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("a")
    parser.add_argument("b")
    parser.add_argument("--level", type=int, default=2, choices=[0, 1, 2])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--cases", nargs="+", default=list(CASES), choices=list(CASES))
    parser.add_argument("--no-training", action="store_true")
    args = parser.parse_args()
    cases = {name: CASES[name] for name in args.cases}
    with tempfile.TemporaryDirectory() as tmp:
        libs = [build(rev, os.path.join(tmp, str(k))) for k, rev in enumerate((args.a, args.b))]
        times = [{}, {}]
        for r in range(args.rounds):
            for k in ((0, 1) if r % 2 == 0 else (1, 0)):
                for key, ms in one_round(libs[k], args, cases).items():
                    times[k].setdefault(key, []).append(ms)
    print(f"level {args.level}, {args.threads} thread(s), median of {args.rounds} rounds, ms")
    width = max(len(" ".join(key)) for key in times[0])
    print(f"{'case':{width}} {args.a[:12]:>12} {args.b[:12]:>12}    B/A")
    for key in times[0]:
        a, b = (statistics.median(t[key]) for t in times)
        print(f"{' '.join(key):{width}} {a:12.2f} {b:12.2f} {b / a:6.3f}")


if __name__ == "__main__":
    main()
