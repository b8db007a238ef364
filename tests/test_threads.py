"""One model used from several threads at once gives the sequential results,
and the GIL is released while the time loops run."""
import os
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from helpers import level_environment, make_model


def run_pass(model, x, lengths):
    y, hn = model(x, lengths=lengths)
    y2, _, tape = model.forward(x, lengths=lengths)
    g = model.backward(tape, np.ones_like(y2))
    return [y, *([hn] if not isinstance(hn, tuple) else hn), g.input, *g.params.values()]


@pytest.mark.parametrize("cell", ["LSTM", "GRU", "RNN_RELU"])
def test_concurrent_calls_match_sequential(cell):
    model = make_model(cell, 8, 16, num_layers=2, bidirectional=True, seed=0)
    rng = np.random.default_rng(0)
    inputs = [(rng.standard_normal((12, 5, 8)), rng.integers(1, 13, size=5)) for _ in range(8)]
    sequential = [run_pass(model, x, n) for x, n in inputs]
    with ThreadPoolExecutor(4) as pool:
        concurrent = list(pool.map(lambda args: run_pass(model, *args), inputs * 3))
    for i, result in enumerate(concurrent):
        for got, want in zip(result, sequential[i % len(inputs)]):
            np.testing.assert_array_equal(got, want)


def test_gil_is_released_during_the_computation():
    """While a long forward pass runs in one thread, a pure-Python counter in
    another keeps ticking; with the GIL held it would stall for the pass."""
    model = make_model("LSTM", 64, 256, seed=0)
    x = np.random.default_rng(0).standard_normal((1000, 32, 64)).astype(np.float32)
    model(x[:5])
    ticks, done = [], threading.Event()

    def counter():
        while not done.is_set():
            ticks.append(time.perf_counter())
            time.sleep(0.0005)

    worker = threading.Thread(target=counter)
    worker.start()
    start = time.perf_counter()
    model(x)
    end = time.perf_counter()
    done.set()
    worker.join()
    inside = [t for t in ticks if start < t < end]
    gaps = np.diff([start, *inside, end])
    # The pass takes many tens of ms; the counter never waits long for the GIL.
    assert end - start > 0.05
    assert gaps.max() < 0.5 * (end - start), (gaps.max(), end - start)


# Wide enough that every pass splits its steps over the threads; with lengths
# the rows of a step shrink and each thread's share changes from step to step.
@pytest.mark.parametrize("cell,options", [
    ("LSTM", dict(bidirectional=True)),
    ("LSTM", dict(proj_size=64)),
    ("GRU", dict(num_layers=2)),
    ("LSTM_PEEPHOLE", dict(bidirectional=True)),
    ("GRU_RESET_BEFORE", dict(num_layers=2)),
    ("RNN_TANH", {}),
    ("RNN_RELU", {}),
])
@pytest.mark.parametrize("ragged", [False, True])
def test_thread_count_is_set_globally_and_results_do_not_depend_on_it(cell, options, ragged,
                                                                      I=64, H=128):
    import cyrnn
    model = make_model(cell, I, H, seed=0, **options)
    rng = np.random.default_rng(1)
    x = rng.standard_normal((20, 64, I))
    lengths = rng.integers(1, 21, size=64) if ragged else None
    reference = run_pass(model, x, lengths)
    try:
        for n in (1, 2, 3):
            cyrnn.set_num_threads(n)
            assert cyrnn.get_num_threads() == n
            # a fixed count reaches other Python threads too
            with ThreadPoolExecutor(1) as pool:
                assert pool.submit(cyrnn.get_num_threads).result() == n
                result = pool.submit(run_pass, model, x, lengths).result()
            for got, want in zip(result, reference):
                np.testing.assert_array_equal(got, want)
        with pytest.raises(ValueError, match="threads"):
            cyrnn.set_num_threads(0)
    finally:
        cyrnn.set_num_threads(None)


# At level 0 on a CPU with AVX the forward pass's products run in BLAS
# (_cpu.blas_runs_products), from one thread of the team, between barriers,
# and each thread runs its share of BPTT's chunk products in BLAS; at level 1
# a layer past _cpu.BLAS_GRADIENT_WEIGHTS does the latter only: the test
# above, in a process capped there.
@pytest.mark.parametrize("level,sizes", [(0, (64, 128)), (1, (256, 256))])
def test_results_do_not_depend_on_the_thread_count_where_blas_runs_products(level, sizes):
    script = (f"import sys; sys.path.insert(0, {os.path.dirname(__file__)!r})\n"
              "from cyrnn import _cpu\n"
              "import test_threads as t\n"
              f"I, H = {sizes}\n"
              f"if _cpu.kernel_level() != {level} or not _cpu.blas_runs_gradients(3 * H * (I + H)):\n"
              "    sys.exit(77)\n"
              "for cell, options in [('LSTM', dict(bidirectional=True)), "
              "('LSTM', dict(proj_size=64)), ('GRU', dict(num_layers=2)), ('RNN_RELU', {})]:\n"
              "    t.test_thread_count_is_set_globally_and_results_do_not_depend_on_it("
              "cell, options, True, I, H)\n")
    environment = level_environment(str(level))
    environment.pop("OMP_NUM_THREADS", None)  # (another test's limit would cap the counts)
    done = subprocess.run([sys.executable, "-c", script], env=environment,
                          capture_output=True, text=True, timeout=300)
    if done.returncode == 77:
        pytest.skip(f"this CPU does not run level {level} with BLAS's products")
    assert done.returncode == 0, done.stderr[-3000:]


@pytest.mark.parametrize("cell", ["LSTM", "GRU"])
def test_a_one_row_batch_gives_the_same_gradients_on_any_thread_count(cell):
    """One sequence: each step is too small to share, so the time loop runs on
    one thread, while each chunk of the weight gradients (hundreds of rows)
    gets a team of its own. Results must not depend on it."""
    import cyrnn
    model = make_model(cell, 64, 128, seed=0)
    x = np.random.default_rng(2).standard_normal((700, 1, 64))
    reference = run_pass(model, x, None)
    try:
        for n in (2, 3):
            cyrnn.set_num_threads(n)
            for got, want in zip(run_pass(model, x, None), reference):
                np.testing.assert_array_equal(got, want)
    finally:
        cyrnn.set_num_threads(None)
