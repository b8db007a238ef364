#!/usr/bin/env python
"""Side-by-side speed of cyrnn against its peers, in one process.

Libraries (each optional but cyrnn):

  cyrnn        model(x) for inference; model.forward + model.backward for a
               training step
  torch        torch.nn.LSTM/GRU/RNN (CPU; pin torch==2.13.0), weights loaded
               from the cyrnn model's state_dict(); training step =
               forward + autograd.grad for x and every parameter
  onnxrt       onnxruntime on a one-node ONNX LSTM/GRU/RNN built with
               onnx.helper from the same weights (inference only)
  numpy        a plain per-step numpy reference (inference and training step),
               written out in this file

Every library is pinned to the same thread count: threadpoolctl for every BLAS
and OpenMP pool in the process, torch.set_num_threads, and onnxruntime's
intra_op_num_threads = inter_op_num_threads = N (with thread spinning off, so
that idle onnxruntime workers do not steal the CPU from the next library).

Each case is checked once per thread count: every library's outputs (and
gradients, for those with a training step) against torch's, or against
cyrnn's when torch is missing. A discrepancy above --tolerance (relative to
the largest magnitude of the reference array, or absolute below 1) is
reported, never silently ignored.

Timing: warm-up calls, a calibration giving each library a number of calls
per sample so that a sample lasts about --sample-time seconds, then --repeat
rounds in which the libraries run one after another, in orders that follow
a Williams design: over a cycle of rounds each library runs right after
every other equally often, so that no ratio carries the after-effect of one
neighbour (a cache flushed by the GEMM, a pool still spinning). Medians are
reported. With more than one thread, cyrnn also
runs on one thread in the same rounds, its samples interleaved with the
n-thread ones in slices of a few milliseconds, and its speed-up is reported
from those paired samples. The machine's GEMM throughput (n=2048
through scipy.linalg.blas.sgemm, dgemm for float64 cases, median GFLOP/s) is
measured in the same run, at the same thread count, as one more participant
of every round of every pass, so that it sees the same load as the libraries;
cyrnn's achieved GFLOP/s is reported as a fraction of it.

FLOPs counted: inference 2 * steps * (I + H_out) * G * H per layer and
direction, where steps = T * B, or sum(lengths) for a ragged batch (the work
actually needed); a training step is counted as 3x inference.

Instruction sets: --cpu-level N caps cyrnn's kernels and the peers alike,
in the same run, at 2 (AVX-512), 1 (AVX2+FMA) or 0 (baseline x86-64; numpy,
MKL, oneDNN and OpenBLAS go no lower than SSE4), through variables read when
the libraries load: CYRNN_CPU_LEVEL, ATEN_CPU_CAPABILITY (torch's own
kernels), ONEDNN_MAX_CPU_ISA (torch's LSTM), MKL_ENABLE_INSTRUCTIONS (torch's
GEMMs: GRU, RNN; honoured on Intel's CPUs only, so elsewhere level 0 sets
MKL_CBWR=COMPATIBLE, MKL's SSE2 path), OPENBLAS_CORETYPE (numpy's and
scipy's BLAS, which cyrnn and the GEMM reference use; OPENBLAS_L2_SIZE
unset), NPY_DISABLE_CPU_FEATURES (numpy's own SIMD). Level 2 sets
CYRNN_CPU_LEVEL=2 and unsets the others.
The script re-executes itself with them when the environment differs. The
header names the level each library then reports. onnxruntime has no such
cap: below the CPU's own level it is left out. The speed targets are those of
the level (without --cpu-level: the level-2 ones, nothing capped).

Examples:
  python benchmarks/compare.py --threads 1 2
  python benchmarks/compare.py --threads 1 --cases lstm --repeat 21
  python benchmarks/compare.py --quick --libs cyrnn torch
  python benchmarks/compare.py --cpu-level 1 --threads 1 2
  python benchmarks/compare.py --step --cpu-level 0
  python benchmarks/compare.py --list
"""
import os
import platform
import sys

# --------------------------------------------------------------------------
# --cpu-level: the caps are read when numpy, scipy, torch and cyrnn load, so
# they are set here, before those imports, by re-executing the script
# --------------------------------------------------------------------------
from cpu_caps import (  # beside this script
    CPU_LEVELS, LEVEL_CAPS, LEVEL_NAMES, capped_environ, cpu_level_env,
    cpu_level_env_matches)


def machine_level():
    """This CPU's highest level, by cyrnn's own test (AVX-512 F, DQ, VL and
    BW; AVX2 and FMA); None where /proc/cpuinfo does not say (or not x86)."""
    if platform.machine().lower() not in ("x86_64", "amd64"):
        return None
    try:
        with open("/proc/cpuinfo") as f:
            flags = next((set(line.split(":", 1)[1].split()) for line in f
                          if line.startswith("flags")), None)
    except OSError:
        return None
    if flags is None:
        return None
    if {"avx512f", "avx512dq", "avx512vl", "avx512bw"} <= flags:
        return 2
    return 1 if {"avx2", "fma"} <= flags else 0


def _requested_cpu_level(argv):
    """--cpu-level N (or =N, or an unambiguous prefix as argparse takes it)
    from argv; None when absent or not one of CPU_LEVELS (argparse then says so)."""
    for i, token in enumerate(argv):
        name, eq, value = token.partition("=")
        if len(name) < 4 or not "--cpu-level".startswith(name):
            continue
        if not eq:
            value = argv[i + 1] if i + 1 < len(argv) else ""
        return int(value) if value in {str(n) for n in CPU_LEVELS} else None
    return None


def _reexec_at_cpu_level():
    level = _requested_cpu_level(sys.argv[1:])
    if level is None or cpu_level_env_matches(level):
        return  # nothing asked, or already set
    best = machine_level()
    if best is None or level > best:
        return  # not x86, or more than this CPU has: main() says so
    if os.environ.get("_CYRNN_COMPARE_REEXEC") == str(level):
        return  # set once already and still differing: main() reports it
    env = capped_environ(level)
    env["_CYRNN_COMPARE_REEXEC"] = str(level)
    sys.stdout.flush()
    # the interpreter's own options too (-u, -X ...); argv[0] as resolved
    args = sys.orig_argv[1:] if getattr(sys, "orig_argv", None) else sys.argv
    os.execve(sys.executable, [sys.executable] + args, env)


if __name__ == "__main__":
    _reexec_at_cpu_level()

import argparse  # after the re-execution above
import contextlib
import ctypes
import gc
import math
import re
import statistics
import tempfile
import time
from dataclasses import dataclass

import numpy as np
import scipy
import scipy.linalg.blas

import cyrnn
from cyrnn import _cells
from cyrnn.layers import make_layer
import speed_targets  # beside this script
from machine import cpu_name, source_revision  # beside this script

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests"))
from reference import GATES, Reference  # noqa: E402  the tests' numpy reference

try:
    import threadpoolctl
except ImportError:  # pragma: no cover
    threadpoolctl = None

try:
    import torch
except ImportError:  # pragma: no cover
    torch = None

try:
    import onnx
    import onnx.helper
    import onnx.numpy_helper
    import onnxruntime
except ImportError:  # pragma: no cover
    onnx = onnxruntime = None

LIBS = ("cyrnn", "torch", "onnxrt", "numpy")
SIZES = {
    "tiny": (100, 1, 16, 32),
    "small": (50, 16, 64, 128),
    "medium": (100, 32, 128, 256),
    "large": (100, 64, 512, 512),
}


# --------------------------------------------------------------------------
# cases
# --------------------------------------------------------------------------
@dataclass
class Case:
    name: str
    cell: str
    size: str
    dtype: str = "float32"
    ragged: bool = False
    note: str = ""
    # None: runs by default; N: by default only with --cpu-level N (whose
    # targets need it), else only when a --cases pattern matches its whole name
    default_level: int = None

    @property
    def shape(self):
        return SIZES[self.size]


