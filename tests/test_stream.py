"""Streaming inference (RecurrentLayer.stream): a sequence fed one step at a
time gives the layer's own outputs and final states, to the bit (within
rounding where the layer's products run in BLAS), for every cell and option; the weights are those of the stream's making; bad
arguments are errors naming them, before any C runs."""
import os
import pickle
import subprocess
import sys
import threading

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import cyrnn
from cyrnn import _cpu
from cyrnn._streaming import Stream
from helpers import CELLS, WITH_CELL_STATE, level_environment, make_model


def as_tuple(states):
    return states if isinstance(states, tuple) else (states,)


def random_states(model, rng, batch_size):
    """hx for `model` (LSTM: a pair), batched or not (batch_size None)."""
    rows = () if batch_size is None else (batch_size,)
    h = rng.standard_normal((model.num_layers, *rows, model.proj_size or model.hidden_size))
    if not model._cell.has_cell_state:
        return h
    return h, rng.standard_normal((model.num_layers, *rows, model.hidden_size))


def streamed(model, x, hx=None, batch_size=1):
    """Every step's output of a stream over x (T, B, I) or, unbatched, (T, I),
    and its final state."""
    stream = model.stream(batch_size=batch_size, hx=hx)
    return np.stack([stream.step(xt) for xt in x]), stream.state


def assert_as_the_layer(got, want):
    """A stream's result equals the layer's, bit for bit (the same loop and
    kernels run each step); within rounding where the layer's products run
    in BLAS instead (_cpu.blas_runs_products), as the stream's never do."""
    if not _cpu.blas_runs_products():
        np.testing.assert_array_equal(got, want)
    elif np.asarray(want).dtype == np.float32:
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
    else:
        np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-14)


def assert_streams_as_the_layer(model, x, hx=None, batch_size=1):
    """The stream over x gives model(x, hx)'s y and final states."""
    ys, state = streamed(model, x, hx, batch_size)
    y, hn = model(x, hx)
    assert ys.dtype == y.dtype == model.dtype
    assert_as_the_layer(ys, y)
    for got, want in zip(as_tuple(state), as_tuple(hn), strict=True):
        assert got.shape == want.shape
        assert_as_the_layer(got, want)


def sequence(model, T, batch_size, seed=0):
    rows = () if batch_size is None else (batch_size,)
    x = np.random.default_rng(seed).standard_normal((T, *rows, model.input_size))
    return x.astype(model.dtype)


# -- the layer's results ------------------------------------------------------------
VARIANTS = [(cell, {}) for cell in CELLS] + [(cell, {"proj_size": 5}) for cell in WITH_CELL_STATE]


@pytest.mark.parametrize("batch_size", [1, 5])
@pytest.mark.parametrize("num_layers", [1, 2])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("cell,options", VARIANTS, ids=lambda v: str(v))
def test_steps_give_the_layers_outputs_and_states(cell, options, dtype, num_layers, batch_size):
    # H = 37: a partial unit block at every vector width
    model = make_model(cell, 6, 37, num_layers=num_layers, dtype=dtype, seed=2, **options)
    x = sequence(model, 12, batch_size)
    assert_streams_as_the_layer(model, x, batch_size=batch_size)
    hx = random_states(model, np.random.default_rng(3), batch_size)
    assert_streams_as_the_layer(model, x, hx, batch_size)


@pytest.mark.parametrize("cell", CELLS)
def test_an_unbatched_stream_gives_the_unbatched_layers_results(cell):
    model = make_model(cell, 4, 9, num_layers=2, dtype=np.float64, seed=5)
    x = sequence(model, 7, None)
    assert_streams_as_the_layer(model, x, batch_size=None)
    assert_streams_as_the_layer(model, x, random_states(model, np.random.default_rng(1), None),
                                batch_size=None)
    stream = model.stream(batch_size=None)
    assert stream.step(x[0]).shape == (9,)
    assert as_tuple(stream.state)[0].shape == (2, 9)


@st.composite
def problems(draw):
    cell = draw(st.sampled_from(sorted(CELLS)))
    hidden = draw(st.integers(1, 40))
    options = dict(num_layers=draw(st.integers(1, 3)), bias=draw(st.booleans()),
                   dtype=draw(st.sampled_from([np.float32, np.float64])),
                   seed=draw(st.integers(0, 2**16)))
    if cell in WITH_CELL_STATE and hidden > 1 and draw(st.booleans()):
        options["proj_size"] = draw(st.integers(1, hidden - 1))
    model = make_model(cell, draw(st.integers(1, 20)), hidden, **options)
    # 13 rows: some left over after whole register tiles at every level
    batch_size = draw(st.sampled_from([None, 1, 2, 3, 5, 8, 13]))
    x = sequence(model, draw(st.integers(1, 8)), batch_size, seed=options["seed"])
    hx = random_states(model, np.random.default_rng(1), batch_size) \
        if draw(st.booleans()) else None
    return model, x, hx, batch_size


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(problems())
def test_any_shape_streams_as_the_layer(problem):
    assert_streams_as_the_layer(*problem)


