"""The single-step cells (cyrnn.cells: LSTMCell, GRUCell, RNNCell): their
parameters, calls and tapes; gradients against central differences; steps
against the numpy reference and against torch's cells (fixtures under
tests/data/cells, written by tools/make_fixtures.py); a cell unrolled by
hand against the layer over the sequence; moving weights between cells and
layers; bad input; properties over shapes and dtypes (hypothesis)."""
import json
import pathlib

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

import cyrnn
from cyrnn import _base, _cells
from cyrnn.cells import CellTape, GRUCell, LSTMCell, RNNCell
from helpers import (CELLS, WITH_CELL_STATE, assert_same_gradients, finite_difference,
                     make_model, tolerances)
from reference import Reference

I, H, B = 3, 4, 2
CLASS_OF = {"LSTM": LSTMCell, "GRU": GRUCell, "RNN": RNNCell}


def make_cell(key, input_size=I, hidden_size=H, **options):
    """The cell computing the registry's `key` (as helpers.make_model does
    for layers): LSTM_PEEPHOLE is LSTMCell(peephole=True) and so on."""
    spec = _cells.BY_KEY[key]
    return CLASS_OF[spec.layer](input_size, hidden_size, **dict(spec.options), **options)


def random_state(rng, key, shape, dtype=np.float64):
    draw = (lambda: (0.5 * rng.standard_normal(shape)).astype(dtype))  # noqa: E731
    return (draw(), draw()) if key in WITH_CELL_STATE else draw()


def random_problem(key, dtype, T, seed):
    """(xs (T, B, I), hx, dy (T, B, H), dL/d final state) for T steps of a
    `key` cell, drawn from default_rng(seed)."""
    rng = np.random.default_rng(seed)
    xs = rng.standard_normal((T, B, I)).astype(dtype)
    hx = random_state(rng, key, (B, H), dtype)
    dy = rng.standard_normal((T, B, H)).astype(dtype)
    return xs, hx, dy, random_state(rng, key, (B, H), dtype)


def states(value):
    """A cell's state (or its gradient) as a tuple: (h,) or (h, c)."""
    return value if isinstance(value, tuple) else (value,)


def step_loss(out, dh):
    """sum(h1 * dh) [+ sum(c1 * dc)]: its gradient is dh (and dc)."""
    return sum(np.sum(a * b) for a, b in zip(states(out), states(dh)))


def backward(cell, tape, dh):
    """cell.backward with dh as a cell's state is laid out: (dh, dc) or dh."""
    return cell.backward(tape, *states(dh))


def kink_free(cell, key):
    """relu's kink makes central differences lie: move pre-activations off it."""
    if key == "RNN_RELU":
        cell.load_state_dict({k: v + (0.3 if k.startswith("bias") else 0.0)
                              for k, v in cell.state_dict().items()})


# -- construction, parameters and the calls ---------------------------------
EXPECTED_PARAMETERS = {
    "LSTM": {"weight_ih": (16, I), "weight_hh": (16, H), "bias_ih": (16,), "bias_hh": (16,)},
    "LSTM_PEEPHOLE": {"weight_ih": (16, I), "weight_hh": (16, H), "bias_ih": (16,),
                      "bias_hh": (16,), "weight_peephole": (3, H)},
    "GRU": {"weight_ih": (12, I), "weight_hh": (12, H), "bias_ih": (12,), "bias_hh": (12,)},
    "GRU_RESET_BEFORE": {"weight_ih": (12, I), "weight_hh": (12, H), "bias_ih": (12,),
                         "bias_hh": (12,)},
    "RNN_TANH": {"weight_ih": (H, I), "weight_hh": (H, H), "bias_ih": (H,), "bias_hh": (H,)},
    "RNN_RELU": {"weight_ih": (H, I), "weight_hh": (H, H), "bias_ih": (H,), "bias_hh": (H,)},
}


def test_every_registry_entry_has_a_cell():
    assert set(EXPECTED_PARAMETERS) == set(CELLS)


@pytest.mark.parametrize("key", CELLS)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_parameters_are_torchs_cell_names_in_order(key, dtype):
    cell = make_cell(key, dtype=dtype, seed=0)
    params = cell.parameters()
    assert list(params) == list(EXPECTED_PARAMETERS[key])  # torch's order
    assert {k: v.shape for k, v in params.items()} == EXPECTED_PARAMETERS[key]
    assert all(v.dtype == dtype for v in params.values())
    assert cell.dtype == dtype
    no_bias = make_cell(key, bias=False, seed=0)
    assert "bias_ih" not in no_bias.parameters() and "bias_hh" not in no_bias.parameters()
    assert not no_bias.bias and cell.bias


@pytest.mark.parametrize("key", CELLS)
def test_default_initialisation_is_torchs_and_reproducible(key):
    cell = make_cell(key, I, 9, seed=5)
    again, other = make_cell(key, I, 9, seed=5), make_cell(key, I, 9, seed=6)
    layer = make_model(key, I, 9, seed=5)
    for name, value in cell.parameters().items():
        assert np.abs(value).max() <= 1 / 3  # U(-1/sqrt(H), 1/sqrt(H))
        np.testing.assert_array_equal(value, again.parameters()[name])
        assert not np.array_equal(value, other.parameters()[name])
        # the same draws as the layer's layer 0 of that seed
        np.testing.assert_array_equal(value, layer.parameters()[name + "_l0"])


@pytest.mark.parametrize("key", CELLS)
def test_parameters_are_the_held_layers_arrays(key):
    """weight_ih is the held layer's weight_ih_l0: the same object, so an
    optimizer stepping parameters() in place steps the layer that runs."""
    cell = make_cell(key, seed=1)
    layer_params = cell._layer.parameters()
    for name, value in cell.parameters().items():
        assert value is layer_params[name + "_l0"]
    x = np.random.default_rng(0).standard_normal((B, I))
    before = cell(x)
    for value in cell.parameters().values():
        value *= 0.5  # in place, as cyrnn.optim does
    after = cell(x)
    twin = make_cell(key, seed=1)
    twin.load_state_dict({k: v * 0.5 for k, v in twin.state_dict().items()})
    for a, b, c in zip(states(after), states(twin(x)), states(before)):
        np.testing.assert_array_equal(a, b)
        assert not np.array_equal(a, c)