CASES = [
    Case("lstm-tiny", "LSTM", "tiny"),
    Case("lstm-small", "LSTM", "small"),
    Case("lstm-medium", "LSTM", "medium"),
    Case("lstm-large", "LSTM", "large"),
    Case("gru-medium", "GRU", "medium"),
    Case("rnn_tanh-medium", "RNN_TANH", "medium"),
    Case("rnn_relu-medium", "RNN_RELU", "medium"),
    Case("lstm-medium-f64", "LSTM", "medium", dtype="float64"),
    Case("lstm-medium-ragged", "LSTM", "medium", ragged=True,
         note="same x as lstm-medium, lengths uniform in [T/4, T]"),
    # the cell variants beside their base cells (torch has neither)
    Case("lstm_peephole-medium", "LSTM_PEEPHOLE", "medium"),
    Case("gru_reset_before-medium", "GRU_RESET_BEFORE", "medium"),
    # for the level-0 targets: GRU and RNN tanh at every size the LSTM's have
    Case("gru-small", "GRU", "small", default_level=0),
    Case("gru-large", "GRU", "large", default_level=0),
    Case("rnn_tanh-small", "RNN_TANH", "small", default_level=0),
    Case("rnn_tanh-large", "RNN_TANH", "large", default_level=0),
]


@dataclass
class StepCase(Case):
    """A case of --step: one time step per call, as a stream feeds a
    sensor's readings (issue 20). Its size's T, I and H with B = 1; the T
    steps check the outputs."""

    @property
    def shape(self):
        T, _, I, H = SIZES[self.size]
        return T, 1, I, H


STEP_CASES = [
    StepCase("lstm-tiny-step", "LSTM", "tiny"),
    StepCase("lstm-small-step", "LSTM", "small"),
]


def select_cases(patterns, cpu_level):
    """The cases to run: every default one (and those for this --cpu-level's
    targets) or, with patterns, those whose name matches one; a case kept for
    another level's targets only when a pattern matches its whole name."""
    chosen = []
    for case in CASES:
        by_default = case.default_level is None or case.default_level == cpu_level
        if patterns is None:
            keep = by_default
        elif by_default:
            keep = any(re.search(p, case.name) for p in patterns)
        else:
            keep = any(re.fullmatch(p, case.name) for p in patterns)
        if keep:
            chosen.append(case)
    return chosen


def make_cyrnn(case, seed=0):
    T, B, I, H = case.shape
    return make_layer(case.cell, I, H, dtype=np.dtype(case.dtype), seed=seed)


