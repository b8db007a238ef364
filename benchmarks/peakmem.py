#!/usr/bin/env python
"""Peak resident memory of one LSTM training step (and of inference): cyrnn
against torch.nn.LSTM, one thread each.

Every (library, pass, size) is measured in its own fresh child process, --repeat
times, and the medians are reported. The child:

  1. imports only its library (torch's child gets cyrnn's weights from an .npz
     the parent writes from cyrnn's state_dict(), so no cyrnn import there),
     pins every pool to one thread (OMP/OPENBLAS/MKL_NUM_THREADS=1 in its
     environment, cyrnn.set_num_threads(1), torch.set_num_threads(1));
  2. builds x (T, B, I) and dy (T, B, H) in float32 and runs one warm-up pass
     on a throwaway model of the same sizes, which is then dropped: lazy library
     setup (BLAS buffers, kernels) is out of the way, but nothing the measured
     model caches (cyrnn keeps a step's scratch in a per-model workspace) is
     in the baseline, so each library pays for all the memory its step needs;
  3. builds the measured model, calls glibc's malloc_trim(0) so that freed heap
     memory is really returned, reads VmRSS (the baseline), resets VmHWM with
     `echo 5 > /proc/self/clear_refs` (where that fails, or with --fork, the
     steps run in a forked child and its own VmRSS/VmHWM are used: cruder, as
     the fork re-faults the library pages it touches, torch's above all), runs
     --steps passes and reads VmHWM;
  4. trims again and reads VmRSS: what the model keeps resident between steps.

Passes: "train" = forward + backward giving the gradients of x and every
parameter (cyrnn: model.forward then model.backward; torch: net(x) then
torch.autograd.grad(y, [x] + params, dy), as in compare.py), results dropped
after each step; "infer" = cyrnn's model(x), torch's net(x) under no_grad.

Columns: peak over baseline (the step's transient memory) per library and
their ratio; "floor", a lower bound for any implementation that stores the
activated gates (T*B*4H) and the cell states (T*B*H) for backward and returns
y (T*B*H), dx (T*B*I) and the parameter gradients (train), or just returns y
(infer); memory held after the step; absolute peaks (interpreter and imports
included). MiB throughout.

  python benchmarks/peakmem.py                      # medium, cyrnn and torch
  python benchmarks/peakmem.py --sizes small medium large --repeat 5
  python benchmarks/peakmem.py --shape 200 16 64 128 --libs cyrnn
"""
import argparse
import ctypes
import gc
import json
import os
import statistics
import subprocess
import sys
import tempfile
from importlib.util import find_spec

SIZES = {"tiny": (100, 1, 16, 32), "small": (50, 16, 64, 128),
         "medium": (100, 32, 128, 256), "large": (100, 64, 512, 512)}
MiB = 2.0 ** 20


def status():
    with open("/proc/self/status") as f:
        return {k: int(v.split()[0]) / 1024 for k, v in (line.split(":", 1) for line in f)
                if k in ("VmRSS", "VmHWM")}


def trim():
    gc.collect()
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):  # not glibc
        pass


def make_step(lib, pass_, T, B, I, H, weights):
    import numpy as np
    x = np.random.default_rng(1).standard_normal((T, B, I)).astype(np.float32)
    dy = np.random.default_rng(3).standard_normal((T, B, H)).astype(np.float32)
    if lib == "cyrnn":
        import cyrnn
        cyrnn.set_num_threads(1)
        m = cyrnn.LSTM(I, H, dtype=np.float32, seed=0)

        def train():
            _, _, tape = m.forward(x)
            m.backward(tape, dy)
        return train if pass_ == "train" else (lambda: m(x))
    import torch
    torch.set_num_threads(1)
    net = torch.nn.LSTM(I, H)
    net.load_state_dict({k: torch.from_numpy(v) for k, v in np.load(weights).items()})
    params, tx, tdy = list(net.parameters()), torch.from_numpy(x), torch.from_numpy(dy)

    def train():
        xg = tx.detach().requires_grad_(True)
        y, _ = net(xg)
        torch.autograd.grad(y, [xg] + params, tdy)

    def infer():
        with torch.no_grad():
            net(tx)
    return train if pass_ == "train" else infer