def test_state_dict_returns_copies_and_load_state_dict_copies_in():
    cell = LSTMCell(I, H, seed=0)
    sd = cell.state_dict()
    sd["weight_ih"][...] = 7.0
    assert not np.any(cell.parameters()["weight_ih"] == 7.0)
    new = {k: np.full(v.shape, 0.25) for k, v in sd.items()}  # float64 into float32
    cell.load_state_dict(new)
    new["weight_hh"][...] = 3.0  # the cell copied
    for name, value in cell.parameters().items():
        assert value.dtype == np.float32
        np.testing.assert_array_equal(value, 0.25)
    cell.load_state_dict({"bias_hh": np.ones(4 * H)}, strict=False)
    np.testing.assert_array_equal(cell.parameters()["bias_hh"], 1.0)
    np.testing.assert_array_equal(cell.parameters()["bias_ih"], 0.25)


def test_load_state_dict_takes_a_torch_cells_names():
    """The names and shapes of torch.nn.LSTMCell(I, H).state_dict()."""
    rng = np.random.default_rng(0)
    torch_like = {"weight_ih": rng.standard_normal((4 * H, I)).tolist(),
                  "weight_hh": rng.standard_normal((4 * H, H)),
                  "bias_ih": rng.standard_normal(4 * H), "bias_hh": rng.standard_normal(4 * H)}
    cell = LSTMCell(I, H, dtype=np.float64)
    cell.load_state_dict(torch_like)
    np.testing.assert_array_equal(cell.parameters()["weight_ih"], torch_like["weight_ih"])


@pytest.mark.parametrize("build,text", [
    (lambda: LSTMCell(16, 32), "LSTMCell(16, 32)"),
    (lambda: LSTMCell(16, 32, bias=False), "LSTMCell(16, 32, bias=False)"),
    (lambda: LSTMCell(16, 32, False), "LSTMCell(16, 32, bias=False)"),
    (lambda: LSTMCell(16, 32, peephole=True), "LSTMCell(16, 32, peephole=True)"),
    (lambda: GRUCell(16, 32), "GRUCell(16, 32)"),
    (lambda: GRUCell(16, 32, reset_after=False), "GRUCell(16, 32, reset_after=False)"),
    (lambda: GRUCell(16, 32, dtype=np.float64), "GRUCell(16, 32, dtype=float64)"),
    (lambda: RNNCell(16, 32), "RNNCell(16, 32)"),
    (lambda: RNNCell(16, 32, True, "relu"), "RNNCell(16, 32, nonlinearity=relu)"),
    (lambda: RNNCell(16, 32, bias=False, nonlinearity="relu", dtype="float64"),
     "RNNCell(16, 32, bias=False, nonlinearity=relu, dtype=float64)"),
])
def test_repr_is_torchs(build, text):
    assert repr(build()) == text


def test_configuration_is_readable():
    cell = RNNCell(3, 5, False, "relu", dtype=np.float64)
    assert (cell.input_size, cell.hidden_size, cell.bias, cell.nonlinearity, cell.dtype) == \
        (3, 5, False, "relu", np.float64)
    assert LSTMCell(2, 3, peephole=True).peephole and not LSTMCell(2, 3).peephole
    assert not GRUCell(2, 3, reset_after=False).reset_after and GRUCell(2, 3).reset_after


@pytest.mark.parametrize("key", CELLS)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_call_shapes_fresh_arrays_and_forward(key, dtype):
    cell = make_cell(key, dtype=dtype, seed=2)
    rng = np.random.default_rng(2)
    x = rng.standard_normal((B, I))
    hx = random_state(rng, key, (B, H))
    x_saved, hx_saved = x.copy(), tuple(s.copy() for s in states(hx))
    out = cell(x, hx)
    assert isinstance(out, tuple) == (key in WITH_CELL_STATE)
    for value in states(out):
        assert value.shape == (B, H) and value.dtype == dtype
        assert value.flags.c_contiguous
        assert not np.shares_memory(value, x)
        assert not any(np.shares_memory(value, s) for s in states(hx))
    np.testing.assert_array_equal(x, x_saved)  # inputs untouched
    for s, saved in zip(states(hx), hx_saved):
        np.testing.assert_array_equal(s, saved)
    if key in WITH_CELL_STATE:
        assert not np.shares_memory(out[0], out[1])
    again = cell(x, hx)
    for a, b in zip(states(out), states(again)):
        assert not np.shares_memory(a, b)
        np.testing.assert_array_equal(a, b)
    # the training step computes the same numbers to the bit
    trained, tape = cell.forward(x, hx)
    assert isinstance(tape, CellTape)
    for a, b in zip(states(out), states(trained)):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("key", CELLS)
def test_unbatched_is_a_batch_of_one(key):
    cell = make_cell(key, dtype=np.float64, seed=3)
    rng = np.random.default_rng(3)
    x, hx = rng.standard_normal(I), random_state(rng, key, (H,))
    out, tape = cell.forward(x, hx)
    out1, tape1 = cell.forward(x[None], tuple(s[None] for s in states(hx))
                               if key in WITH_CELL_STATE else hx[None])
    for a, b in zip(states(out), states(out1)):
        assert a.shape == (H,)
        np.testing.assert_array_equal(a, b[0])
    dh = random_state(rng, key, (H,))
    g = backward(cell, tape, dh)
    g1 = backward(cell, tape1, tuple(s[None] for s in states(dh)) if isinstance(dh, tuple)
                  else dh[None])
    assert g.input.shape == (I,)
    np.testing.assert_array_equal(g.input, g1.input[0])
    for a, b in zip(states(g.hx), states(g1.hx)):
        assert a.shape == (H,)
        np.testing.assert_array_equal(a, b[0])
    for name in g.params:
        np.testing.assert_array_equal(g.params[name], g1.params[name])


@pytest.mark.parametrize("key", CELLS)
def test_hx_none_means_zeros(key):
    cell = make_cell(key, seed=4)
    x = np.random.default_rng(4).standard_normal((B, I))
    zeros = np.zeros((B, H))
    for a, b in zip(states(cell(x)), states(cell(x, (zeros, zeros) if key in WITH_CELL_STATE
                                                    else zeros))):
        np.testing.assert_array_equal(a, b)


