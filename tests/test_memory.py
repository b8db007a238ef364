"""No leaks: thousands of training and inference passes leave the resident
set flat, a dropped tape frees its buffers at once (no reference cycles),
and no call keeps references to its arguments or its model.

RSS is read from /proc/self/statm, so these tests run on Linux only."""
import gc
import os
import sys
import tracemalloc
import weakref

import numpy as np
import pytest

from helpers import make_model

pytestmark = pytest.mark.skipif(not os.path.exists("/proc/self/statm"),
                                reason="reads the resident set size from /proc (Linux)")

PAGE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096
MB = 1 << 20


def under_address_sanitizer():
    """ASan (make sanitize) keeps freed memory in quarantine and reserves its
    own arenas, so the resident set says nothing about leaks under it."""
    with open("/proc/self/maps") as f:
        return "libasan" in f.read()


needs_plain_allocator = pytest.mark.skipif(
    os.path.exists("/proc/self/maps") and under_address_sanitizer(),
    reason="RSS is meaningless under AddressSanitizer's quarantine")


def rss():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * PAGE


CONFIGS = {
    "LSTM-bidirectional-dropout": ("LSTM", dict(num_layers=2, bidirectional=True, dropout=0.2)),
    "LSTM-proj-float64": ("LSTM", dict(proj_size=3, dtype=np.float64)),
    "GRU-layers2": ("GRU", dict(num_layers=2)),
    "RNN_RELU-bidirectional-float64": ("RNN_RELU", dict(bidirectional=True, dtype=np.float64)),
}


def one_round(model, x, lengths, dhn_like):
    """One training step with and without lengths, and inference both ways."""
    y, hn, tape = model.forward(x, lengths=lengths)
    model.backward(tape, np.ones_like(y), dhn_like(hn))
    y, hn, tape = model.forward(x)
    model.backward(tape, y)
    model(x, lengths=lengths)
    model(x)


@needs_plain_allocator
@pytest.mark.parametrize("config", CONFIGS)
def test_resident_memory_is_flat_over_3000_rounds(config):
    """Measured: 0.0 MB growth for every configuration (RSS sampled every 500
    rounds, after a 300-round warm-up). Each round allocates ~10-40 kB of
    tape and outputs, so leaking any one buffer per call would add 10+ MB
    over 3000 rounds, and leaking a small C struct per call (~0.5 kB, four
    calls a round) ~6 MB; the 2 MB bound catches both with room for the
    allocator's own fluctuations."""
    cell, options = CONFIGS[config]
    model = make_model(cell, 4, 8, seed=0, **options)
    rng = np.random.default_rng(0)
    x = rng.standard_normal((12, 3, 4))
    lengths = np.array([12, 5, 9])

    def dhn_like(hn):
        return tuple(np.ones_like(s) for s in hn) if isinstance(hn, tuple) else np.ones_like(hn)

    for _ in range(300):
        one_round(model, x, lengths, dhn_like)
    gc.collect()
    before = rss()
    peak = before
    for i in range(3000):
        one_round(model, x, lengths, dhn_like)
        if i % 500 == 499:
            peak = max(peak, rss())
    gc.collect()
    growth = max(peak, rss()) - before
    assert growth < 2 * MB, f"resident set grew by {growth / MB:.2f} MB over 3000 rounds"