def child(spec):
    lib, pass_, (T, B, I, H) = spec["lib"], spec["pass"], spec["shape"]
    warm = make_step(lib, pass_, T, B, I, H, spec["weights"])
    warm()
    del warm
    run = make_step(lib, pass_, T, B, I, H, spec["weights"])

    def measure(reset):
        trim()
        base = status()["VmRSS"]
        if reset:
            with open("/proc/self/clear_refs", "w") as f:
                f.write("5")
        for _ in range(spec["steps"]):
            run()
        peak = status()["VmHWM"]
        trim()
        return dict(base=base, peak=peak, held=status()["VmRSS"] - base)

    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        fork = spec["fork"]
    except OSError:
        fork = True
    if not fork:
        result = dict(measure(True), method="clear_refs")
    else:  # no VmHWM reset: measure in a fork, whose VmHWM starts near its RSS
        (r, w), pid = os.pipe(), os.fork()
        if pid == 0:
            os.write(w, json.dumps(measure(False)).encode())
            os._exit(0)
        os.waitpid(pid, 0)
        result = dict(json.loads(os.read(r, 4096)), method="fork")
    print(json.dumps(result))


def floor(pass_, T, B, I, H):
    y = T * B * H
    if pass_ == "infer":
        return 4 * y / MiB
    return 4 * (T * B * 5 * H + y + T * B * I + 4 * H * (I + H + 2)) / MiB


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--sizes", nargs="+", default=["medium"], choices=SIZES)
    p.add_argument("--shape", nargs=4, type=int, metavar=("T", "B", "I", "H"),
                   help="a custom size instead of --sizes")
    p.add_argument("--libs", nargs="+", default=["cyrnn", "torch"], choices=["cyrnn", "torch"])
    p.add_argument("--passes", nargs="+", default=["train", "infer"], choices=["train", "infer"])
    p.add_argument("--repeat", type=int, default=5, help="child processes per measurement")
    p.add_argument("--steps", type=int, default=3, help="passes per child after the baseline")
    p.add_argument("--fork", action="store_true", help="force the fork fallback")
    p.add_argument("--child", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.child:
        return child(json.loads(args.child))

    import cyrnn
    import numpy as np
    libs = [lib for lib in args.libs if lib == "cyrnn" or find_spec("torch")]
    if libs != args.libs:
        print("torch is not installed: cyrnn only\n")
    cases = {"custom": tuple(args.shape)} if args.shape else {s: SIZES[s] for s in args.sizes}
    env = dict(os.environ, OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1", MKL_NUM_THREADS="1")
    tmp, methods = tempfile.TemporaryDirectory(), set()
    print(f"cyrnn {cyrnn.__version__}, LSTM float32, 1 thread, median of {args.repeat} "
          f"processes, {args.steps} passes each; MiB\n")
    print("| case (T,B,I,H) | pass | " + " | ".join(libs) + (" | cyrnn/torch" if len(libs) == 2
          else "") + " | floor | held " + " / ".join(libs) + " | abs peak " + " / ".join(libs) + " |")
    print("|---" * (5 + len(libs) + (len(libs) == 2)) + "|")
    for name, (T, B, I, H) in cases.items():
        weights = os.path.join(tmp.name, f"{name}.npz")
        np.savez(weights, **cyrnn.LSTM(I, H, dtype=np.float32, seed=0).state_dict())
        for pass_ in args.passes:
            runs = {lib: [] for lib in libs}
            for i in range(args.repeat):
                for lib in libs[i % len(libs):] + libs[:i % len(libs)]:  # rotate the order
                    spec = dict(lib=lib, shape=(T, B, I, H), weights=weights, steps=args.steps,
                                fork=args.fork, **{"pass": pass_})
                    out = subprocess.run([sys.executable, __file__, "--child", json.dumps(spec)],
                                         env=env, capture_output=True, text=True)
                    if out.returncode:
                        sys.exit(f"{lib} child failed:\n{out.stderr}")
                    runs[lib].append(json.loads(out.stdout.strip().splitlines()[-1]))
            med = {lib: {k: statistics.median(r[k] for r in rs) for k in ("peak", "held")}
                   for lib, rs in runs.items()}
            over = {lib: statistics.median(r["peak"] - r["base"] for r in rs)
                    for lib, rs in runs.items()}
            methods.update(r["method"] for rs in runs.values() for r in rs)
            cells = [f"{over[lib]:.1f}" for lib in libs]
            if len(libs) == 2:
                cells.append(f"{over['cyrnn'] / over['torch']:.2f}" if over["torch"] > 0 else "n/a")
            cells += [f"{floor(pass_, T, B, I, H):.1f}",
                      " / ".join(f"{med[lib]['held']:.1f}" for lib in libs),
                      " / ".join(f"{med[lib]['peak']:.0f}" for lib in libs)]
            print(f"| {name} ({T},{B},{I},{H}) | {pass_} | " + " | ".join(cells) + " |")
    tmp.cleanup()
    print(f"\nVmHWM reset by: {', '.join(sorted(methods))}")


if __name__ == "__main__":
    main()