def test_either_part_of_an_lstm_state_may_be_none():
    cell = LSTMCell(I, H, seed=0)
    rng = np.random.default_rng(0)
    x, h0, c0, zeros = (rng.standard_normal((B, I)), rng.standard_normal((B, H)),
                        rng.standard_normal((B, H)), np.zeros((B, H)))
    for hx, full in (((None, c0), (zeros, c0)), ((h0, None), (h0, zeros)),
                     ([h0, c0], (h0, c0))):
        for a, b in zip(cell(x, hx), cell(x, full)):
            np.testing.assert_array_equal(a, b)
    out, tape = cell.forward(x, (h0, c0))
    both = cell.backward(tape, np.zeros((B, H)), np.zeros((B, H)))
    for dh, dc in ((None, None), (np.zeros((B, H)), None), (None, np.zeros((B, H)))):
        assert_same_gradients(cell.backward(tape, dh, dc), both)


@pytest.mark.parametrize("key", ["LSTM", "GRU", "RNN_TANH"])
def test_any_memory_layout_gives_the_same_numbers(key):
    cell = make_cell(key, seed=5)
    rng = np.random.default_rng(5)
    x, h = rng.standard_normal((B, I)), rng.standard_normal((B, H))
    expected = cell(x, (h, h) if key == "LSTM" else h)
    read_only = x.copy()
    read_only.setflags(write=False)
    for variant in (np.asfortranarray(x), np.repeat(x, 2, axis=1)[:, ::2], read_only,
                    x.tolist(), x.astype(np.float32)):
        hv = np.asfortranarray(h)
        got = cell(variant, (hv, hv) if key == "LSTM" else hv)
        for a, b in zip(states(got), states(expected)):
            np.testing.assert_array_equal(a, b)
    ints = np.arange(B * I).reshape(B, I) % 3 - 1
    for a, b in zip(states(cell(ints)), states(cell(ints.astype(np.float32)))):
        np.testing.assert_array_equal(a, b)


# -- gradients against central differences, in float64 ----------------------
GRADIENT_CASES = [(key, name) for key in CELLS for name in ("batched", "unbatched", "no_bias")]


@pytest.mark.parametrize("key,case", GRADIENT_CASES, ids=[f"{k}-{c}" for k, c in GRADIENT_CASES])
def test_backward_matches_finite_differences(key, case):
    cell = make_cell(key, bias=case != "no_bias", dtype=np.float64, seed=6)
    kink_free(cell, key)
    rng = np.random.default_rng(6)
    shape = (H,) if case == "unbatched" else (3, H)
    x = rng.standard_normal(shape[:-1] + (I,))
    hx, dh = random_state(rng, key, shape), random_state(rng, key, shape)
    out, tape = cell.forward(x, hx)
    g = backward(cell, tape, dh)

    def loss():
        return step_loss(cell(x, hx), dh)

    np.testing.assert_allclose(g.input, finite_difference(loss, x), rtol=1e-6, atol=1e-8)
    assert isinstance(g.hx, tuple) == (key in WITH_CELL_STATE)
    for state, grad in zip(states(hx), states(g.hx)):
        np.testing.assert_allclose(grad, finite_difference(loss, state), rtol=1e-6, atol=1e-8)
    params = cell.parameters()
    assert list(g.params) == list(params)
    for name, value in params.items():
        assert g.params[name].shape == value.shape and g.params[name].dtype == np.float64
        np.testing.assert_allclose(g.params[name], finite_difference(loss, value),
                                   rtol=1e-6, atol=1e-8, err_msg=name)


# -- a few steps against the numpy reference --------------------------------
def unroll(cell, xs, hx):
    """The cell over xs[0], xs[1], ...: the outputs h_t, the final state and
    the tapes."""
    outputs, tapes = [], []
    for x in xs:
        hx, tape = cell.forward(x, hx)
        outputs.append(states(hx)[0])
        tapes.append(tape)
    return np.stack(outputs), hx, tapes


def unroll_backward(cell, tapes, dy, dhn):
    """Backward through the unrolled steps, chained by hand: the gradient
    reaching h_t is dy[t] plus what step t+1 sends back to its h_{t-1}."""
    dstate, dxs, params = dhn, [None] * len(tapes), {}
    for t in reversed(range(len(tapes))):
        parts = states(dstate)
        dh = dy[t] if parts[0] is None else parts[0] + dy[t]
        g = cell.backward(tapes[t], dh, *parts[1:])
        dxs[t], dstate = g.input, g.hx
        for name, value in g.params.items():
            params[name] = params.get(name, 0) + value
    return np.stack(dxs), dstate, params


@pytest.mark.parametrize("key", CELLS)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("bias", [True, False])
def test_steps_match_the_numpy_reference(key, dtype, bias):
    cell = make_cell(key, dtype=dtype, bias=bias, seed=7)
    xs, hx, dy, dhn = random_problem(key, dtype, T=5, seed=7)
    ys, final, tapes = unroll(cell, xs, hx)
    dxs, dhx, grads = unroll_backward(cell, tapes, dy, dhn)

    # the reference in float64, from the cell's own (float32 or float64) weights
    wide = {k: v.astype(np.float64) for k, v in cell.state_dict().items()}
    ref = Reference(key, wide, suffix="")
    h0, c0 = (states(hx) + (None,))[:2]
    ry, rh, rc, rtape = ref.forward(xs.astype(np.float64), h0, c0, keep=True)
    dh_n, dc_n = (states(dhn) + (None,))[:2]
    rdx, rdh0, rdc0, rgrads = ref.backward(rtape, dy.astype(np.float64), dh_n, dc_n)

    tol = dict(rtol=1e-10, atol=1e-12) if dtype == np.float64 else dict(rtol=2e-4, atol=2e-5)
    np.testing.assert_allclose(ys, ry, **tol)
    np.testing.assert_allclose(states(final)[0], rh, **tol)
    np.testing.assert_allclose(dxs, rdx, **tol)
    np.testing.assert_allclose(states(dhx)[0], rdh0, **tol)
    if key in WITH_CELL_STATE:
        np.testing.assert_allclose(final[1], rc, **tol)
        np.testing.assert_allclose(dhx[1], rdc0, **tol)
    assert set(grads) == set(rgrads)
    for name, value in rgrads.items():
        np.testing.assert_allclose(grads[name], value, err_msg=name, **tol)