def test_dropout_and_batch_first_do_not_apply_to_a_stream():
    """Inference has no dropout; a step's x has no time axis to put first."""
    model = cyrnn.GRU(3, 8, num_layers=2, dropout=0.5, batch_first=True, seed=4)
    x = sequence(model, 6, 4)
    ys, _ = streamed(model, x, batch_size=4)
    y, _ = model(x.transpose(1, 0, 2))
    assert_as_the_layer(ys, y.transpose(1, 0, 2))


# -- outputs, state, reset ----------------------------------------------------------
def test_step_returns_a_fresh_array_or_fills_out():
    model = cyrnn.LSTM(4, 6, proj_size=3, seed=0)
    x = sequence(model, 3, 2)
    first = model.stream(batch_size=2)
    second = model.stream(batch_size=2)
    y0 = first.step(x[0])
    kept = y0.copy()
    y1 = first.step(x[1])
    assert y0.flags.owndata and y0.flags.writeable and y1 is not y0
    np.testing.assert_array_equal(y0, kept)  # the next step leaves it alone
    out = np.full((2, 3), np.nan, np.float32)
    assert second.step(x[0], out=out) is out
    np.testing.assert_array_equal(out, kept)
    assert second.step(x[1], out) is out  # out may be given by position too
    np.testing.assert_array_equal(out, y1)


def test_state_is_a_copy_in_the_layers_format():
    model = cyrnn.LSTM(3, 5, num_layers=2, proj_size=2, dtype=np.float64, seed=0)
    stream = model.stream(batch_size=4)
    h, c = stream.state
    assert h.shape == (2, 4, 2) and c.shape == (2, 4, 5) and not h.any() and not c.any()
    x = sequence(model, 5, 4)
    for xt in x:
        stream.step(xt)
    h, c = stream.state
    h[...] = 7  # a copy: the stream goes on from its own
    want, (h_n, c_n) = model(x)
    assert_as_the_layer(stream.state[0], h_n)
    assert_as_the_layer(stream.state[1], c_n)
    rnn = cyrnn.RNN(3, 5, seed=0).stream(batch_size=None)
    assert isinstance(rnn.state, np.ndarray) and rnn.state.shape == (1, 5)


@pytest.mark.parametrize("cell", ["LSTM", "GRU_RESET_BEFORE"])
def test_reset_starts_again_from_zeros_or_given_states(cell):
    model = make_model(cell, 3, 7, num_layers=2, seed=1)
    x = sequence(model, 6, 2)
    hx = random_states(model, np.random.default_rng(0), 2)
    stream = model.stream(batch_size=2)
    for xt in x:
        stream.step(xt)
    stream.reset()
    for got, want in zip(as_tuple(stream.state), as_tuple(model.stream(batch_size=2).state)):
        np.testing.assert_array_equal(got, want)
    assert_as_the_layer(np.stack([stream.step(xt) for xt in x]), model(x)[0])
    stream.reset(hx)
    assert_as_the_layer(np.stack([stream.step(xt) for xt in x]), model(x, hx)[0])
    if cell == "LSTM":  # either part of the pair may be None, as in a call
        stream.reset((None, hx[1]))
        assert_as_the_layer(np.stack([stream.step(xt) for xt in x]),
                            model(x, (None, hx[1]))[0])


def test_a_stream_keeps_the_weights_it_was_made_with():
    model = cyrnn.LSTM(3, 6, proj_size=4, peephole=True, seed=0)
    x = sequence(model, 5, 1)
    want, _ = model(x)
    stream = model.stream()
    for name, value in model.parameters().items():  # an optimizer's step, in place
        value += 0.25
    changed, _ = model(x)
    ys = np.stack([stream.step(xt) for xt in x])
    assert_as_the_layer(ys, want)
    assert not np.allclose(ys, changed)
    assert_as_the_layer(streamed(model, x)[0], changed)  # a new stream sees them


