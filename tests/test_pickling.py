"""Models travel between processes: every layer, a Sequential and the
optimizers pickle, and arrive giving identical outputs and gradients (the
locks, scratch buffers and caches are built anew on arrival)."""
import concurrent.futures
import multiprocessing
import pickle

import numpy as np
import pytest

import cyrnn
from cyrnn import losses, optim


def tied_language_model():
    emb, dec = cyrnn.Embedding(11, 4, seed=0), cyrnn.Linear(4, 11, seed=3)
    dec.tie("weight", emb)
    return cyrnn.Sequential(emb, cyrnn.LSTM(4, 4, 2, dropout=0.3, seed=1),
                            cyrnn.Dropout(0.2, seed=2), dec)


MODELS = {
    "LSTM_peephole_bidir": (lambda: cyrnn.LSTM(3, 5, 2, bidirectional=True, peephole=True,
                                               dropout=0.2, seed=0), "x"),
    "GRU_reset_before": (lambda: cyrnn.GRU(3, 4, reset_after=False, seed=1), "x"),
    "RNN_relu_f64": (lambda: cyrnn.RNN(3, 4, nonlinearity="relu", dtype=np.float64, seed=2), "x"),
    "Linear": (lambda: cyrnn.Linear(3, 2, seed=3), "x"),
    "Dropout": (lambda: cyrnn.Dropout(0.4, seed=4), "x"),
    "Embedding": (lambda: cyrnn.Embedding(11, 3, padding_idx=0, seed=5), "ids"),
    "Sequential_tied": (tied_language_model, "ids"),
}


def inputs(kind):
    rng = np.random.default_rng(0)
    return rng.integers(0, 11, (5, 2)) if kind == "ids" else rng.standard_normal((5, 2, 3))


def training_pass(model, x):
    """(out, the gradients) of one forward/backward with dout = 1."""
    result = model.forward(x)
    out, tape = result[0], result[-1]
    g = model.backward(tape, np.ones_like(out))
    return out, g


@pytest.mark.parametrize("name", list(MODELS))
def test_round_trip_gives_identical_outputs_and_gradients(name):
    make, kind = MODELS[name]
    model, x = make(), inputs(kind)
    model(x)  # a cache and a workspace exist now
    copy = pickle.loads(pickle.dumps(model))
    assert repr(copy) == repr(model)
    a, b = model(x), copy(x)
    np.testing.assert_array_equal(a[0] if isinstance(a, tuple) else a,
                                  b[0] if isinstance(b, tuple) else b)
    (out_a, g_a), (out_b, g_b) = training_pass(model, x), training_pass(copy, x)
    np.testing.assert_array_equal(out_a, out_b)  # the same dropout masks: the generator travelled
    for key in g_a.params:
        np.testing.assert_array_equal(np.asarray(g_a.params[key]), np.asarray(g_b.params[key]))
    for key, value in copy.parameters().items():
        value[...] = 0  # the copy's arrays are its own
        assert np.any(model.parameters()[key] != 0) or not model.parameters()[key].size


def test_ties_survive_the_trip():
    copy = pickle.loads(pickle.dumps(tied_language_model()))
    assert copy[3].parameters()["weight"] is copy[0].parameters()["weight"]
    assert copy.tied() == {"3.weight": "0.weight"}


def test_a_model_and_its_optimizer_travel_together_and_train_on():
    model = tied_language_model()
    opt = optim.Adam(model.parameters(), lr=1e-2)
    ids = inputs("ids")

    def step(model, opt):
        out, _, tape = model.forward(ids[:-1])
        loss, dout = losses.softmax_cross_entropy(out, ids[1:])
        opt.step(model.backward(tape, dout).params)

    step(model, opt)
    model2, opt2 = pickle.loads(pickle.dumps((model, opt)))
    assert all(opt2.params[k] is v for k, v in model2.parameters().items())
    for _ in range(3):
        step(model, opt)
        step(model2, opt2)
    for key, value in model.state_dict().items():
        np.testing.assert_array_equal(model2.state_dict()[key], value)


def _outputs_in_worker(model, x):
    return model(x)[0]


def test_a_worker_process_computes_what_this_one_does():
    model, x = cyrnn.GRU(3, 4, seed=0), inputs("x")
    context = multiprocessing.get_context("spawn")  # nothing inherited: the pickle is all
    with concurrent.futures.ProcessPoolExecutor(1, mp_context=context) as pool:
        out = pool.submit(_outputs_in_worker, model, x).result(timeout=120)
    np.testing.assert_array_equal(out, model(x)[0])