# -- against torch's cells (fixtures written by tools/make_fixtures.py) -----
DATA = pathlib.Path(__file__).parent / "data" / "cells"
FIXTURES = sorted(DATA.glob("cell_*.npz"))


def test_cell_fixture_set_is_complete():
    kinds = {"lstm", "gru", "rnn_tanh", "rnn_relu"}
    names = {path.stem for path in FIXTURES}
    assert len(FIXTURES) == 56
    for kind in kinds:
        for dtype in ("float32", "float64"):
            for case in ("base", "no_bias", "no_hx", "batch_of_one", "unbatched",
                         "unbatched_no_hx", "unbatched_no_bias"):
                assert f"cell_{kind}_{case}_{dtype}" in names


def load_cell_case(path):
    with np.load(path, allow_pickle=False) as data:
        arrays = {k: data[k] for k in data.files}
    config = json.loads(str(arrays.pop("config")))
    options = {"nonlinearity": config["nonlinearity"]} if config["cell"] == "RNNCell" else {}
    cell = {"LSTMCell": LSTMCell, "GRUCell": GRUCell, "RNNCell": RNNCell}[config["cell"]](
        config["input_size"], config["hidden_size"], config["bias"], dtype=config["dtype"],
        **options)
    cell.load_state_dict({k[len("param."):]: v for k, v in arrays.items()
                          if k.startswith("param.")})
    return cell, config, arrays


@pytest.mark.parametrize("path", FIXTURES, ids=[p.stem for p in FIXTURES])
def test_matches_torch(path):
    cell, config, ref = load_cell_case(path)
    is_lstm = config["cell"] == "LSTMCell"
    tol = tolerances(cell.dtype)
    assert ref["x"].ndim == (1 if config["unbatched"] else 2)
    if config["no_hx"]:
        hx = None
    else:
        hx = (ref["h0"], ref["c0"]) if is_lstm else ref["h0"]
    out = cell(ref["x"], hx)
    out_train, tape = cell.forward(ref["x"], hx)
    h1 = out[0] if is_lstm else out
    np.testing.assert_allclose(h1, ref["h1"], **tol)
    if is_lstm:
        np.testing.assert_allclose(out[1], ref["c1"], **tol)
    for a, b in zip(states(out), states(out_train)):
        np.testing.assert_array_equal(a, b)

    g = cell.backward(tape, ref["dh"], ref["dc"]) if is_lstm else cell.backward(tape, ref["dh"])
    np.testing.assert_allclose(g.input, ref["grad.input"], **tol)
    if hx is not None:
        np.testing.assert_allclose(states(g.hx)[0], ref["grad.h0"], **tol)
        if is_lstm:
            np.testing.assert_allclose(g.hx[1], ref["grad.c0"], **tol)
    expected = {k[len("grad."):]: v for k, v in ref.items()
                if k.startswith("grad.") and k not in ("grad.input", "grad.h0", "grad.c0")}
    assert list(g.params) == list(expected)
    for name, value in expected.items():
        np.testing.assert_allclose(g.params[name], value, err_msg=name, **tol)