def case_data(case):
    T, B, I, H = case.shape
    rng = np.random.default_rng(1)  # the same x for every case of a size
    x = rng.standard_normal((T, B, I)).astype(case.dtype)
    dy = np.random.default_rng(3).standard_normal((T, B, H)).astype(case.dtype)
    lengths = None
    if case.ragged:
        lengths = np.random.default_rng(2).integers(max(1, T // 4), T + 1, size=B)
        mask = np.arange(T)[:, None] < lengths[None, :]
        dy = dy * mask[:, :, None]  # y is 0 past each length; so is a sensible dy
    return x, dy, lengths


def case_flops(case, lengths):
    T, B, I, H = case.shape
    steps = T * B if lengths is None else int(np.sum(lengths))
    inference = 2.0 * steps * (I + H) * GATES[case.cell] * H
    return inference, 3.0 * inference


# --------------------------------------------------------------------------
# threads
# --------------------------------------------------------------------------
_limiter = None


def set_threads(n):
    """Every library on n threads. cyrnn's own configuration for n threads is
    its time loops on n threads with BLAS on one (it splits its big products
    itself), so its samples run inside a one-thread BLAS limit."""
    global _limiter, SETTLE_SECONDS
    if threadpoolctl is not None:
        if _limiter is not None:
            _limiter.restore_original_limits()
        _limiter = threadpoolctl.threadpool_limits(limits=n)
        if n > 1:
            SAMPLE_SETTINGS["cyrnn"] = lambda: threadpoolctl.threadpool_limits(1, user_api="blas")
        else:
            SAMPLE_SETTINGS.pop("cyrnn", None)
    SAMPLE_SETTINGS[ONE_THREAD] = _one_thread
    SETTLE_SECONDS = 0.15 if n > 1 else 0.0
    cyrnn.set_num_threads(n)
    if torch is not None:
        torch.set_num_threads(n)


def thread_report():
    if threadpoolctl is None:
        return "threadpoolctl missing: BLAS threads NOT pinned"
    pools = [f"{p['internal_api']}({os.path.basename(p['filepath'])})={p['num_threads']}"
             for p in threadpoolctl.threadpool_info()]
    out = ", ".join(pools)
    if torch is not None:
        out += f", torch={torch.get_num_threads()}"
    return out + f", cyrnn time loops={cyrnn.get_num_threads()}"


# --------------------------------------------------------------------------
# torch
# --------------------------------------------------------------------------
def torch_module(case, step):
    """(torch's module computing the case's cell in its dtype, that dtype):
    the layer (nn.LSTM...), or with `step` its one-step cell (nn.LSTMCell...)."""
    T, B, I, H = case.shape
    tdtype = torch.float32 if case.dtype == "float32" else torch.float64
    kind = case.cell if case.cell in ("LSTM", "GRU") else "RNN"
    options = {} if kind != "RNN" else {
        "nonlinearity": "tanh" if case.cell == "RNN_TANH" else "relu"}
    return getattr(torch.nn, kind + ("Cell" if step else ""))(I, H, **options).to(tdtype), tdtype


class TorchRunner:
    CELLS = ("LSTM", "GRU", "RNN_TANH", "RNN_RELU")  # the cells torch.nn has

    def __init__(self, case, model, x, dy, lengths):
        T = case.shape[0]
        net, _ = torch_module(case, step=False)
        net.load_state_dict({k: torch.from_numpy(np.ascontiguousarray(v))
                             for k, v in model.state_dict().items()})
        self.net, self.T, self.is_lstm = net, T, case.cell == "LSTM"
        self.x = torch.from_numpy(x.copy())
        self.dy = torch.from_numpy(dy.copy())
        self.lengths = None if lengths is None else torch.from_numpy(np.asarray(lengths, np.int64))
        self.params = list(net.parameters())
        self.names = [name for name, _ in net.named_parameters()]

    def _run(self, x):
        if self.lengths is None:
            y, hn = self.net(x)
        else:
            packed = torch.nn.utils.rnn.pack_padded_sequence(x, self.lengths, enforce_sorted=False)
            y, hn = self.net(packed)
            y, _ = torch.nn.utils.rnn.pad_packed_sequence(y, total_length=self.T)
        return y, hn

    def inference(self):
        with torch.inference_mode():
            return self._run(self.x)

    def training_step(self):
        x = self.x.detach().requires_grad_(True)
        y, _ = self._run(x)
        return torch.autograd.grad(y, [x] + self.params, self.dy)

    def outputs(self):
        y, hn = self.inference()
        hn = hn[0] if self.is_lstm else hn
        grads = self.training_step()
        return dict(y=y.numpy(), hn=hn.numpy(), dx=grads[0].numpy(),
                    **{"d" + n: g.numpy() for n, g in zip(self.names, grads[1:])})


# --------------------------------------------------------------------------
# onnxruntime
# --------------------------------------------------------------------------
def onnx_model(case, state_dict, ragged, step=False):
    """One ONNX node of the case's cell, its weights converted as the
    registry says (_cells.py: gate orders, inputs, attributes). step: one
    time step (T = 1) from initial states that are inputs of the graph
    (initial_h, and initial_c for an LSTM), its final states its outputs:
    a sequence fed step by step."""
    T, B, I, H = case.shape
    T = 1 if step else T
    cell = _cells.BY_KEY[case.cell]
    G, op, order = cell.gates, cell.onnx_op, cell.onnx_gate_order
    elem = onnx.TensorProto.FLOAT if case.dtype == "float32" else onnx.TensorProto.DOUBLE

    def reorder(w):
        blocks = np.split(np.asarray(w), G, axis=0)
        return np.concatenate([blocks[k] for k in order], axis=0)

    W = reorder(state_dict["weight_ih_l0"])[None]
    R = reorder(state_dict["weight_hh_l0"])[None]
    Bias = np.concatenate([reorder(state_dict["bias_ih_l0"]),
                           reorder(state_dict["bias_hh_l0"])])[None]
    arrays = [(W, "W"), (R, "R"), (Bias, "B")]
    if cell.peephole:
        arrays.append((np.asarray(state_dict["weight_peephole_l0"])[
            list(_cells.ONNX_PEEPHOLE_ORDER)].reshape(1, -1), "P"))
    inits = [onnx.numpy_helper.from_array(np.ascontiguousarray(a, case.dtype), name)
             for a, name in arrays]
    attrs = dict(hidden_size=H, direction="forward", **{
        name: list(value) if isinstance(value, tuple) else value
        for name, value in cell.onnx_attributes})
    outputs = ["Y", "Y_h"] + (["Y_c"] if cell.has_cell_state else [])
    states = ((["initial_h"] + (["initial_c"] if cell.has_cell_state else []))
              if step else [])
    # the operator's inputs by position, "" for one left out
    inputs = ["X", "W", "R", "B", "sequence_lens" if ragged else "", *states]
    if cell.peephole:
        inputs += [""] * (7 - len(inputs)) + ["P"]
    node = onnx.helper.make_node(op, inputs, outputs, **attrs)
    graph_inputs = [onnx.helper.make_tensor_value_info("X", elem, [T, B, I])]
    if ragged:
        graph_inputs.append(onnx.helper.make_tensor_value_info(
            "sequence_lens", onnx.TensorProto.INT32, [B]))
    graph_inputs += [onnx.helper.make_tensor_value_info(name, elem, [1, B, H])
                     for name in states]
    graph_outputs = [onnx.helper.make_tensor_value_info("Y", elem, [T, 1, B, H]),
                     onnx.helper.make_tensor_value_info("Y_h", elem, [1, B, H])]
    if cell.has_cell_state:
        graph_outputs.append(onnx.helper.make_tensor_value_info("Y_c", elem, [1, B, H]))
    graph = onnx.helper.make_graph([node], f"cyrnn_compare_{case.cell}", graph_inputs,
                                   graph_outputs, initializer=inits)
    model = onnx.helper.make_model(graph, opset_imports=[onnx.helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model


def ort_session(proto, threads):
    """An onnxruntime session of the model on `threads` threads, without
    spinning."""
    opts = onnxruntime.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = threads
    opts.execution_mode = onnxruntime.ExecutionMode.ORT_SEQUENTIAL
    opts.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_ENABLE_ALL
    opts.log_severity_level = 4  # unsupported kernels are reported by this script
    opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
    opts.add_session_config_entry("session.inter_op.allow_spinning", "0")
    return onnxruntime.InferenceSession(proto.SerializeToString(), opts,
                                        providers=["CPUExecutionProvider"])


class OrtRunner:
    def __init__(self, case, model, x, lengths, threads):
        self.session = ort_session(onnx_model(case, model.state_dict(), lengths is not None),
                                   threads)
        self.feed = {"X": np.ascontiguousarray(x)}
        if lengths is not None:
            self.feed["sequence_lens"] = np.asarray(lengths, np.int32)
        self.out_names = ["Y", "Y_h"]
        self.inference()  # some kernels (LSTM in float64) fail only when run


    def inference(self):
        return self.session.run(self.out_names, self.feed)

    def outputs(self):
        y, hn = self.inference()
        return dict(y=y[:, 0], hn=hn)


# --------------------------------------------------------------------------
# plain numpy: the tests' reference of every cell, timed with BLAS products
# --------------------------------------------------------------------------
class NumpyRunner:
    """tests/reference.py's Reference as a peer: one projection of the
    input for all steps, then per step a recurrent GEMM and the gate
    arithmetic on the sequences still running."""

    def __init__(self, case, state_dict, lengths):
        params = {k: np.ascontiguousarray(v) for k, v in state_dict.items()}
        self.reference = Reference(case.cell, params, lengths=lengths)

    def inference(self, x):
        y, hn, _, _ = self.reference.forward(x)
        return y, hn[None]

    def training_step(self, x, dy):
        _, _, _, tape = self.reference.forward(x, keep=True)
        dx, dh0, _, grads = self.reference.backward(tape, dy)
        return dx, dh0[None], grads


# --------------------------------------------------------------------------
# one step at a time (--step)
# --------------------------------------------------------------------------
class TorchStepRunner:
    """torch.nn.LSTMCell (GRUCell, RNNCell) called once per step, the state
    carried from call to call; timed under torch.inference_mode(), entered
    outside the timed calls (SAMPLE_SETTINGS)."""
    CELLS = TorchRunner.CELLS

    def __init__(self, case, model, x):
        T, B, I, H = case.shape
        net, tdtype = torch_module(case, step=True)
        # the cell's parameters are the layer's, without the _l0 suffix
        net.load_state_dict({k[:-len("_l0")]: torch.from_numpy(np.ascontiguousarray(v))
                             for k, v in model.state_dict().items()})
        net.requires_grad_(False)
        self.net, self.is_lstm, self.tdtype = net, case.cell == "LSTM", tdtype
        self.x = torch.from_numpy(x[0].copy())
        self.state = self.initial_state(B, H)

    def initial_state(self, B, H):
        zeros = torch.zeros(B, H, dtype=self.tdtype)
        return (zeros, zeros.clone()) if self.is_lstm else zeros

    def step(self):
        self.state = self.net(self.x, self.state)

    def outputs(self, x):
        """The output of every step of x (T, 1, I) from zero states."""
        state, ys = self.initial_state(x.shape[1], self.net.hidden_size), []
        with torch.inference_mode():
            for xt in torch.from_numpy(x.copy()):
                state = self.net(xt, state)
                ys.append((state[0] if self.is_lstm else state).numpy().copy())
        return np.stack(ys)


class OrtStepRunner:
    """onnxruntime on a one-step graph (onnx_model(step=True)), run once per
    step with the previous run's final states as its initial states."""

    def __init__(self, case, model, x, threads):
        T, B, I, H = case.shape
        cell = _cells.BY_KEY[case.cell]
        self.session = ort_session(onnx_model(case, model.state_dict(), False, step=True),
                                   threads)
        self.states = ["initial_h"] + (["initial_c"] if cell.has_cell_state else [])
        self.out_names = ["Y_h"] + (["Y_c"] if cell.has_cell_state else [])
        self.zeros = np.zeros((1, B, H), case.dtype)
        self.feed = dict({name: self.zeros for name in self.states},
                         X=np.ascontiguousarray(x[:1]))
        self.step()  # some kernels (LSTM in float64) fail only when run

    def step(self):
        self.feed.update(zip(self.states, self.session.run(self.out_names, self.feed)))

    def outputs(self, x):
        feed, ys = {name: self.zeros for name in self.states}, []
        for t in range(x.shape[0]):
            feed["X"] = np.ascontiguousarray(x[t:t + 1])
            feed.update(zip(self.states, self.session.run(self.out_names, feed)))
            ys.append(feed["initial_h"][0])
        return np.stack(ys)


def make_gemv(case, seed=0):
    """The arithmetic of one step: a gemv of the (G*H, I+H) weights (the
    concatenated [W_ih W_hh]) by a vector, as scipy's BLAS gemv and as
    numpy's matmul into a kept output. name -> callable."""
    T, B, I, H = case.shape
    rows = GATES[case.cell] * H
    rng = np.random.default_rng(seed)
    w = rng.standard_normal((rows, I + H)).astype(case.dtype)
    w_f = np.asfortranarray(w)  # BLAS's own layout: no copy in the call
    v = rng.standard_normal(I + H).astype(case.dtype)
    out = np.empty(rows, case.dtype)
    gemv = scipy.linalg.blas.sgemv if case.dtype == "float32" else scipy.linalg.blas.dgemv
    return {"gemv": lambda: gemv(1.0, w_f, v), "matmul": lambda: np.matmul(w, v, out=out)}


# --------------------------------------------------------------------------
# timing
# --------------------------------------------------------------------------
def _time_calls(fn, number, setting=None):
    """Seconds per call of fn over `number` calls, inside `setting` (a
    context manager entered and left outside the timed region)."""
    gc_was = gc.isenabled()
    gc.disable()
    try:
        with setting() if setting else contextlib.nullcontext():
            t0 = time.perf_counter()
            for _ in range(number):
                fn()
            return (time.perf_counter() - t0) / number
    finally:
        if gc_was:
            gc.enable()


ONE_THREAD = "cyrnn@1"  # cyrnn on one thread, in the rounds of a pass with more


@contextlib.contextmanager
def _one_thread():
    """cyrnn's one-thread configuration inside a pass with more threads."""
    previous = cyrnn.get_num_threads()
    cyrnn.set_num_threads(1)
    try:
        with (threadpoolctl.threadpool_limits(1) if threadpoolctl is not None
              else contextlib.nullcontext()):
            yield
    finally:
        cyrnn.set_num_threads(previous)


# Per-library settings around each sample, and a pause before it so that the
# previous library's idle worker threads (OpenBLAS spins ~0.1 s after a call)
# have gone to sleep; both matter only with several threads.
SAMPLE_SETTINGS = {}
SETTLE_SECONDS = 0.0


def _settle(seconds):
    """Waits busily: after a sleep the main thread's CPU had idled and
    the sample started cold. Measured on the tiny LSTM at 2 threads, two
    runs each: cyrnn's medians 8-35% higher after a sleep, and its 2-thread
    against 1-thread ratio 0.91 and 0.96 although both run the same
    one-thread code; 0.99-1.01 after a busy wait."""
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        pass


def balanced_orders(n):
    """Orders of range(n), one per round, in which each element comes right
    after every other equally often over the cycle (a Williams design: n
    orders for even n, n and their reverses for odd n)."""
    first, low, high = [0], 1, n - 1
    while len(first) < n:
        first.append(low)
        low += 1
        if len(first) < n:
            first.append(high)
            high -= 1
    orders = [[(x + shift) % n for x in first] for shift in range(n)]
    return orders if n % 2 == 0 else orders + [order[::-1] for order in orders]


# Slices per sample of a pair run interleaved: see alternate().
PAIR_SLICES = 8


def _interleaved(fns, names, numbers):
    """Seconds per call of each of the two `names`, timed in up to
    PAIR_SLICES slices of their calls that alternate a, b, b, a, ... so
    that a disturbance shorter than the sample weighs on both alike."""
    slices = max(1, min(PAIR_SLICES, *(numbers[n] for n in names)))
    totals = dict.fromkeys(names, 0.0)
    for i in range(slices):
        for name in (names if i % 2 == 0 else names[::-1]):
            calls = numbers[name] * (i + 1) // slices - numbers[name] * i // slices
            totals[name] += calls * _time_calls(fns[name], calls, SAMPLE_SETTINGS.get(name))
    return {name: totals[name] / numbers[name] for name in names}


def alternate(fns, repeat, sample_time, warmup, fixed_numbers=None, pair=None):
    """fns: name -> callable. Returns name -> list of seconds per call.
    fixed_numbers: name -> calls per sample, for those not to calibrate.
    pair: two names whose ratio matters most (cyrnn against itself on one
    thread, the same code at tiny sizes): they take one place in the order
    and their samples interleave in slices (_interleaved). Run as separate
    places, 50 ms apart, their per-round ratios spread over 0.76-1.52 in a
    disturbed stretch of a run where the medians differed by 1%."""
    numbers = dict(fixed_numbers or {})
    for name, fn in fns.items():
        for _ in range(warmup):
            fn()
        if name not in numbers:
            once = _time_calls(fn, 1)
            numbers[name] = max(1, min(10000, int(sample_time / max(once, 1e-7))))
    units = [name for name in fns if not pair or name != pair[1]]
    orders = balanced_orders(len(units))
    samples = {name: [] for name in fns}
    for r in range(repeat):
        for name in (units[i] for i in orders[r % len(orders)]):
            if SETTLE_SECONDS:
                _settle(SETTLE_SECONDS)
            if pair and name == pair[0]:
                # which of the two leads alternates over rounds too
                for each, seconds in _interleaved(fns, pair[::-1] if r % 2 else pair,
                                                  numbers).items():
                    samples[each].append(seconds)
                continue
            samples[name].append(_time_calls(fns[name], numbers[name],
                                             SAMPLE_SETTINGS.get(name)))
    return samples


def median_interval(values, confidence=0.95):
    """A distribution-free confidence interval for the median of `values`:
    the k-th smallest and k-th largest, with k the largest rank for which
    the binomial tails leave at least `confidence` between them. None when
    there are too few values for one."""
    n = len(values)
    tail, k = 0.0, 0
    while True:
        tail_next = tail + math.comb(n, k) / 2.0 ** n
        if 2 * tail_next > 1 - confidence:
            break
        tail, k = tail_next, k + 1
    if k == 0:
        return None
    ordered = sorted(values)
    return ordered[k - 1], ordered[n - k]


def make_gemm(dtype, n):
    """A callable doing one n x n x n GEMM through scipy.linalg.blas (the BLAS
    cyrnn uses), and its FLOP count."""
    rng = np.random.default_rng(0)
    a = np.asfortranarray(rng.standard_normal((n, n)).astype(dtype))
    b = np.asfortranarray(rng.standard_normal((n, n)).astype(dtype))
    c = np.zeros((n, n), dtype=dtype, order="F")
    gemm = scipy.linalg.blas.sgemm if np.dtype(dtype) == np.float32 else scipy.linalg.blas.dgemm
    return (lambda: gemm(1.0, a, b, 0.0, c, overwrite_c=1)), 2.0 * n ** 3


# --------------------------------------------------------------------------
# checks
# --------------------------------------------------------------------------
def max_rel_diff(a, b):
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    if a.shape != b.shape:
        return float("inf")
    scale = max(1.0, float(np.max(np.abs(b))) if b.size else 1.0)
    return float(np.max(np.abs(a - b))) / scale if a.size else 0.0


def compare_outputs(got, ref):
    """Largest relative difference over the keys both have."""
    keys = [k for k in got if k in ref]
    if not keys:
        return float("nan"), ""
    diffs = {k: max_rel_diff(got[k], ref[k]) for k in keys}
    worst = max(diffs, key=diffs.get)
    return diffs[worst], worst


def cyrnn_outputs(model, x, dy, lengths):
    y, hn = model(x, lengths=lengths)
    hn = hn[0] if isinstance(hn, tuple) else hn
    _, _, tape = model.forward(x, lengths=lengths)
    g = model.backward(tape, dy)
    out = dict(y=y, hn=hn, dx=g.input)
    out.update({"d" + k: v for k, v in g.params.items()})
    return out


def numpy_outputs(ref, x, dy):
    y, hn = ref.inference(x)
    dx, _, params = ref.training_step(x, dy)
    out = dict(y=y, hn=hn, dx=dx)
    out.update({"d" + k: v for k, v in params.items()})
    return out


# --------------------------------------------------------------------------
# main
# --------------------------------------------------------------------------
def fmt_ms(seconds):
    if seconds is None:
        return "–"
    ms = seconds * 1e3
    return f"{ms:.3g}" if ms < 100 else f"{ms:.0f}"


def run_case(case, threads, libs, args, checks):
    T, B, I, H = case.shape
    model = make_cyrnn(case)
    x, dy, lengths = case_data(case)
    runners = {}
    problems = []
    if "torch" in libs and torch is not None and case.cell in TorchRunner.CELLS:
        runners["torch"] = TorchRunner(case, model, x, dy, lengths)
    if "onnxrt" in libs and onnxruntime is not None:
        try:
            runners["onnxrt"] = OrtRunner(case, model, x, lengths, threads)
        except Exception as exc:  # e.g. a dtype onnxruntime's kernel lacks
            message = str(exc).splitlines()[0] if str(exc) else ""
            problems.append(f"onnxrt left out of {case.name}: {type(exc).__name__}: "
                            f"{message.split('Status Message:')[-1].strip()[:150]}")
    if "numpy" in libs:
        runners["numpy"] = NumpyRunner(case, model.state_dict(), lengths)

    # -- correctness, once per case and thread count
    ours = cyrnn_outputs(model, x, dy, lengths)
    if "torch" in runners:
        reference, ref_name = runners["torch"].outputs(), "torch"
    else:
        reference, ref_name = ours, "cyrnn"
    for name in ("cyrnn", "torch", "onnxrt", "numpy"):
        if name == ref_name or (name != "cyrnn" and name not in runners):
            continue
        got = {"cyrnn": lambda: ours,
               "torch": lambda: runners["torch"].outputs(),
               "onnxrt": lambda: runners["onnxrt"].outputs(),
               "numpy": lambda: numpy_outputs(runners["numpy"], x, dy)}[name]()
        diff, key = compare_outputs(got, reference)
        ok = diff <= args.tolerance
        checks.append((threads, case.name, name, ref_name, diff, key, ok))

    # -- timing
    fns_inf = {"cyrnn": lambda: model(x, lengths=lengths)}
    fns_train = {"cyrnn": lambda: model.backward(model.forward(x, lengths=lengths)[2], dy)}
    if threads > 1:
        # cyrnn on one thread in the same rounds, sliced in with cyrnn's own
        # samples (alternate's pair): its speed-up then compares calls made
        # milliseconds apart under the same load, not two passes minutes apart
        fns_inf[ONE_THREAD] = fns_inf["cyrnn"]
        fns_train[ONE_THREAD] = fns_train["cyrnn"]
    if "torch" in runners:
        fns_inf["torch"] = runners["torch"].inference
        fns_train["torch"] = runners["torch"].training_step
    if "onnxrt" in runners:
        fns_inf["onnxrt"] = runners["onnxrt"].inference
    if "numpy" in runners:
        ref = runners["numpy"]
        fns_inf["numpy"] = lambda: ref.inference(x)
        fns_train["numpy"] = lambda: ref.training_step(x, dy)
    rows = []
    flops_inf, flops_train = case_flops(case, lengths)
    gemm, gemm_flops = make_gemm(case.dtype, args.gemm_size)
    for mode, fns, flops in (("inference", fns_inf, flops_inf), ("train step", fns_train, flops_train)):
        # one GEMM joins every round, so the machine's throughput is measured
        # under the same load as the libraries (the machine is shared)
        fns = dict(fns, gemm=gemm)
        samples = alternate(fns, args.repeat, args.sample_time, args.warmup, {"gemm": 1},
                            pair=("cyrnn", ONE_THREAD) if ONE_THREAD in fns else None)
        gemm_times = samples.pop("gemm")
        medians = {name: statistics.median(s) for name, s in samples.items()}
        # ratios paired within a round (the libraries ran seconds apart), then
        # the median over rounds: steadier than a ratio of medians when the
        # machine's load drifts
        paired = {name: [c / p for c, p in zip(samples["cyrnn"], s)]
                  for name, s in samples.items() if name != "cyrnn"}
        ratios = {name: statistics.median(r) for name, r in paired.items()}
        q = statistics.quantiles(samples["cyrnn"], n=4) if len(samples["cyrnn"]) > 1 else [0, 0, 0]
        rows.append(dict(case=case, mode=mode, medians=medians, flops=flops, ratios=ratios,
                         cyrnn_iqr=(q[2] - q[0]) / medians["cyrnn"],
                         gemm_gflops=gemm_flops / statistics.median(gemm_times) / 1e9,
                         gemm_samples=[gemm_flops / t / 1e9 for t in gemm_times],
                         spread={name: (min(s), max(s)) for name, s in samples.items()},
                         ratio_intervals={name: median_interval(r) for name, r in paired.items()}))
    return rows, problems, lengths


def print_table(threads, rows, libs, out):
    peers = [lib for lib in libs if lib != "cyrnn"]
    head = (["case", "T,B,I,H", "pass"] + [f"{lib} ms" for lib in libs]
            + [f"cyrnn/{p}" for p in peers] + ["cyrnn IQR", "cyrnn GFLOP/s", "GEMM GFLOP/s",
                                                "of GEMM"])
    out(f"\n### {threads} thread{'s' if threads > 1 else ''}\n")
    out("| " + " | ".join(head) + " |")
    out("|" + "|".join("---" if i < 3 else "---:" for i in range(len(head))) + "|")
    for row in rows:
        case, med = row["case"], row["medians"]
        cy = med.get("cyrnn")
        cells = [case.name + (" (f64)" if case.dtype == "float64" and "f64" not in case.name else ""),
                 ",".join(map(str, case.shape)), row["mode"]]
        cells += [fmt_ms(med.get(lib)) for lib in libs]
        for p in peers:
            cells.append(f"{row['ratios'][p]:.2f}" if p in row["ratios"] else "–")
        cells.append(f"{row['cyrnn_iqr']:.0%}")
        gf = row["flops"] / cy / 1e9 if cy else None
        peak = row["gemm_gflops"]
        cells.append(f"{gf:.1f}" if gf else "–")
        cells.append(f"{peak:.1f}" + (" (d)" if case.dtype == "float64" else ""))
        cells.append(f"{gf / peak:.0%}" if gf and peak else "–")
        out("| " + " | ".join(cells) + " |")


# The participants of --step, in the table's order: cyrnn's stream, cyrnn's
# one-step call, the peers, and the arithmetic's floor two ways.
STEP_NAMES = ("cyrnn", "cyrnn-call", "torch", "onnxrt", "gemv", "matmul")


def run_step_case(case, libs, args, checks):
    """One --step case: each participant's outputs over the case's T steps
    checked against the layer's model(x), then the rounds of single steps."""
    T, B, I, H = case.shape
    model = make_layer(case.cell, I, H, dtype=np.dtype(case.dtype), seed=0)
    x = np.random.default_rng(1).standard_normal((T, B, I)).astype(case.dtype)
    runners, problems = {}, []
    if "torch" in libs and torch is not None and case.cell in TorchStepRunner.CELLS:
        runners["torch"] = TorchStepRunner(case, model, x)
    if "onnxrt" in libs and onnxruntime is not None:
        try:
            runners["onnxrt"] = OrtStepRunner(case, model, x, 1)
        except Exception as exc:  # e.g. a dtype onnxruntime's kernel lacks
            problems.append(f"onnxrt left out of {case.name}: {type(exc).__name__}: "
                            f"{str(exc).splitlines()[0][:150] if str(exc) else ''}")

    # -- correctness, once per case: every step's output against model(x)'s y
    want, _ = model(x)
    check_stream = model.stream()
    got = {"cyrnn": np.stack([check_stream.step(xt) for xt in x])}
    got.update({name: runner.outputs(x) for name, runner in runners.items()})
    for name, y in got.items():
        diff = max_rel_diff(y, want)
        checks.append((1, case.name, name, "cyrnn model(x)", diff, "y", diff <= args.tolerance))
    if not np.array_equal(got["cyrnn"], want):
        problems.append(f"{case.name}: cyrnn's stream.step is not bit for bit model(x)")

    # -- timing: one step per call, the state carried from call to call
    step, x_step, x_call, hx = model.stream().step, np.ascontiguousarray(x[0]), x[:1], [None]

    def call():  # the way before streams: a one-step sequence, hx carried
        hx[0] = model(x_call, hx[0])[1]

    fns = {"cyrnn": lambda: step(x_step), "cyrnn-call": call}
    fns.update({name: runner.step for name, runner in runners.items()})
    fns.update(make_gemv(case))
    samples = alternate(fns, args.repeat, args.sample_time, args.warmup)
    medians = {name: statistics.median(s) for name, s in samples.items()}
    paired = {name: [c / p for c, p in zip(samples["cyrnn"], s)]
              for name, s in samples.items() if name != "cyrnn"}
    # the floor: whichever way of doing the arithmetic was faster in the round
    paired["floor"] = [c / min(g, m) for c, g, m in
                       zip(samples["cyrnn"], samples["gemv"], samples["matmul"])]
    q = statistics.quantiles(samples["cyrnn"], n=4) if len(samples["cyrnn"]) > 1 else [0, 0, 0]
    row = dict(case=case, mode="step", medians=medians,
               ratios={name: statistics.median(r) for name, r in paired.items()},
               ratio_intervals={name: median_interval(r) for name, r in paired.items()},
               cyrnn_iqr=(q[2] - q[0]) / medians["cyrnn"])
    return row, problems


def fmt_us(seconds):
    return "–" if seconds is None else f"{seconds * 1e6:.3g}"


def print_step_table(rows, out):
    names = [n for n in STEP_NAMES if any(n in r["medians"] for r in rows)]
    peers = [n for n in ("cyrnn-call", "torch", "onnxrt") if n in names]
    head = (["case", "T,B,I,H"] + [f"{n} us" for n in names]
            + [f"cyrnn/{p}" for p in peers] + ["cyrnn/floor", "cyrnn IQR"])
    out("\n### one step per call, 1 thread (us per step)\n")
    out("| " + " | ".join(head) + " |")
    out("|" + "|".join("---" if i < 2 else "---:" for i in range(len(head))) + "|")
    for row in rows:
        cells = [row["case"].name, ",".join(map(str, row["case"].shape))]
        cells += [fmt_us(row["medians"].get(n)) for n in names]
        cells += [f"{row['ratios'][p]:.2f}" if p in row["ratios"] else "–"
                  for p in peers + ["floor"]]
        cells.append(f"{row['cyrnn_iqr']:.0%}")
        out("| " + " | ".join(cells) + " |")


def run_step_group(cases, libs, args, out, left_out):
    """--step: the step cases on one thread, their table, the targets and the
    checks. Returns the exit status."""
    set_threads(1)
    if torch is not None:  # entered around each timed sample, outside the calls
        SAMPLE_SETTINGS["torch"] = torch.inference_mode
    out("- --step: one time step per call, B = 1, the state carried from call to call. "
        "cyrnn = stream.step(x) of model.stream(); cyrnn-call = model(x[None], hx) "
        "(the way before streams); torch = torch.nn.LSTMCell (GRUCell, RNNCell) under "
        "torch.inference_mode(); onnxrt = session.run of a one-step graph whose initial "
        "states are inputs; gemv = scipy.linalg.blas.sgemv (dgemv) of the (G*H, I+H) "
        "weights, Fortran order, by a vector; matmul = np.matmul of them into a kept "
        "output; floor = the faster of gemv and matmul in each round (the arithmetic). "
        "Ratios: median over rounds of the within-round ratio")
    rows, checks, problems = [], [], []
    try:
        for case in cases:
            row, case_problems = run_step_case(case, libs, args, checks)
            rows.append(row)
            problems += case_problems
    finally:
        SAMPLE_SETTINGS.pop("torch", None)
    print_step_table(rows, out)
    out(f"- thread pools: {thread_report()}")
    if args.cpu_level is not None:
        checked_at = f"level {args.cpu_level}, {LEVEL_NAMES[args.cpu_level]} (--cpu-level)"
    else:
        level, name, _ = cyrnn_kernels()
        checked_at = f"no cap (cyrnn's kernels at level {level}, {name})"
    speed_targets.report({1: rows}, ONE_THREAD, out, level=args.cpu_level,
                         left_out=left_out, checked_at=checked_at)
    _check_summary(checks, problems, args.tolerance, out)
    return 0 if all(ok for *_, ok in checks) else 1


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter,
                                     epilog=__doc__.split("\n\n", 1)[1])
    parser.add_argument("--threads", type=int, nargs="+", default=[1],
                        help="thread counts to run, in order (default: 1)")
    parser.add_argument("--repeat", type=int, default=None,
                        help="timed rounds per case and pass (default 15, 5 with --quick)")
    parser.add_argument("--cases", nargs="+", default=None,
                        help="regular expressions; run the cases whose name matches any")
    parser.add_argument("--libs", nargs="+", default=list(LIBS), choices=LIBS,
                        help="libraries to compare (cyrnn always runs)")
    parser.add_argument("--quick", action="store_true",
                        help="fewer rounds and shorter samples: a smoke run, not a measurement")
    parser.add_argument("--sample-time", type=float, default=None,
                        help="seconds per timing sample; short calls are repeated to fill it "
                             "(default 0.05, 0.01 with --quick)")
    parser.add_argument("--warmup", type=int, default=None,
                        help="untimed calls per library before timing (default 2, 1 with --quick)")
    parser.add_argument("--gemm-size", type=int, default=2048)
    parser.add_argument("--tolerance", type=float, default=1e-4,
                        help="largest accepted relative difference between libraries")
    parser.add_argument("--cpu-level", type=int, choices=CPU_LEVELS, default=None,
                        help="cap cyrnn's kernels and the peers at this instruction-set "
                             "level: 2 AVX-512, 1 AVX2+FMA, 0 baseline x86-64 (default: "
                             "no cap); onnxruntime, which has no cap, is left out below "
                             "the CPU's own level")
    parser.add_argument("--step", action="store_true",
                        help="time one step per call instead (streaming inference, "
                             "model.stream().step): the step cases, on one thread, against "
                             "torch's LSTMCell, onnxruntime one step at a time and the gemv "
                             "of the weights; --cases then picks among the step cases")
    parser.add_argument("--list", action="store_true", help="list the cases and exit")
    args = parser.parse_args(argv)
    if args.list:
        for case in CASES:
            print(f"{case.name:22s} {case.cell:9s} {case.size:7s} {SIZES[case.size]} "
                  f"{case.dtype}{' ragged' if case.ragged else ''}"
                  + ("" if case.default_level is None else
                     f"  (by default only at --cpu-level {case.default_level})"))
        for case in STEP_CASES:
            print(f"{case.name:22s} {case.cell:9s} {case.size:7s} {case.shape} "
                  f"{case.dtype}  (with --step)")
        return 0
    best = machine_level()
    if args.cpu_level is not None:
        if best is None:
            parser.error("--cpu-level needs an x86-64 CPU whose flags /proc/cpuinfo lists")
        if args.cpu_level > best:
            parser.error(f"--cpu-level {args.cpu_level}: this CPU's highest level is "
                         f"{best} ({LEVEL_NAMES[best]})")
        if not cpu_level_env_matches(args.cpu_level):
            differ = [f"{k}={os.environ.get(k)!r} (wanted {v!r})"
                      for k, v in cpu_level_env(args.cpu_level).items() if os.environ.get(k) != v]
            parser.error("--cpu-level is read before the libraries load: run compare.py as a "
                         "script, which re-executes itself with the caps; differing: "
                         + ", ".join(differ))
    args.repeat = args.repeat or (5 if args.quick else 15)
    args.sample_time = args.sample_time or (0.01 if args.quick else 0.05)
    args.warmup = args.warmup if args.warmup is not None else (1 if args.quick else 2)

    libs = ["cyrnn"] + [lib for lib in LIBS[1:] if lib in args.libs]
    missing = [lib for lib, mod in (("torch", torch), ("onnxrt", onnxruntime)) if lib in libs and mod is None]
    libs = [lib for lib in libs if lib not in missing]
    # onnxruntime has no instruction-set cap: not compared below the CPU's level
    left_out = ([] if args.cpu_level is None or args.cpu_level >= best or "onnxrt" not in libs
                else ["onnxrt"])
    libs = [lib for lib in libs if lib not in left_out]
    if args.step:
        cases = [case for case in STEP_CASES
                 if args.cases is None or any(re.search(p, case.name) for p in args.cases)]
    else:
        cases = select_cases(args.cases, args.cpu_level)
    if not cases:
        parser.error(f"no case matches {args.cases}; see --list")

    if torch is not None:  # before any torch call (the header's runs one)
        try:
            torch.set_num_interop_threads(1)
        except RuntimeError:
            pass

    out = print
    out("# cyrnn vs peers\n")
    source = os.path.dirname(cyrnn.__file__)
    revision = source_revision(source)
    out(f"- cyrnn {cyrnn.__version__} ({source}{', ' + revision if revision else ''}), "
        f"numpy {np.__version__}, "
        f"scipy {scipy.__version__}"
        + (f", torch {torch.__version__}" if torch is not None else "")
        + (f", onnxruntime {onnxruntime.__version__}, onnx {onnx.__version__}" if onnxruntime else ""))
    if torch is not None and not torch.__version__.startswith("2.13.0"):
        out(f"- WARNING: torch {torch.__version__} is not the pinned 2.13.0")
    out(f"- python {platform.python_version()}, {platform.machine()}, {cpu_name()}, "
        f"{os.cpu_count()} CPUs")
    isa_lines, isa_warnings = isa_header(args.cpu_level, best, left_out)
    for line in isa_lines:
        out(f"- {line}")
    for line in isa_warnings:
        out(f"- WARNING: {line}")
    if missing:
        out(f"- not installed, left out: {', '.join(missing)}")
    out(f"- {args.repeat} alternating rounds per pass, samples of ~{args.sample_time * 1e3:.0f} ms, "
        f"medians shown; cyrnn/peer = median over rounds of the within-round time ratio "
        f"(< 1: cyrnn is faster); cyrnn IQR = interquartile range of cyrnn's samples over "
        f"their median (the noise)"
        + (" (--quick: a smoke run, not a measurement)" if args.quick else ""))
    if args.step:
        return run_step_group(cases, libs, args, out, left_out)
    out("- FLOPs: inference 2*steps*(I+H)*G*H, train step 3x that; steps = T*B or sum(lengths); "
        f"'GEMM GFLOP/s' = median of one {args.gemm_size}^3 scipy sgemm (dgemm for float64) "
        "run in every round of the same pass; 'of GEMM' = cyrnn GFLOP/s / that")

    all_checks, all_problems, passes = [], [], {}
    for threads in args.threads:
        set_threads(threads)
        rows, ragged_info = [], {}
        for case in cases:
            case_rows, problems, lengths = run_case(case, threads, libs, args, all_checks)
            rows += case_rows
            all_problems += problems
            if lengths is not None:
                ragged_info[case.name] = lengths
        passes[threads] = rows
        print_table(threads, rows, libs, out)
        out("")
        for dtype in sorted({r["case"].dtype for r in rows}):
            per_pass = [r["gemm_gflops"] for r in rows if r["case"].dtype == dtype]
            every = [g for r in rows if r["case"].dtype == dtype for g in r["gemm_samples"]]
            out(f"- {'s' if dtype == 'float32' else 'd'}gemm {args.gemm_size}^3 at {threads} "
                f"thread(s), one call in every round: median {statistics.median(every):.1f} "
                f"GFLOP/s over {len(every)} calls; per-pass medians from {min(per_pass):.1f} "
                f"to {max(per_pass):.1f} (the spread is the machine's noise)")
        out(f"- thread pools: {thread_report()}")
        _ragged_summary(rows, ragged_info, libs, out)
        _speedup_summary(threads, rows, out)
    if args.cpu_level is not None:
        checked_at = f"level {args.cpu_level}, {LEVEL_NAMES[args.cpu_level]} (--cpu-level)"
    else:
        level, name, _ = cyrnn_kernels()
        checked_at = f"no cap (cyrnn's kernels at level {level}, {name}; the level-2 targets)"
    speed_targets.report(passes, ONE_THREAD, out, level=args.cpu_level, left_out=left_out,
                         checked_at=checked_at)
    _check_summary(all_checks, all_problems, args.tolerance, out)
    return 0 if all(ok for *_, ok in all_checks) else 1


def _speedup_summary(threads, rows, out):
    """cyrnn's speed-up over its own one-thread configuration, both measured
    in the same rounds of this pass (median over rounds of the ratio)."""
    rows = [r for r in rows if ONE_THREAD in r["ratios"]]
    if not rows:
        return
    parts = []
    for r in rows:
        interval = r["ratio_intervals"][ONE_THREAD]
        ci = "" if interval is None else f"95% CI {1 / interval[1]:.2f}-{1 / interval[0]:.2f}, "
        if interval is not None and interval[0] > 1:  # the whole interval below 1x
            ci = "slower: " + ci
        parts.append(f"{r['case'].name} {r['mode']} {1 / r['ratios'][ONE_THREAD]:.2f}x "
                     f"({ci}{fmt_ms(r['medians'][ONE_THREAD])} -> "
                     f"{fmt_ms(r['medians']['cyrnn'])} ms)")
    out(f"- cyrnn on {threads} threads against 1 thread, in the same rounds (speed-up = "
        f"one-thread time / {threads}-thread time, median over rounds, with a "
        f"distribution-free confidence interval for that median; 'slower' where the "
        f"whole interval lies below 1x): " + "; ".join(parts))


def _ragged_summary(rows, ragged_info, libs, out):
    by = {(r["case"].name, r["mode"]): r["medians"] for r in rows}
    for name, lengths in ragged_info.items():
        full = name.replace("-ragged", "")
        if not any(k[0] == full for k in by):
            continue
        T = SIZES[next(c.size for c in CASES if c.name == name)][0]
        frac = float(np.sum(lengths)) / (T * len(lengths))
        parts = []
        for mode in ("inference", "train step"):
            rag, ful = by.get((name, mode), {}), by.get((full, mode), {})
            ratios = [f"{lib} {rag[lib] / ful[lib]:.2f}" for lib in libs if lib in rag and lib in ful]
            parts.append(f"{mode}: " + ", ".join(ratios))
        out(f"- {name} / {full} time (real steps are {frac:.0%} of T*B): " + "; ".join(parts))


def _check_summary(checks, problems, tol, out):
    out("\n### correctness checks (once per case and thread count)\n")
    bad = [c for c in checks if not c[-1]]
    worst = {}
    for threads, case, lib, ref, diff, key, ok in checks:
        if lib not in worst or diff > worst[lib][0]:
            worst[lib] = (diff, case, key, ref)
    for lib, (diff, case, key, ref) in worst.items():
        out(f"- {lib} vs {ref}: largest relative difference {diff:.2e} ({case}, {key})")
    if bad:
        out(f"- FAILED (> {tol:g}):")
        for threads, case, lib, ref, diff, key, _ in bad:
            out(f"  - {case} at {threads} thread(s): {lib} vs {ref}: {diff:.2e} in {key}")
    else:
        out(f"- all within {tol:g}")
    for p in dict.fromkeys(problems):  # once each, in order
        out(f"- {p}")


# --------------------------------------------------------------------------
# instruction sets in effect
# --------------------------------------------------------------------------
def cyrnn_kernels():
    """(level, name, reason) of cyrnn's kernels: cyrnn.show_config's where this
    cyrnn has it, else inferred as cyrnn chooses (CYRNN_CPU_LEVEL, taken only
    below this CPU's level), the reason then saying so."""
    show = getattr(cyrnn, "show_config", None)
    if show is not None:
        try:
            kernels = show(mode="dicts")["kernels"]
            return int(kernels["level"]), str(kernels["name"]), str(kernels["reason"])
        except Exception as exc:  # a show_config still being written
            missing = f"cyrnn.show_config failed: {type(exc).__name__}: {exc}"
    else:
        missing = "this cyrnn has no show_config()"
    best = machine_level()
    if best is None:
        return None, "unknown", missing
    cap = os.environ.get("CYRNN_CPU_LEVEL")
    if cap in [str(n) for n in range(best)]:
        level, why = int(cap), f"CYRNN_CPU_LEVEL={cap}"
    else:
        level, why = best, "this CPU's highest" + (f", CYRNN_CPU_LEVEL={cap} not below it"
                                                   if cap else "")
    return level, LEVEL_NAMES[level], f"{why}; inferred, as {missing}"


def _captured_stdout(fn):
    """What fn() writes to file descriptor 1 (C libraries' printf)."""
    libc = ctypes.CDLL(None)
    sys.stdout.flush()
    saved = os.dup(1)
    with tempfile.TemporaryFile() as tmp:
        os.dup2(tmp.fileno(), 1)
        try:
            fn()
        finally:
            libc.fflush(None)
            os.dup2(saved, 1)
            os.close(saved)
        tmp.seek(0)
        return tmp.read().decode(errors="replace")


def torch_isas():
    """torch's ATen capability, and the instruction sets its oneDNN (torch's
    LSTM) and MKL (its GEMMs: GRU, RNN) chose, read from their verbose output
    of one small call each (None where it did not say)."""
    found = dict(aten=torch.backends.cpu.get_cpu_capability(), onednn=None, mkl=None)

    def calls():
        with torch.inference_mode():
            with torch.backends.mkldnn.verbose(torch.backends.mkldnn.VERBOSE_ON):
                torch.nn.LSTM(4, 4)(torch.zeros(2, 1, 4))
            with torch.backends.mkl.verbose(torch.backends.mkl.VERBOSE_ON):
                a = torch.ones(64, 64)
                torch.mm(a, a)
    try:
        text = _captured_stdout(calls)
    except Exception:  # pragma: no cover - no fd 1, no libc
        return found
    onednn = re.search(r"onednn_verbose,.*info,cpu,isa:(.*)", text)
    mkl = re.search(r"MKL_VERBOSE .* architecture .*?\(Intel\(R\) ([^)]+)\)", text)
    found["onednn"] = onednn.group(1).strip() if onednn else None
    found["mkl"] = mkl.group(1) if mkl else None
    return found


def openblas_architectures():
    """{OpenBLAS library file: the core type it chose}, from threadpoolctl."""
    if threadpoolctl is None:
        return {}
    return {os.path.basename(p["filepath"]): p.get("architecture") or "?"
            for p in threadpoolctl.threadpool_info() if p["internal_api"] == "openblas"}


def numpy_simd():
    """numpy's dispatch targets enabled on this CPU in this process."""
    for module in ("numpy._core._multiarray_umath", "numpy.core._multiarray_umath"):
        try:
            umath = __import__(module, fromlist=["__cpu_features__"])
            return [t for t in umath.__cpu_dispatch__ if umath.__cpu_features__.get(t)]
        except (ImportError, AttributeError):
            continue
    return None


def _env(name):
    value = os.environ.get(name)
    return f"{name}={value}" if value is not None else f"{name} unset"


def isa_header(level, best, left_out):
    """Header lines naming the instruction sets each library runs, and
    warnings where one is not at the requested --cpu-level."""
    lines, warnings = [], []
    best_text = "unknown" if best is None else f"{best} ({LEVEL_NAMES[best]})"
    if level is None:
        lines.append(f"instruction sets: nothing capped (no --cpu-level); this CPU's "
                     f"highest level is {best_text}")
    else:
        lines.append(f"instruction sets: --cpu-level {level} ({LEVEL_NAMES[level]}) "
                     f"for cyrnn and its peers alike; this CPU's highest level is {best_text}")
    got, name, reason = cyrnn_kernels()
    lines.append(f"cyrnn kernels: level {got}, {name} ({reason})")
    products = getattr(cyrnn, "show_config", lambda **_: {})(mode="dicts").get(
        "kernels", {}).get("products")
    if products:
        lines.append(f"cyrnn's products: {products}")
    if level is not None and got != level:
        warnings.append(f"cyrnn's kernels run at level {got}, not the requested {level}")
    caps = LEVEL_CAPS.get(level, {})
    if torch is not None:
        isas = torch_isas()
        lines.append(f"torch: ATen CPU capability {isas['aten']} ({_env('ATEN_CPU_CAPABILITY')}); "
                     f"oneDNN (its LSTM) {isas['onednn'] or '?'} ({_env('ONEDNN_MAX_CPU_ISA')}); "
                     f"MKL (its GEMMs) {isas['mkl'] or '?'} ({_env('MKL_ENABLE_INSTRUCTIONS')}"
                     + (f", {_env('MKL_CBWR')}" if "MKL_CBWR" in os.environ else "")
                     + (": SSE2" if os.environ.get("MKL_CBWR") == "COMPATIBLE" else "") + ")")
        expect = {1: ("AVX2", "AVX2", "AVX2"), 0: ("DEFAULT", "SSE4.1", "SSE4.2")}.get(level)
        if expect:
            for what, value, want in zip(("ATen", "oneDNN", "MKL"),
                                         (isas["aten"], isas["onednn"], isas["mkl"]), expect):
                if value is not None and want not in value:
                    warnings.append(f"torch's {what} reports {value}, not {want}")
    blas = openblas_architectures()
    simd = numpy_simd()
    by_arch = {}
    for lib, arch in blas.items():
        by_arch.setdefault(arch, []).append(lib)
    lines.append("OpenBLAS core type: "
                 + ("; ".join(f"{arch} in {', '.join(libs)}" for arch, libs in by_arch.items())
                    or "? (threadpoolctl missing)")
                 + f" ({_env('OPENBLAS_CORETYPE')}); numpy's SIMD dispatch: "
                 + ("?" if simd is None else ", ".join(simd) or "none above its baseline"))
    want = caps.get("OPENBLAS_CORETYPE")
    for lib, arch in blas.items():
        if want and arch != want:
            warnings.append(f"OpenBLAS in {lib} chose {arch}, not {want}")
    if left_out:
        lines.append(f"{', '.join(left_out)} left out: onnxruntime has no instruction-set cap, "
                     f"and this run is capped at level {level}, below this CPU's {best}")
    return lines, warnings


if __name__ == "__main__":
    sys.exit(main())