@needs_plain_allocator
def test_rss_probe_sees_fresh_memory():
    """The probe reads real numbers: 64 MB written to fresh pages (above
    glibc's largest mmap threshold, so never recycled heap) show up. (Small
    blocks may reuse pages freed by earlier tests, which is why the test
    above warms up first and allows no more than 2 MB of growth.)"""
    gc.collect()
    before = rss()
    kept = np.ones(64 * MB // 8)
    assert rss() - before > 48 * MB
    del kept


def tape_arrays(tape):
    arrays = []
    for layer in tape.layers:
        arrays += [v for v in layer.fields().values() if v is not None]
        for direction in layer.dirs:
            arrays += [v for v in direction.fields().values() if isinstance(v, np.ndarray)]
    return arrays


def tape_buffers(tape, model):
    """Weak references to every array the tape owns (not the model's own
    parameters, which it borrows)."""
    params = list(model.parameters().values())
    refs = [weakref.ref(tape.layout)]
    for array in tape_arrays(tape):
        if not any(np.shares_memory(array, p) for p in params):
            refs.append(weakref.ref(array))
    return refs


@pytest.mark.parametrize("cell", ["LSTM", "GRU", "RNN_TANH"])
def test_dropped_tape_frees_its_buffers_at_once(cell):
    """Tape has __slots__ without __weakref__, so the check holds weak
    references to what it owns (the layout and every buffer) instead. By
    reference counting alone, without gc.collect() (a reference cycle through
    the tape would keep megabytes alive until the next cycle collection),
    each must die or be back in the model's workspace for the next pass, and
    they all die with the model."""
    model = make_model(cell, 4, 8, num_layers=2, bidirectional=True, dropout=0.3, seed=0)
    x = np.random.default_rng(0).standard_normal((7, 3, 4))
    gc.disable()
    try:
        y, hn, tape = model.forward(x, lengths=[7, 2, 5])
        grads = model.backward(tape, np.ones_like(y))
        refs = tape_buffers(tape, model)
        assert len(refs) > 10
        del y, hn, tape, grads
        cached = [id(a) for a in model._workspace._free.values()]
        alive = [r() for r in refs if r() is not None]
        assert all(id(a) in cached for a in alive), "a tape buffer outlived the tape"
        del alive, model
        alive = [r() for r in refs if r() is not None]
        assert not alive, f"{len(alive)} tape buffers outlived the model"
    finally:
        gc.enable()


@pytest.mark.parametrize("cell", ["LSTM", "GRU"])
def test_live_tapes_never_share_a_buffer(cell):
    """Recycled buffers go only to a pass whose tape is gone: two tapes alive
    at once, or a tape and a later one, never share memory."""
    model = make_model(cell, 4, 8, num_layers=2, bidirectional=True, seed=0)
    rng = np.random.default_rng(0)
    x1, x2 = rng.standard_normal((2, 7, 3, 4))
    _, _, old = model.forward(x1)  # dropped below, so its buffers are recycled
    del old
    y1, _, tape1 = model.forward(x1)
    y2, _, tape2 = model.forward(x2)
    first = [a for a in tape_arrays(tape1)]
    for array in tape_arrays(tape2):
        assert not any(np.shares_memory(array, other) for other in first)
    g1 = model.backward(tape1, np.ones_like(y1))
    model.backward(tape2, np.ones_like(y2))
    fresh = model.backward(model.forward(x1)[2], np.ones_like(y1))
    np.testing.assert_array_equal(g1.input, fresh.input)


def test_dropped_tape_returns_its_memory():
    """tracemalloc (numpy reports its buffers to it) sees the tape's memory
    come back when the tape is dropped, even while y, h_n and the gradients
    are kept."""
    model = make_model("LSTM", 16, 64, num_layers=2, seed=0)
    x = np.random.default_rng(0).standard_normal((200, 8, 16)).astype(np.float32)
    # warm up, which also fills the model's cache of BPTT scratch (kept on
    # purpose between calls, see _workspace.py)
    y, _, tape = model.forward(x)
    model.backward(tape, np.ones_like(y))
    del y, tape
    gc.collect()
    tracemalloc.start()
    try:
        base = tracemalloc.get_traced_memory()[0]
        y, hn, tape = model.forward(x)
        grads = model.backward(tape, np.ones_like(y))
        # a second tape while the first lives cannot reuse its buffers: the
        # tape holds gates (N, 4H) and more per layer, several times y
        before_second = tracemalloc.get_traced_memory()[0]
        second = model.forward(x)[2]
        assert tracemalloc.get_traced_memory()[0] - before_second > 4 * y.nbytes
        del second, tape
        without_tape = tracemalloc.get_traced_memory()[0]
        kept = y.nbytes + sum(s.nbytes for s in hn) + grads.input.nbytes \
            + sum(g.nbytes for g in grads.hx) + sum(g.nbytes for g in grads.params.values())
        # y may still share the last layer's output buffer; allow it and 64 kB slack
        assert without_tape - base < kept + y.nbytes + 64 * 1024, \
            (without_tape - base, kept)
        del y, hn, grads
        gc.collect()
        assert tracemalloc.get_traced_memory()[0] - base < 64 * 1024
    finally:
        tracemalloc.stop()


@pytest.mark.parametrize("cell", ["LSTM", "GRU", "RNN_RELU"])
def test_calls_keep_no_references_to_arguments_or_model(cell):
    """Reference counts of every argument and of the model are back where
    they were after 200 passes: no reference leaked in the Cython layer."""
    model = make_model(cell, 3, 5, num_layers=2, bidirectional=True, dtype=np.float64, seed=1)
    rng = np.random.default_rng(1)
    x = rng.standard_normal((6, 2, 3))
    lengths = np.array([6, 3])
    _, hn = model(x)
    hx = tuple(np.zeros_like(s) for s in hn) if isinstance(hn, tuple) else np.zeros_like(hn)
    dy = rng.standard_normal((6, 2, 10))
    parts = [x, lengths, dy, model] + list(hx if isinstance(hx, tuple) else (hx,))
    for _ in range(3):  # let any caches settle
        y, _, tape = model.forward(x, hx, lengths=lengths)
        model.backward(tape, dy, hx)
        model(x, hx, lengths=lengths)
    del y, tape
    gc.collect()
    before = [sys.getrefcount(p) for p in parts]
    for _ in range(200):
        y, _, tape = model.forward(x, hx, lengths=lengths)
        model.backward(tape, dy, hx)
        model(x, hx, lengths=lengths)
        model(x, hx)
    del y, tape
    gc.collect()
    assert [sys.getrefcount(p) for p in parts] == before