# -- training by steps: the cell unrolled by hand is the layer --------------
@pytest.mark.parametrize("key", CELLS)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_a_cell_unrolled_by_hand_trains_as_the_layer(key, dtype):
    cell = make_cell(key, dtype=dtype, seed=8)
    layer = cell.to_layer()
    xs, hx, dy, dhn = random_problem(key, dtype, T=6, seed=8)

    ys, final, tapes = unroll(cell, xs, hx)
    dxs, dhx, grads = unroll_backward(cell, tapes, dy, dhn)

    layer_hx = tuple(s[None] for s in states(hx)) if key in WITH_CELL_STATE else hx[None]
    y, hn, tape = layer.forward(xs, layer_hx)
    g = layer.backward(tape, dy, tuple(s[None] for s in states(dhn))
                       if key in WITH_CELL_STATE else dhn[None])
    # Forward: the same kernels on the same rows, step after step.
    np.testing.assert_array_equal(ys, y)
    for a, b in zip(states(final), states(hn)):
        np.testing.assert_array_equal(a, b[0])
    # Backward: the layer sums the weight gradients over all steps at once.
    tol = tolerances(dtype) if dtype == np.float64 else dict(rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(dxs, g.input, **tol)
    for a, b in zip(states(dhx), states(g.hx)):
        np.testing.assert_allclose(a, b[0], **tol)
    assert set(grads) == {name[:-3] for name in g.params}
    for name, value in grads.items():
        np.testing.assert_allclose(value, g.params[name + "_l0"], err_msg=name, **tol)


# -- tapes --------------------------------------------------------------------
@pytest.mark.parametrize("key", ["LSTM_PEEPHOLE", "GRU", "GRU_RESET_BEFORE", "RNN_RELU"])
def test_backward_uses_the_weights_forward_used(key):
    """An optimizer stepping parameters() in place between forward and
    backward does not change the gradients (nor make the tape stale); a
    tape may be replayed."""
    cell = make_cell(key, dtype=np.float64, seed=9)
    rng = np.random.default_rng(9)
    x, hx, dh = rng.standard_normal((B, I)), random_state(rng, key, (B, H)), \
        random_state(rng, key, (B, H))
    out, tape = cell.forward(x, hx)
    before = backward(cell, tape, dh)
    for value in cell.parameters().values():
        value += 0.5
    after = backward(cell, tape, dh)
    np.testing.assert_array_equal(after.input, before.input)
    for a, b in zip(states(after.hx), states(before.hx)):
        np.testing.assert_array_equal(a, b)
    for name in before.params:
        np.testing.assert_array_equal(after.params[name], before.params[name])


def test_tapes_follow_the_layers_rules():
    cell, other = GRUCell(I, H, seed=0), GRUCell(I, H, seed=0)
    x, dh = np.zeros((B, I)), np.zeros((B, H))
    _, tape = cell.forward(x)
    assert "GRUCell(3, 4)" in repr(tape)
    _, other_tape = other.forward(x)
    with pytest.raises(ValueError, match="another cell"):
        cell.backward(other_tape, dh)
    _, _, layer_tape = cell._layer.forward(x[None])
    with pytest.raises(TypeError, match="tape"):
        cell.backward(layer_tape, dh)
    with pytest.raises(TypeError, match="tape"):
        cell._layer.backward(tape, dh[None])
    cell.backward(tape, dh)
    cell.load_state_dict(cell.state_dict())
    with pytest.raises(ValueError, match="stale"):
        cell.backward(tape, dh)
    _, fresh = cell.forward(x)
    cell.load_state_dict({"bias_hh": np.zeros(3 * H)}, strict=False)  # partial: stale too
    with pytest.raises(ValueError, match="stale"):
        cell.backward(fresh, dh)


def test_gradients_are_fresh_arrays():
    cell = LSTMCell(I, H, seed=0)
    x, dh = np.ones((B, I)), np.ones((B, H))
    _, tape = cell.forward(x)
    g1, g2 = cell.backward(tape, dh, dh), cell.backward(tape, dh, dh)
    assert isinstance(g1, cyrnn.Gradients)
    for a, b in zip((g1.input, *g1.hx, *g1.params.values()),
                    (g2.input, *g2.hx, *g2.params.values())):
        assert not np.shares_memory(a, b)
        for p in cell.parameters().values():
            assert not np.shares_memory(a, p)


# -- moving weights between layers and cells ----------------------------------
def test_a_bidirectional_layers_reverse_direction_to_a_cell_and_back():
    """Layer 1's reverse direction of a 2-layer bidirectional LSTM as a cell:
    stepping it backwards over layer 0's output gives that half of y; its
    weights, changed, go back into that direction and nowhere else."""
    T = 5
    lstm = cyrnn.LSTM(I, H, num_layers=2, bidirectional=True, dtype=np.float64, seed=10)
    rng = np.random.default_rng(10)
    x = rng.standard_normal((T, B, I))
    h0, c0 = rng.standard_normal((4, B, H)), rng.standard_normal((4, B, H))
    y, (h_n, c_n) = lstm(x, (h0, c0))
    below = cyrnn.LSTM(I, H, bidirectional=True, dtype=np.float64)
    below.load_state_dict({k: v for k, v in lstm.state_dict().items() if "_l0" in k})
    y0, _ = below(x, (h0[:2], c0[:2]))  # layer 0's output, layer 1's input

    cell = LSTMCell.from_layer(lstm, layer=1, reverse=True)
    assert (cell.input_size, cell.hidden_size, cell.dtype) == (2 * H, H, np.float64)
    sd = lstm.state_dict()
    for name, value in cell.state_dict().items():
        np.testing.assert_array_equal(value, sd[name + "_l1_reverse"])
        assert not np.shares_memory(cell.parameters()[name],
                                    lstm.parameters()[name + "_l1_reverse"])
    state = (h0[3], c0[3])
    for t in reversed(range(T)):
        state = cell(y0[t], state)
        np.testing.assert_allclose(state[0], y[t, :, H:], rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(state[0], h_n[3], rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(state[1], c_n[3], rtol=1e-12, atol=1e-14)

    # and back: the cell's weights, changed, into the same place
    _, _, stale_tape = lstm.forward(x)
    cell.load_state_dict({k: v + 1.0 for k, v in cell.state_dict().items()})
    cell.into_layer(lstm, layer=1, reverse=True)
    after = lstm.state_dict()
    for name, value in after.items():
        if name.endswith("_l1_reverse"):
            np.testing.assert_array_equal(value, cell.parameters()[name[:-len("_l1_reverse")]])
        else:
            np.testing.assert_array_equal(value, sd[name])
    with pytest.raises(ValueError, match="stale"):  # the model's own rule
        lstm.backward(stale_tape, np.zeros((T, B, 2 * H)))
    # the other directions go to cells as well
    for layer, reverse in ((0, False), (0, True), (1, False)):
        other = LSTMCell.from_layer(lstm, layer, reverse)
        suffix = f"_l{layer}" + ("_reverse" if reverse else "")
        for name, value in other.state_dict().items():
            np.testing.assert_array_equal(value, after[name + suffix])


@pytest.mark.parametrize("key", CELLS)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_to_layer_and_from_layer_round_trip(key, dtype):
    cell = make_cell(key, dtype=dtype, seed=11)
    layer = cell.to_layer()
    assert type(layer).__name__ == _cells.BY_KEY[key].layer and layer._cell.key == key
    assert (layer.num_layers, layer.bidirectional, layer.dtype) == (1, False, dtype)
    assert layer.state_dict().keys() == {name + "_l0" for name in cell.parameters()}
    for name, value in cell.parameters().items():
        np.testing.assert_array_equal(layer.parameters()[name + "_l0"], value)
        assert layer.parameters()[name + "_l0"] is not value  # a copy
    back = type(cell).from_layer(layer)
    assert repr(back) == repr(cell)
    for name, value in cell.parameters().items():
        np.testing.assert_array_equal(back.parameters()[name], value)
    assert not cell.to_layer().batch_first and cell.to_layer(batch_first=True).batch_first
    no_bias = make_cell(key, bias=False, dtype=dtype, seed=11)
    assert not no_bias.to_layer().bias
    assert not type(no_bias).from_layer(no_bias.to_layer()).bias


def test_from_layer_keeps_the_variant_and_dtype():
    gru = cyrnn.GRU(3, 5, num_layers=2, reset_after=False, dtype=np.float64, seed=0)
    cell = GRUCell.from_layer(gru, 1)
    assert not cell.reset_after and cell.dtype == np.float64 and cell.input_size == 5
    rnn = cyrnn.RNN(3, 5, nonlinearity="relu", bias=False, seed=0)
    cell = RNNCell.from_layer(rnn)
    assert cell.nonlinearity == "relu" and not cell.bias and cell.dtype == np.float32
    peephole = cyrnn.LSTM(3, 5, peephole=True, bidirectional=True, seed=0)
    cell = LSTMCell.from_layer(peephole, reverse=True)
    assert cell.peephole
    np.testing.assert_array_equal(cell.parameters()["weight_peephole"],
                                  peephole.parameters()["weight_peephole_l0_reverse"])
    x = np.random.default_rng(0).standard_normal((4, 2, 3)).astype(np.float32)
    y, (h_n, c_n) = peephole(x)
    state = None
    for t in reversed(range(4)):
        state = cell(x[t], state)
        np.testing.assert_allclose(state[0], y[t, :, 5:], rtol=1e-5, atol=1e-6)


# -- bad input: refused, naming the argument, before any C code runs ----------
class _NoC:
    """Stands for the time loops' modules: bad input must never reach them."""

    def __init__(self, name):
        self.name = name

    def run(self, *args, **kwargs):
        raise AssertionError(f"{self.name}.run was called: the C code ran")


class Context:
    """What the cases of the table need, made before the C code is barred:
    a cell, its tape, a tape from another cell of the class, a stale tape
    and a layer's tape."""

    def __init__(self, cls):
        self.cls = cls
        self.cell = cls(I, H, seed=0)
        _, self.tape = self.cell.forward(np.zeros((B, I)))
        _, self.other_tape = cls(I, H, seed=0).forward(np.zeros((B, I)))
        self.stale_cell = cls(I, H, seed=0)
        _, self.stale_tape = self.stale_cell.forward(np.zeros((B, I)))
        self.stale_cell.load_state_dict(self.stale_cell.state_dict())
        _, _, self.layer_tape = self.cell._layer.forward(np.zeros((1, B, I)))
        self.result = self.cell.forward(np.zeros((B, I)))
        self.layer = self.cell._layer_class(I, H, num_layers=2, bidirectional=True, seed=0)

    def hx(self, array):
        """An LSTMCell takes (h0, c0); the others one array."""
        return (array, np.zeros((B, H))) if self.cls is LSTMCell else array

    def backward(self, dh, dc=None, tape=None):
        tape = self.tape if tape is None else tape
        if self.cls is LSTMCell:
            return self.cell.backward(tape, dh, dc)
        return self.cell.backward(tape, dh)


def only(names, call):
    """Marks a case as applying to some of the classes only."""
    call.only = names.split()
    return call


Z = np.zeros((B, H))
BAD_CASES = [
    # -- construction
    ("input_size 0", lambda c: c.cls(0, H), ValueError, ["input_size"]),
    ("hidden_size -1", lambda c: c.cls(I, -1), ValueError, ["hidden_size"]),
    ("hidden_size 2.5", lambda c: c.cls(I, 2.5), TypeError, ["hidden_size"]),
    ("bias 'yes'", lambda c: c.cls(I, H, "yes"), TypeError, ["bias"]),
    ("dtype float16", lambda c: c.cls(I, H, dtype=np.float16), ValueError, ["dtype"]),
    ("seed -1", lambda c: c.cls(I, H, seed=-1), TypeError, ["seed"]),
    ("num_layers", lambda c: c.cls(I, H, num_layers=2), TypeError, ["num_layers"]),
    ("device", lambda c: c.cls(I, H, device="cpu"), TypeError, ["device"]),
    ("nonlinearity 'sigmoid'", only("RNNCell", lambda c: c.cls(I, H, True, "sigmoid")),
     ValueError, ["nonlinearity"]),
    ("peephole 1", only("LSTMCell", lambda c: c.cls(I, H, peephole=1)), TypeError,
     ["peephole"]),
    ("reset_after 0", only("GRUCell", lambda c: c.cls(I, H, reset_after=0)), TypeError,
     ["reset_after"]),
    # -- x
    ("x sequence (T, B, I)", lambda c: c.cell(np.zeros((5, B, I))), ValueError,
     ["x", "(B, input_size)", "(input_size,)"]),
    ("x too wide", lambda c: c.cell(np.zeros((B, I + 1))), ValueError,
     ["x", f"input_size={I}"]),
    ("x unbatched too wide", lambda c: c.cell(np.zeros(I + 1)), ValueError, ["x"]),
    ("x scalar", lambda c: c.cell(1.0), ValueError, ["x"]),
    ("x no rows", lambda c: c.cell(np.zeros((0, I))), ValueError, ["x", "row"]),
    ("x complex", lambda c: c.cell(np.zeros((B, I), complex)), TypeError, ["x", "complex"]),
    ("x strings", lambda c: c.cell(np.full((B, I), "1")), TypeError, ["x"]),
    ("x None", lambda c: c.cell(None), TypeError, ["x"]),
    ("x ragged", lambda c: c.cell([[0.0] * I, [0.0]]), TypeError, ["x"]),
    ("x in forward", lambda c: c.cell.forward(np.zeros((B, I + 2))), ValueError, ["x"]),
    # -- hx
    ("hx wrong batch", lambda c: c.cell(np.zeros((B, I)), c.hx(np.zeros((B + 1, H)))),
     ValueError, ["hx", "(B, hidden_size)", str((B, H))]),
    ("hx wrong width", lambda c: c.cell(np.zeros((B, I)), c.hx(np.zeros((B, H - 1)))),
     ValueError, ["hx", str((B, H))]),
    ("hx with a layer axis", lambda c: c.cell(np.zeros((B, I)), c.hx(np.zeros((1, B, H)))),
     ValueError, ["hx", str((B, H))]),
    ("hx batched, x not", lambda c: c.cell(np.zeros(I), c.hx(np.zeros((1, H)))),
     ValueError, ["hx", "(hidden_size,)", str((H,))]),
    ("hx unbatched, x not", lambda c: c.cell(np.zeros((B, I)), c.hx(np.zeros(H))),
     ValueError, ["hx", str((B, H))]),
    ("hx complex", lambda c: c.cell(np.zeros((B, I)), c.hx(np.zeros((B, H), complex))),
     TypeError, ["hx", "complex"]),
    ("hx a string", lambda c: c.cell(np.zeros((B, I)), "zeros"), TypeError, ["hx"]),
    ("hx in forward", lambda c: c.cell.forward(np.zeros((B, I)), c.hx(np.zeros((B, 1)))),
     ValueError, ["hx"]),
    ("hx one array for LSTMCell", only("LSTMCell", lambda c: c.cell(np.zeros((B, I)), Z)),
     TypeError, ["hx", "pair"]),
    ("hx three arrays", only("LSTMCell", lambda c: c.cell(np.zeros((B, I)), (Z, Z, Z))),
     TypeError, ["hx", "pair"]),
    ("hx[1] wrong shape",
     only("LSTMCell", lambda c: c.cell(np.zeros((B, I)), (Z, np.zeros((B, H + 1))))),
     ValueError, ["hx[1]", str((B, H))]),
    ("hx[0] strings",
     only("LSTMCell", lambda c: c.cell(np.zeros((B, I)), (np.full((B, H), "a"), Z))),
     TypeError, ["hx[0]"]),
    ("hx a pair for GRUCell/RNNCell",
     only("GRUCell RNNCell", lambda c: c.cell(np.zeros((B, I)), (Z, Z))),
     TypeError, ["hx", "one array"]),
    # -- tapes
    ("tape None", lambda c: c.cell.backward(None, Z), TypeError, ["tape"]),
    ("tape a layer's", lambda c: c.backward(Z, tape=c.layer_tape), TypeError,
     ["tape", ".forward"]),
    ("tape the whole forward result", lambda c: c.backward(Z, tape=c.result), TypeError,
     ["tape"]),
    ("tape of another cell", lambda c: c.backward(Z, tape=c.other_tape), ValueError,
     ["tape", "another cell"]),
    ("tape stale", lambda c: c.stale_cell.backward(c.stale_tape, Z), ValueError,
     ["tape", "stale"]),
    # -- dh, dc
    ("dh wrong batch", lambda c: c.backward(np.zeros((B + 1, H))), ValueError,
     ["dh", str((B, H))]),
    ("dh unbatched", lambda c: c.backward(np.zeros(H)), ValueError, ["dh", str((B, H))]),
    ("dh with a layer axis", lambda c: c.backward(np.zeros((1, B, H))), ValueError,
     ["dh", str((B, H))]),
    ("dh complex", lambda c: c.backward(np.zeros((B, H), complex)), TypeError,
     ["dh", "complex"]),
    ("dh a pair", lambda c: c.backward((Z, Z)), TypeError, ["dh", "one array"]),
    ("dc wrong shape", only("LSTMCell", lambda c: c.backward(Z, np.zeros((B, H + 1)))),
     ValueError, ["dc", str((B, H))]),
    ("dc strings", only("LSTMCell", lambda c: c.backward(None, np.full((B, H), "x"))),
     TypeError, ["dc"]),
    ("dc for GRUCell/RNNCell", only("GRUCell RNNCell", lambda c: c.cell.backward(c.tape, Z, Z)),
     TypeError, ["positional"]),
    # -- load_state_dict
    ("state_dict missing", lambda c: c.cell.load_state_dict(
        {k: v for k, v in c.cell.state_dict().items() if k != "bias_hh"}), ValueError,
     ["bias_hh", "missing"]),
    ("state_dict extra", lambda c: c.cell.load_state_dict(
        dict(c.cell.state_dict(), weight_hr=np.zeros(3))), ValueError,
     ["weight_hr", "unexpected"]),
    ("state_dict a layer's names", lambda c: c.cell.load_state_dict(
        c.cell._layer.state_dict()), ValueError, ["weight_ih_l0"]),
    ("state_dict misshapen", lambda c: c.cell.load_state_dict(
        dict(c.cell.state_dict(), weight_hh=np.zeros((2, 2)))), ValueError, ["weight_hh"]),
    ("state_dict strings", lambda c: c.cell.load_state_dict(
        dict(c.cell.state_dict(), bias_ih="0")), TypeError, ["bias_ih"]),
    ("state_dict not a mapping", lambda c: c.cell.load_state_dict([1, 2]), TypeError,
     ["state_dict"]),
    ("strict 'no'", lambda c: c.cell.load_state_dict(c.cell.state_dict(), strict="no"),
     TypeError, ["strict"]),
    # -- from_layer, into_layer
    ("from_layer of another class", lambda c: c.cls.from_layer(
        (cyrnn.GRU if c.cls is not GRUCell else cyrnn.LSTM)(I, H)), TypeError,
     ["model", "cyrnn."]),
    ("from_layer of a dict", lambda c: c.cls.from_layer({}), TypeError, ["model"]),
    ("from_layer layer 2 of 2", lambda c: c.cls.from_layer(c.layer, 2), ValueError,
     ["layer", "[0, 1]"]),
    ("from_layer layer -1", lambda c: c.cls.from_layer(c.layer, -1), ValueError, ["layer"]),
    ("from_layer layer 1.0", lambda c: c.cls.from_layer(c.layer, 1.0), TypeError, ["layer"]),
    ("from_layer reverse 'yes'", lambda c: c.cls.from_layer(c.layer, 0, "yes"), TypeError,
     ["reverse"]),
    ("from_layer reverse, one direction", lambda c: c.cls.from_layer(
        c.cls._layer_class(I, H), reverse=True), ValueError, ["reverse", "bidirectional"]),
    ("from_layer projection", only("LSTMCell", lambda c: c.cls.from_layer(
        cyrnn.LSTM(I, H, proj_size=2))), ValueError, ["proj_size"]),
    ("into_layer another class", lambda c: c.cell.into_layer(
        (cyrnn.GRU if c.cls is not GRUCell else cyrnn.RNN)(I, H)), TypeError, ["model"]),
    ("into_layer layer 5", lambda c: c.cell.into_layer(c.layer, 5), ValueError, ["layer"]),
    ("into_layer input size", lambda c: c.cell.into_layer(c.layer, 1), ValueError,
     ["input size", str(2 * H), str(I)]),
    ("into_layer hidden_size", lambda c: c.cell.into_layer(c.cls._layer_class(I, H + 1)),
     ValueError, ["hidden_size"]),
    ("into_layer bias", lambda c: c.cell.into_layer(c.cls._layer_class(I, H, bias=False)),
     ValueError, ["bias"]),
    ("into_layer peephole", only("LSTMCell", lambda c: c.cell.into_layer(
        cyrnn.LSTM(I, H, peephole=True))), ValueError, ["model", "LSTM_PEEPHOLE"]),
    ("into_layer reset_after", only("GRUCell", lambda c: c.cell.into_layer(
        cyrnn.GRU(I, H, reset_after=False))), ValueError, ["model", "GRU_RESET_BEFORE"]),
    ("into_layer relu", only("RNNCell", lambda c: c.cell.into_layer(
        cyrnn.RNN(I, H, nonlinearity="relu"))), ValueError, ["model", "RNN_RELU"]),
]
CLASSES = {"LSTMCell": LSTMCell, "GRUCell": GRUCell, "RNNCell": RNNCell}


def bad_input_table():
    for case_id, call, error, words in BAD_CASES:
        for name, cls in CLASSES.items():
            if name in getattr(call, "only", CLASSES):
                yield pytest.param(cls, call, error, words, id=f"{name}-{case_id}")


def test_the_bad_input_table_is_unique_and_covers_every_class():
    ids = [case[0] for case in BAD_CASES]
    assert len(ids) == len(set(ids))
    assert {p.values[0] for p in bad_input_table()} == set(CLASSES.values())


@pytest.mark.parametrize("cls,call,error,words", list(bad_input_table()))
def test_bad_input_is_refused_before_any_c_code(cls, call, error, words, monkeypatch):
    context = Context(cls)
    weights = {k: v.copy() for k, v in context.cell.parameters().items()}
    monkeypatch.setattr(_base, "_forward", _NoC("_forward"))
    monkeypatch.setattr(_base, "_bptt", _NoC("_bptt"))
    with pytest.raises(error) as info:
        call(context)
    message = str(info.value)
    for word in words:
        assert word in message, f"{word!r} not in the {type(info.value).__name__}: {message!r}"
    for name, value in context.cell.parameters().items():  # nothing was changed
        np.testing.assert_array_equal(value, weights[name])


# -- properties over shapes and dtypes ------------------------------------------
SETTINGS = settings(max_examples=40, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow])


@st.composite
def cell_problems(draw, max_size=5, batched=False):
    key = draw(st.sampled_from(sorted(CELLS)))
    input_size, hidden = draw(st.integers(1, max_size)), draw(st.integers(1, max_size))
    batches = st.integers(1, 6)
    batch = draw(batches if batched else st.one_of(st.none(), batches))  # None: unbatched
    dtype = draw(st.sampled_from([np.float32, np.float64]))
    seed = draw(st.integers(0, 2**16))
    cell = make_cell(key, input_size, hidden, bias=draw(st.booleans()), dtype=dtype, seed=seed)
    rng = np.random.default_rng(seed)
    rows = () if batch is None else (batch,)
    x = rng.standard_normal(rows + (input_size,)).astype(dtype)
    hx = random_state(rng, key, rows + (hidden,), dtype) if draw(st.booleans()) else None
    dh = random_state(rng, key, rows + (hidden,), dtype)
    return key, cell, x, hx, dh


def as_layer_state(key, hx):
    if hx is None:
        return None
    return tuple(s[None] for s in hx) if key in WITH_CELL_STATE else hx[None]


@SETTINGS
@given(cell_problems())
def test_a_step_is_the_layers_step_to_the_bit(problem):
    """cell(x, hx) and cell.forward are the one-layer layer over one step,
    forward and backward, bit for bit; the shapes are the inputs'."""
    key, cell, x, hx, dh = problem
    out = cell(x, hx)
    trained, tape = cell.forward(x, hx)
    layer = cell.to_layer()
    _, hn, layer_tape = layer.forward(x[None], as_layer_state(key, hx))
    for a, b, c in zip(states(out), states(trained), states(hn)):
        assert a.shape == x.shape[:-1] + (cell.hidden_size,) and a.dtype == cell.dtype
        np.testing.assert_array_equal(a, b)
        np.testing.assert_array_equal(a, c[0])
    g = backward(cell, tape, dh)
    layer_g = layer.backward(layer_tape, None, as_layer_state(key, dh))
    assert g.input.shape == x.shape
    np.testing.assert_array_equal(g.input, layer_g.input[0])
    for a, b in zip(states(g.hx), states(layer_g.hx)):
        assert a.shape == x.shape[:-1] + (cell.hidden_size,)
        np.testing.assert_array_equal(a, b[0])
    for name, value in g.params.items():
        assert value.shape == cell.parameters()[name].shape and value.dtype == cell.dtype
        np.testing.assert_array_equal(value, layer_g.params[name + "_l0"])


@SETTINGS
@given(cell_problems(batched=True))
def test_rows_are_independent(problem):
    """Each row of a batch alone gives that row's outputs and input and state
    gradients; the weight gradients are the sum over the rows."""
    key, cell, x, hx, dh = problem
    out, tape = cell.forward(x, hx)
    g = backward(cell, tape, dh)
    tol = tolerances(cell.dtype) if cell.dtype == np.float64 else dict(rtol=1e-4, atol=1e-5)
    total = {}
    for b in range(x.shape[0]):
        row_hx = None if hx is None else (tuple(s[b] for s in hx) if isinstance(hx, tuple)
                                          else hx[b])
        row_out, row_tape = cell.forward(x[b], row_hx)
        row_dh = tuple(s[b] for s in dh) if isinstance(dh, tuple) else dh[b]
        row_g = backward(cell, row_tape, row_dh)
        for a, r in zip(states(out), states(row_out)):
            np.testing.assert_allclose(a[b], r, **tol)
        np.testing.assert_allclose(g.input[b], row_g.input, **tol)
        for a, r in zip(states(g.hx), states(row_g.hx)):
            np.testing.assert_allclose(a[b], r, **tol)
        for name, value in row_g.params.items():
            total[name] = total.get(name, 0) + value
    for name, value in g.params.items():
        np.testing.assert_allclose(value, total[name], err_msg=name, **tol)


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(cell_problems(max_size=3))
def test_backward_agrees_with_finite_differences(problem):
    key, cell, x, hx, dh = problem
    assume(key != "RNN_RELU")  # the kink: test_backward_matches_finite_differences has it
    if cell.dtype != np.float64:
        wide = make_cell(key, cell.input_size, cell.hidden_size, bias=cell.bias,
                         dtype=np.float64)
        wide.load_state_dict(cell.state_dict())
        cell = wide
        x = x.astype(np.float64)
        hx = None if hx is None else (tuple(s.astype(np.float64) for s in hx)
                                      if isinstance(hx, tuple) else hx.astype(np.float64))
        dh = tuple(s.astype(np.float64) for s in dh) if isinstance(dh, tuple) \
            else dh.astype(np.float64)
    _, tape = cell.forward(x, hx)
    g = backward(cell, tape, dh)

    def loss():
        return step_loss(cell(x, hx), dh)

    np.testing.assert_allclose(g.input, finite_difference(loss, x), rtol=1e-6, atol=1e-8)
    if hx is not None:
        for state, grad in zip(states(hx), states(g.hx)):
            np.testing.assert_allclose(grad, finite_difference(loss, state),
                                       rtol=1e-6, atol=1e-8)
    for name, value in cell.parameters().items():
        np.testing.assert_allclose(g.params[name], finite_difference(loss, value),
                                   rtol=1e-6, atol=1e-8, err_msg=name)