def test_a_stream_and_the_layer_share_the_packing_cache_safely():
    """A stream packs into the layer's cache (a later call reuses it); a
    change of weights replaces the cache's entry, never the stream's."""
    model = cyrnn.GRU(4, 5, seed=0)
    x = sequence(model, 4, 1)
    stream = model.stream()
    y_before, _ = model(x)
    model.load_state_dict({k: v * 2 for k, v in model.state_dict().items()})
    model(x)
    assert_as_the_layer(np.stack([stream.step(xt) for xt in x]), y_before)


# -- bad arguments -------------------------------------------------------------------
I, H = 4, 6
STREAM_CASES = [
    ("batch_size 0", dict(batch_size=0), ValueError, ["batch_size", ">= 1"]),
    ("batch_size negative", dict(batch_size=-2), ValueError, ["batch_size"]),
    ("batch_size float", dict(batch_size=1.0), TypeError, ["batch_size"]),
    ("batch_size bool", dict(batch_size=True), TypeError, ["batch_size"]),
    ("batch_size string", dict(batch_size="2"), TypeError, ["batch_size"]),
    ("batch_size huge", dict(batch_size=2**31), ValueError, ["batch_size"]),
    ("hx not a pair", dict(hx=np.zeros((2, 1, H))), TypeError, ["hx", "pair"]),
    ("h0 shape", dict(hx=(np.zeros((2, 2, H)), None)), ValueError, ["hx[0]", str((2, 1, H))]),
    ("c0 shape", dict(hx=(None, np.zeros((1, 1, H)))), ValueError, ["hx[1]", str((2, 1, H))]),
    ("h0 complex", dict(hx=(np.zeros((2, 1, H), complex), None)), TypeError, ["hx[0]"]),
    ("unbatched hx for batched", dict(hx=(np.zeros((2, H)), None)), ValueError, ["hx[0]"]),
    ("batched hx for unbatched", dict(batch_size=None, hx=(np.zeros((2, 1, H)), None)),
     ValueError, ["hx[0]", str((2, H))]),
    ("unknown keyword", dict(batch=1), TypeError, ["batch"]),
]


@pytest.mark.parametrize("what,kwargs,error,words", STREAM_CASES, ids=[c[0] for c in STREAM_CASES])
def test_stream_rejects(what, kwargs, error, words):
    with pytest.raises(error) as info:
        cyrnn.LSTM(I, H, num_layers=2).stream(**kwargs)
    for word in words:
        assert word in str(info.value), (word, str(info.value))


@pytest.mark.parametrize("cell", CELLS)
def test_a_bidirectional_layer_cannot_stream(cell):
    with pytest.raises(ValueError, match="bidirectional"):
        make_model(cell, I, H, bidirectional=True).stream()
    with pytest.raises(ValueError, match="reverse=True"):
        make_model(cell, I, H, reverse=True).stream()


def test_single_state_cells_take_one_array_as_hx():
    with pytest.raises(TypeError, match="hx must be one array"):
        cyrnn.GRU(I, H).stream(hx=(np.zeros((1, 1, H)), None))
    with pytest.raises(ValueError, match=r"hx must have shape"):
        cyrnn.GRU(I, H).stream(hx=np.zeros((1, 1, H + 1)))


STEP_CASES = [
    ("rank 1 for batched", lambda s: s.step(np.zeros(I, np.float32)), ValueError,
     ["x", "(batch_size, input_size)", str((3, I))]),
    ("rank 3", lambda s: s.step(np.zeros((1, 3, I), np.float32)), ValueError, ["x"]),
    ("feature size", lambda s: s.step(np.zeros((3, I + 1), np.float32)), ValueError,
     ["x", str((3, I + 1))]),
    ("batch size", lambda s: s.step(np.zeros((2, I), np.float32)), ValueError, ["x"]),
    ("empty", lambda s: s.step(np.zeros((0, I), np.float32)), ValueError, ["x"]),
    ("complex", lambda s: s.step(np.zeros((3, I), complex)), TypeError, ["x", "complex"]),
    ("object", lambda s: s.step(np.array([[None] * I] * 3)), TypeError, ["x"]),
    ("strings", lambda s: s.step([["a"] * I] * 3), TypeError, ["x"]),
    ("ragged list", lambda s: s.step([[1.0] * I, [1.0]]), TypeError, ["x"]),
    ("None", lambda s: s.step(None), TypeError, ["x"]),
    ("out not an array", lambda s: s.step(np.zeros((3, I)), out=[[0.0] * H] * 3), TypeError,
     ["out"]),
    ("out dtype", lambda s: s.step(np.zeros((3, I)), out=np.zeros((3, H))), TypeError,
     ["out", "float32"]),
    ("out shape", lambda s: s.step(np.zeros((3, I)), out=np.zeros((3, H + 1), np.float32)),
     ValueError, ["out", str((3, H))]),
    ("out strided",
     lambda s: s.step(np.zeros((3, I)), out=np.zeros((3, 2 * H), np.float32)[:, ::2]),
     ValueError, ["out", "C-contiguous"]),
    ("out read-only",
     lambda s: s.step(np.zeros((3, I)), out=read_only(np.zeros((3, H), np.float32))),
     ValueError, ["out", "writeable"]),
    ("out byte order", lambda s: s.step(np.zeros((3, I)), out=np.zeros((3, H), ">f4")), TypeError,
     ["out"]),
]


