"""The kernels an older CPU runs give the results of the ones this CPU runs.

The step and product kernels pick AVX-512, AVX2 or baseline x86-64 code when
they are first called; CYRNN_CPU_LEVEL=1 or 0 in the environment caps that
choice. Each capped level runs in a subprocess (the choice is made once per
process) over the same models and inputs as this process, and must agree
within rounding: the baseline has no FMA, so its bits may differ."""
import os
import subprocess
import sys

import numpy as np
import pytest

import cyrnn

from helpers import (CELLS, arrays_at_level, assert_input_grad_only_leaves_out_dx,
                     level_environment, make_model, tolerances)

# The levels' vectors hold 16, 8 or 4 floats (8, 4 or 2 doubles), and their
# tiles take 2 to 16 rows: H = 37 leaves a partial unit block at every width,
# B = 13 leftover rows after whole tiles at every tile size, and H = 48 whole
# blocks only. Ragged lengths, both directions, two layers, a projection;
# then an LSTM whose tape (4.7 MB) the forward stores with streaming stores
# (from _cpu.stream_tape_bytes(): 4 MB on AMD's CPUs, 1 MB on others).
CASES = [(cell, dtype, dict(T=6, B=13, I=13, H=37, ragged=True,
                            options=dict(bidirectional=True, num_layers=2)))
         for cell in CELLS for dtype in ("float32", "float64")]
CASES += [(cell, dtype, dict(T=5, B=7, I=9, H=37, ragged=True,
                             options=dict(bidirectional=True, proj_size=11)))
          for cell in ("LSTM", "LSTM_PEEPHOLE") for dtype in ("float32", "float64")]
CASES += [(cell, "float32", dict(T=4, B=30, I=48, H=48, ragged=False, options={}))
          for cell in CELLS]
CASES += [(cell, dtype, dict(T=6, B=13, I=13, H=37, ragged=True,
                             options=dict(reverse=True, num_layers=2)))
          for cell in ("LSTM", "GRU_RESET_BEFORE") for dtype in ("float32", "float64")]
STREAMED_TAPE = ("LSTM", "float32", dict(T=64, B=32, I=16, H=96, ragged=False, options={}))
CASES.append(STREAMED_TAPE)
# More rows than one chunk of the input's product (256 rows: see
# _cpu.blas_runs_products) in both directions, ragged.
CASES += [(cell, "float64", dict(T=40, B=13, I=9, H=37, ragged=True,
                                 options=dict(bidirectional=True)))
          for cell in ("LSTM", "GRU", "RNN_TANH")]
# Layers past _cpu.BLAS_GRADIENT_WEIGHTS, whose chunk products run in BLAS
# at level 1 (the second layer's input is both directions' output).
CASES += [(cell, "float32", dict(T=5, B=13, I=230, H=229, ragged=True,
                                 options=dict(bidirectional=True, num_layers=2)))
          for cell in ("LSTM", "GRU", "GRU_RESET_BEFORE", "LSTM_PEEPHOLE")]


def test_the_streamed_case_streams_its_tape():
    from cyrnn import _cells, _plan
    cell, dtype, shape = STREAMED_TAPE
    assert _plan.streams_tape(_cells.BY_KEY[cell], shape["H"], shape["T"] * shape["B"], dtype)


def run_case(cell, dtype, shape):
    """Every output and gradient of one inference and one training step."""
    model = make_model(cell, shape["I"], shape["H"], dtype=np.dtype(dtype), seed=0,
                       **shape["options"])
    rng = np.random.default_rng(1)
    x = rng.standard_normal((shape["T"], shape["B"], shape["I"])).astype(dtype)
    lengths = rng.integers(1, shape["T"] + 1, size=shape["B"]) if shape["ragged"] else None
    y, _ = model(x, lengths=lengths)
    y_train, _, tape = model.forward(x, lengths=lengths)
    dy = rng.standard_normal(y_train.shape).astype(dtype)
    grads = model.backward(tape, dy)
    assert_input_grad_only_leaves_out_dx(grads, model.backward(tape, dy, input_grad=False))
    return {"y": y, "y_train": y_train, "dx": grads.input, **grads.params}


def results_at(level, tmp_path, products=None):
    """run_case over CASES in a process capped at `level` (arrays_at_level)."""
    return arrays_at_level(
        "from test_instruction_sets import CASES, run_case\n"
        "arrays = {f'{k}/{name}': a for k, case in enumerate(CASES)\n"
        "          for name, a in run_case(*case).items()}",
        level, products, tmp_path / f"level{level}-{products}.npz")


# Level 0 runs BLAS's products on a CPU with AVX: its own kernels' products
# run when CYRNN_PRODUCTS=kernels says so; BLAS's at the best level, when
# CYRNN_PRODUCTS=blas does.
@pytest.mark.parametrize("level,products", [(1, None), (0, None), (0, "kernels"),
                                            (None, "blas")])
def test_capped_kernels_agree_with_the_best_ones(level, products, tmp_path):
    capped = results_at(level, tmp_path, products)
    assert len(capped) > len(CASES)
    for k, (cell, dtype, shape) in enumerate(CASES):
        for name, want in run_case(cell, dtype, shape).items():
            got = capped[f"{k}/{name}"]
            assert got.dtype == want.dtype
            # A weight gradient sums thousands of products: rounding without
            # FMA moves its small entries by more than their own rtol.
            rtol = tolerances(dtype)["rtol"]
            np.testing.assert_allclose(got, want, rtol=rtol, atol=rtol * np.abs(want).max(),
                                       err_msg=f"{cell} {dtype} {shape} {name}")


def test_a_cap_above_the_cpu_or_malformed_is_ignored():
    """Only a lower level is taken: an AVX-512 request on a CPU without it (or
    a typo) must not select other code than the default's."""
    x = np.random.default_rng(0).standard_normal((30, 5, 4)).astype(np.float32)
    script = ("import sys, numpy as np, cyrnn\n"
              "x = np.frombuffer(sys.stdin.buffer.read(), np.float32).reshape(30, 5, 4)\n"
              "sys.stdout.write(cyrnn.LSTM(4, 20, seed=0)(x)[0].tobytes().hex())\n")

    def output(cap):
        done = subprocess.run([sys.executable, "-c", script], input=x.tobytes(),
                              env=level_environment(cap), capture_output=True, timeout=120)
        assert done.returncode == 0, (cap, done.stderr)
        return bytes.fromhex(done.stdout.decode())

    # The default's output from a process without a cap: this one may run
    # under one (the whole suite at CYRNN_CPU_LEVEL=0, say).
    want = output(None)
    if not os.environ.get("CYRNN_CPU_LEVEL"):
        assert want == make_model("LSTM", 4, 20, seed=0)(x)[0].tobytes()
    for cap in ("2", "3", "9", "x", "12", "-1", ""):
        assert output(cap) == want, cap
