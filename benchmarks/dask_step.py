"""Data-parallel training with cyrnn.dask against one process: the time of a
training step of the medium LSTM (T=100, I=128, H=256, B=32 per worker) on
a 2-worker LocalCluster (one thread per worker process) and in a single
process with 2 threads (cyrnn.set_num_threads(2), BLAS at one thread) on
the same global batch of 64, and the bytes sent per step.

A step is forward, the mean squared error against a random target,
backward and Adam's update; on the cluster also the gradients' trip to the
client and the sum's trip back (cyrnn.dask.DataParallel). The two are
measured in alternating rounds in one run (the machine is shared: medians
of many steps, never one time).

    python benchmarks/dask_step.py                 # 5 rounds of 16 steps each way
    python benchmarks/dask_step.py --rounds 9 --steps 24 --json dask_step.json

Not a test: see docs/DASK.md for the figures and what they mean for N
machines.
"""
import argparse
import json
import pickle
import statistics
import time

import numpy as np
import psutil
from threadpoolctl import threadpool_limits

import cyrnn
import cyrnn.dask as cd
from cyrnn import losses, optim
from machine import cpu_name  # beside this script

T, B, I, H = 100, 32, 128, 256
WORKERS = 2


def single_process_steps(model, opt, x, y, steps, batch):
    """Per-step seconds of plain training on global batches of `batch` rows."""
    times, n = [], x.shape[0]
    for k in range(steps):
        rows = np.arange(k * batch, (k + 1) * batch) % n
        start = time.perf_counter()
        out, _, tape = model.forward(x[rows])
        _, dout = losses.mse(out, y[rows])
        opt.step(model.backward(tape, dout).params)
        times.append(time.perf_counter() - start)
    return times


def loopback_bytes():
    counters = psutil.net_io_counters(pernic=True)
    lo = counters.get("lo")
    return None if lo is None else lo.bytes_sent