def read_only(array):
    array.flags.writeable = False
    return array


@pytest.mark.parametrize("what,call,error,words", STEP_CASES, ids=[c[0] for c in STEP_CASES])
def test_step_rejects_and_leaves_the_state_alone(what, call, error, words):
    model = cyrnn.LSTM(I, H, num_layers=2, seed=0)
    stream = model.stream(batch_size=3, hx=random_states(model, np.random.default_rng(0), 3))
    stream.step(np.ones((3, I), np.float32))
    before = stream.state
    with pytest.raises(error) as info:
        call(stream)
    for word in words:
        assert word in str(info.value), (word, str(info.value))
    for got, want in zip(stream.state, before):
        np.testing.assert_array_equal(got, want)


def test_an_unbatched_stream_takes_one_vector():
    stream = cyrnn.GRU(I, H).stream(batch_size=None)
    assert stream.step(np.zeros(I)).shape == (H,)
    with pytest.raises(ValueError, match=r"x must have shape \(input_size,\) = \(4,\)"):
        stream.step(np.zeros((1, I)))
    with pytest.raises(ValueError, match=r"out must have shape \(H_out,\)"):
        stream.step(np.zeros(I), out=np.zeros((1, H), np.float32))


def test_out_must_not_overlap_x():
    stream = cyrnn.RNN(5, 5, seed=0).stream(batch_size=2)
    buffer = np.zeros((3, 5), np.float32)
    with pytest.raises(ValueError, match="out must not share memory with x"):
        stream.step(buffer[:2], out=buffer[1:])
    with pytest.raises(ValueError, match="out must not share memory with x"):
        stream.step(buffer[:2], out=buffer[:2])
    stream.step(buffer[:2].copy(), out=buffer[:2])  # a converted x is a copy: no overlap


def test_other_inputs_are_converted():
    """Anything real of the right shape: other dtypes, lists, strided and
    unaligned arrays, read-only ones. The step's fast path takes only C
    arrays of the stream's dtype; the others are copies."""
    model = cyrnn.LSTM(I, H, seed=0)
    x = sequence(model, 1, 2)[0]
    want = model.stream(batch_size=2).step(x)
    unaligned = np.frombuffer(b"\0" + x.tobytes(), np.float32, offset=1).reshape(x.shape)
    assert not unaligned.flags.aligned
    wide = np.zeros((2, 2 * I), np.float32)
    wide[:, ::2] = x
    for given in (x.astype(np.float64), x.tolist(), wide[:, ::2], unaligned,
                  read_only(x.copy()), np.asfortranarray(x), x.astype(">f4")):
        np.testing.assert_array_equal(model.stream(batch_size=2).step(given), want)
    ints = model.stream(batch_size=2).step(np.ones((2, I), np.int64))
    np.testing.assert_array_equal(ints, model.stream(batch_size=2).step(np.ones((2, I))))


def test_a_stream_cannot_be_pickled_or_copied():
    """Its plan points into its own buffers: a copy would share them."""
    stream = cyrnn.LSTM(I, H).stream()
    with pytest.raises(TypeError):
        pickle.dumps(stream)


def test_a_stream_made_without_the_layer_refuses_to_step():
    stream = Stream.__new__(Stream)
    with pytest.raises(RuntimeError, match="model.stream"):
        stream.step(np.zeros((1, I), np.float32))


# -- threads ---------------------------------------------------------------------------
# (a step of the RNN of 4 units is too small to release the GIL)
@pytest.mark.parametrize("cell,hidden", [("LSTM", 64), ("GRU_RESET_BEFORE", 64), ("RNN_TANH", 4)])
def test_two_streams_in_two_threads_give_the_sequential_results(cell, hidden):
    model = make_model(cell, 16, hidden, num_layers=2, seed=0)
    inputs = [sequence(model, 200, 3, seed=k) for k in range(2)]
    sequential = [streamed(model, x, batch_size=3)[0] for x in inputs]
    results, start = [None, None], threading.Barrier(2)

    def run(k):
        stream = model.stream(batch_size=3)
        start.wait()
        results[k] = np.stack([stream.step(xt) for xt in inputs[k]])

    threads = [threading.Thread(target=run, args=(k,)) for k in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for got, want in zip(results, sequential):
        np.testing.assert_array_equal(got, want)


def test_one_stream_stepped_from_two_threads_at_once_is_refused():
    """A step runs without the GIL: a second thread's step (or state, or
    reset) meanwhile would repoint its input under it. It raises instead,
    and the running steps give their results."""
    model = cyrnn.LSTM(256, 1024, seed=0)  # steps of about a millisecond
    x = sequence(model, 30, 8)
    want = streamed(model, x, batch_size=8)[0]
    stream = model.stream(batch_size=8)
    got, refused, done = [], [], threading.Event()

    def run():
        for xt in x:
            got.append(stream.step(xt))
        done.set()

    worker = threading.Thread(target=run)
    worker.start()
    interfered = False
    while not done.is_set():
        for call, changes in ((lambda: stream.step(x[0]), True), (lambda: stream.state, False),
                              (lambda: stream.reset(), True)):
            try:
                call()
            except RuntimeError as exc:
                refused.append(str(exc))
            else:
                # let through between two of the worker's steps (its GIL is
                # free only while a step runs, so hardly ever): the sequence
                # is no longer x alone
                interfered |= changes and not done.is_set()
    worker.join()
    assert refused and all("one thread at a time" in message for message in refused)
    if not interfered:
        np.testing.assert_array_equal(np.stack(got), want)


# -- instruction sets ------------------------------------------------------------------
@pytest.mark.parametrize("level", [1, 0])
def test_steps_give_the_layers_results_at_every_level(level):
    """The stream packs its weights for the level in use and runs its kernels:
    in a process capped at `level` too, its results are the layer's there."""
    script = (
        "import sys\n"
        f"sys.path.insert(0, {os.path.dirname(__file__)!r})\n"
        "import numpy as np\n"
        "from cyrnn import _cpu\n"
        "from test_stream import VARIANTS, assert_streams_as_the_layer, make_model, "
        "random_states, sequence\n"
        f"assert _cpu.kernel_level() == min({level}, _cpu.cpu_best_level())\n"
        "for cell, options in VARIANTS:\n"
        "    for dtype in (np.float32, np.float64):\n"
        "        for batch_size in (None, 1, 13):\n"
        "            model = make_model(cell, 6, 37, num_layers=2, dtype=dtype, seed=2,\n"
        "                               **options)\n"
        "            hx = random_states(model, np.random.default_rng(3), batch_size)\n"
        "            assert_streams_as_the_layer(model, sequence(model, 5, batch_size), hx,\n"
        "                                        batch_size)\n"
        "print('streams agree')\n")
    done = subprocess.run([sys.executable, "-c", script], env=level_environment(str(level)),
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert "streams agree" in done.stdout


def test_a_sequential_streams_as_it_runs():
    """Embedding -> LSTM -> Dropout -> GRU -> Linear, fed one step at a
    time, gives the rows of the whole-sequence call, and its states."""
    model = cyrnn.Sequential(cyrnn.Embedding(11, 6, seed=0), cyrnn.LSTM(6, 8, 2, seed=1),
                             cyrnn.Dropout(0.5, seed=2), cyrnn.GRU(8, 5, seed=3),
                             cyrnn.Linear(5, 11, seed=4))
    ids = np.random.default_rng(0).integers(0, 11, (7, 3))
    out, states = model(ids)
    stream = model.stream(batch_size=3)
    steps = np.stack([stream.step(ids[t]) for t in range(7)])
    np.testing.assert_allclose(steps, out, rtol=1e-6, atol=1e-6)
    for got, want in zip(stream.state, states):
        for a, b in zip(got if isinstance(got, tuple) else (got,),
                        want if isinstance(want, tuple) else (want,)):
            np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-6)
    stream.reset()
    np.testing.assert_allclose(stream.step(ids[0]), out[0], rtol=1e-6, atol=1e-6)
    with pytest.raises(ValueError, match="hx must have one entry per recurrent layer"):
        stream.reset([None])
    with pytest.raises(ValueError, match="bidirectional"):
        cyrnn.Sequential(cyrnn.GRU(2, 3, bidirectional=True)).stream()