def measure(trim_memory, rounds, steps, x, y, model, opt, local_model, local_opt):
    """Alternating rounds on one cluster: single-process steps (2 threads,
    B=64; and 1 thread, B=32), then two fits (one epoch, and steps/4
    epochs) whose difference in loopback bytes gives the bytes per step."""
    from distributed import Client

    single, one_thread, steps_dask, compute, setup, lo = [], [], [], [], [], []
    with cd.local_cluster(WORKERS, trim_memory=trim_memory) as cluster, \
            Client(cluster, direct_to_workers=True, set_as_default=False) as client:
        trainer = cd.DataParallel(model, opt, loss="mse", client=client)
        trainer.fit(x, y, epochs=1, batch_size=B)              # warm up
        for r in range(rounds):
            cyrnn.set_num_threads(2)
            assert cyrnn.get_num_threads() == 2
            single += single_process_steps(local_model, local_opt, x, y, steps, WORKERS * B)
            cyrnn.set_num_threads(1)
            one_thread += single_process_steps(local_model, local_opt, x, y, 4, B)
            before = loopback_bytes()
            trainer.fit(x, y, epochs=1, batch_size=B, seed=r)
            middle = loopback_bytes()
            trainer.step_seconds_.clear()
            trainer.compute_seconds_.clear()
            start = time.perf_counter()
            trainer.fit(x, y, epochs=steps // 4, batch_size=B, seed=r)
            total = time.perf_counter() - start
            after = loopback_bytes()
            # the first step of a fit applies no update yet: left out
            steps_dask += trainer.step_seconds_[1:]
            compute += trainer.compute_seconds_[1:]
            setup.append(total - sum(trainer.step_seconds_))
            if before is not None:
                lo.append(((after - middle) - (middle - before)) / (steps - 4))
            print(f"  round {r + 1}/{rounds}: single {statistics.median(single[-steps:]) * 1e3:.1f}"
                  f" ms, dask {statistics.median(trainer.step_seconds_[1:]) * 1e3:.1f} ms",
                  flush=True)
        payload = trainer.bytes_per_step_
    med = {name: statistics.median(values) for name, values in (
        ("single_2_threads", single), ("single_1_thread_B32", one_thread),
        ("dask_step", steps_dask), ("dask_worker_compute", compute), ("dask_fit_setup", setup))}
    return {"median_seconds": med,
            "dask_overhead": med["dask_step"] / med["single_2_threads"] - 1,
            "payload_bytes_per_step": payload,
            "loopback_bytes_per_step": statistics.median(lo) if lo else None,
            "steps_measured": {"single": len(single), "dask": len(steps_dask)}}


def report(result):
    med = result["median_seconds"]
    print("  medians:")
    print(f"  single process, 2 threads, B={WORKERS * B}: "
          f"{med['single_2_threads'] * 1e3:7.1f} ms/step")
    print(f"  single process, 1 thread,  B={B}: {med['single_1_thread_B32'] * 1e3:7.1f} ms/step")
    print(f"  {WORKERS}-worker LocalCluster, B={B} each:  {med['dask_step'] * 1e3:7.1f} ms/step "
          f"(slowest worker computing {med['dask_worker_compute'] * 1e3:.1f} ms)")
    print(f"  Dask overhead per step: {result['dask_overhead']:+.1%} against the 2-thread process;"
          f" {(med['dask_step'] - med['dask_worker_compute']) * 1e3:.1f} ms of gradient exchange"
          f" and synchronisation")
    lo = result["loopback_bytes_per_step"]
    print(f"  bytes per step: {result['payload_bytes_per_step'] / 1e6:.2f} MB of gradients "
          f"({WORKERS} in, {WORKERS} out); measured on loopback: "
          + (f"{lo / 1e6:.2f} MB" if lo is not None else "n/a"))
    print(f"  fit setup (replicas, shards): {med['dask_fit_setup'] * 1e3:.0f} ms per fit")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--steps", type=int, default=16, help="steps per round and side "
                        "(a multiple of 4, at least 8)")
    parser.add_argument("--malloc", choices=["cyrnn", "dask", "both"], default="both",
                        help="the workers' malloc settings: cyrnn.dask.local_cluster's "
                        "(MALLOC_ENVIRON), Dask's (MALLOC_TRIM_THRESHOLD_=65536), or both")
    parser.add_argument("--json", help="write the figures to this file")
    args = parser.parse_args()
    steps = max(8, args.steps // 4 * 4)

    rng = np.random.default_rng(0)
    rows = WORKERS * B * 4                         # four steps per epoch
    x = rng.standard_normal((rows, T, I)).astype(np.float32)
    y = rng.standard_normal((rows, T, H)).astype(np.float32)
    model = cyrnn.LSTM(I, H, batch_first=True, seed=0)
    opt = optim.Adam(model.parameters(), lr=1e-3)
    local_model, local_opt = pickle.loads(pickle.dumps((model, opt)))
    n_params = sum(p.size for p in model.parameters().values())
    out = {"cpu": cpu_name(), "kernel_level": _level(),
           "shape": {"T": T, "B_per_worker": B, "I": I, "H": H, "workers": WORKERS},
           "parameters": int(n_params), "gradient_bytes": int(n_params * 4), "runs": {}}
    print(f"medium LSTM (T={T}, I={I}, H={H}), global batch {WORKERS * B}, {n_params:,} "
          f"parameters ({n_params * 4 / 1e6:.2f} MB of float32 gradient)")
    print(f"CPU: {out['cpu']}, kernels: {out['kernel_level']}")
    with threadpool_limits(1, user_api="blas"):
        # OpenMP starts here, before any Dask nanny writes OMP_NUM_THREADS=1
        # into this process's environment.
        cyrnn.set_num_threads(2)
        single_process_steps(local_model, local_opt, x, y, 2, WORKERS * B)
        modes = {"cyrnn": [False], "dask": [True], "both": [False, True]}[args.malloc]
        for trim in modes:
            name = ("Dask's malloc settings (MALLOC_TRIM_THRESHOLD_=65536)" if trim else
                    "cyrnn.dask.local_cluster (MALLOC_ENVIRON)")
            print(f"\n{name}:")
            out["runs"]["dask_malloc" if trim else "cyrnn_malloc"] = result = measure(
                trim, args.rounds, steps, x, y, model, opt, local_model, local_opt)
            report(result)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(out, f, indent=2)


def _level():
    from cyrnn import _cpu
    return _cpu.level_name(_cpu.kernel_level())


if __name__ == "__main__":
    main()
