"""cyrnn's forward pass and BPTT against the numpy reference (reference.py),
direction by direction, in float64: ragged lengths, projections, initial
states and gradients reaching the final states."""
import numpy as np
import pytest

from helpers import finite_difference, make_model
from reference import WITH_CELL_STATE, Reference, blas_products, exact_products

T, B, I, H = 6, 5, 4, 7
LENGTHS = np.array([6, 2, 5, 6, 1])


def _split(state, cell):
    """(h, c) of a layer's state for each direction (c None but for the LSTM)."""
    if cell in WITH_CELL_STATE:
        h, c = state
        return [(h[d], c[d]) for d in range(h.shape[0])]
    return [(state[d], None) for d in range(state.shape[0])]


CASES = [("LSTM", {}), ("LSTM", {"proj_size": 3}), ("GRU", {}), ("RNN_TANH", {}),
         ("RNN_RELU", {}), ("GRU", {"bias": False}), ("LSTM_PEEPHOLE", {}),
         ("LSTM_PEEPHOLE", {"proj_size": 3, "bias": False}), ("GRU_RESET_BEFORE", {}),
         ("GRU_RESET_BEFORE", {"bias": False})]


@pytest.mark.parametrize("ragged", [False, True])
@pytest.mark.parametrize("cell, options", CASES)
def test_forward_and_bptt_match_the_reference_in_each_direction(cell, options, ragged):
    model = make_model(cell, I, H, dtype=np.float64, seed=3, bidirectional=True, **options)
    rng = np.random.default_rng(4)
    Hout = options.get("proj_size") or H
    lengths = LENGTHS if ragged else None
    x = rng.standard_normal((T, B, I))
    h0 = rng.standard_normal((2, B, Hout))
    hx = (h0, rng.standard_normal((2, B, H))) if cell in WITH_CELL_STATE else h0
    y, hn, tape = model.forward(x, hx, lengths=lengths)
    dy = rng.standard_normal(y.shape)
    dhn = (rng.standard_normal((2, B, Hout)), rng.standard_normal((2, B, H))) \
        if cell in WITH_CELL_STATE else rng.standard_normal((2, B, Hout))
    grads = model.backward(tape, dy, dhn)
    params = model.state_dict()
    for d, (sfx, (h_init, c_init), (dh_n, dc_n), (h_n, c_n), (dh0, dc0)) in enumerate(zip(
            ("_l0", "_l0_reverse"), _split(hx, cell), _split(dhn, cell), _split(hn, cell),
            _split(grads.hx, cell))):
        ref = Reference(cell, params, suffix=sfx, lengths=lengths)
        ry, rh, rc, rtape = ref.forward(x, h_init, c_init, reverse=d == 1, keep=True)
        np.testing.assert_allclose(y[..., d * Hout:(d + 1) * Hout], ry, rtol=1e-10, atol=1e-12)
        np.testing.assert_allclose(h_n, rh, rtol=1e-10, atol=1e-12)
        if cell in WITH_CELL_STATE:
            np.testing.assert_allclose(c_n, rc, rtol=1e-10, atol=1e-12)
        rdx, rdh0, rdc0, rgrads = ref.backward(rtape, dy[..., d * Hout:(d + 1) * Hout],
                                               dh_n, dc_n)
        np.testing.assert_allclose(dh0, rdh0, rtol=1e-9, atol=1e-12)
        if cell in WITH_CELL_STATE:
            np.testing.assert_allclose(dc0, rdc0, rtol=1e-9, atol=1e-12)
        assert set(rgrads) == {k for k in grads.params if k.endswith(sfx)}
        for name, value in rgrads.items():
            np.testing.assert_allclose(grads.params[name], value, rtol=1e-9, atol=1e-12,
                                       err_msg=name)
        if d == 0:
            dx = rdx
        else:
            dx = dx + rdx  # the input feeds both directions
    np.testing.assert_allclose(grads.input, dx, rtol=1e-9, atol=1e-12)


def test_the_reference_refuses_an_unknown_cell():
    with pytest.raises(ValueError, match="cell"):
        Reference("LSTMP", {"weight_ih_l0": np.zeros((4, 2)), "weight_hh_l0": np.zeros((4, 1))})


# -- the ONNX variants, before cyrnn has them: the reference's BPTT against
# central differences of its own forward pass (its forward pass is checked
# against onnxruntime in test_onnx_reference.py) --------------------------
VARIANT_CASES = [("LSTM_PEEPHOLE", {}), ("LSTM_PEEPHOLE", {"proj_size": 3}),
                 ("LSTM_PEEPHOLE", {"bias": False}), ("GRU_RESET_BEFORE", {}),
                 ("GRU_RESET_BEFORE", {"bias": False})]


def _variant_params(cell, rng, proj_size=0, bias=True, suffix="_l0"):
    """One layer and direction's parameters by torch name, uniform in
    [-0.8, 0.8] so that some gates saturate."""
    G, Hout = (4, proj_size or H) if cell.startswith("LSTM") else (3, H)
    shapes = {"weight_ih": (G * H, I), "weight_hh": (G * H, Hout)}
    if bias:
        shapes.update(bias_ih=(G * H,), bias_hh=(G * H,))
    if proj_size:
        shapes["weight_hr"] = (proj_size, H)
    if cell == "LSTM_PEEPHOLE":
        shapes["weight_peephole"] = (3, H)
    return {name + suffix: rng.uniform(-0.8, 0.8, shape) for name, shape in shapes.items()}


def _weighted_loss(cell, params, lengths, reverse, x, h0, c0, dy, dh_n, dc_n):
    """sum(y dy) + sum(h_n dh_n) (+ sum(c_n dc_n)): its gradient with respect
    to the outputs is (dy, dh_n, dc_n). A new Reference each call, as it sums
    the biases when built."""
    y, h_n, c_n, _ = Reference(cell, params, lengths=lengths).forward(x, h0, c0, reverse=reverse)
    total = np.sum(y * dy) + np.sum(h_n * dh_n)
    return total if c_n is None else total + np.sum(c_n * dc_n)


@pytest.mark.parametrize("reverse", [False, True], ids=["forward", "reverse"])
@pytest.mark.parametrize("ragged", [False, True], ids=["full", "ragged"])
@pytest.mark.parametrize("cell, options", VARIANT_CASES,
                         ids=["-".join([c] + [f"{k}={v}" for k, v in o.items()])
                              for c, o in VARIANT_CASES])
def test_variant_bptt_matches_finite_differences(cell, options, ragged, reverse):
    rng = np.random.default_rng(5)
    params = _variant_params(cell, rng, **options)
    Hout = options.get("proj_size") or H
    lengths = LENGTHS if ragged else None
    x, h0 = rng.standard_normal((T, B, I)), rng.standard_normal((B, Hout))
    c0 = rng.standard_normal((B, H)) if cell == "LSTM_PEEPHOLE" else None
    ref = Reference(cell, params, lengths=lengths)
    y, h_n, c_n, tape = ref.forward(x, h0, c0, reverse=reverse, keep=True)
    dy, dh_n = rng.standard_normal(y.shape), rng.standard_normal(h_n.shape)
    dc_n = None if c_n is None else rng.standard_normal(c_n.shape)
    dx, dh0, dc0, grads = ref.backward(tape, dy, dh_n, dc_n)
    assert set(grads) == set(params)

    def loss():  # of the arrays below, which finite_difference changes in place
        return _weighted_loss(cell, params, lengths, reverse, x, h0, c0, dy, dh_n, dc_n)
    checks = {"input": (x, dx), "h0": (h0, dh0), **{k: (params[k], grads[k]) for k in params}}
    if c0 is not None:
        checks["c0"] = (c0, dc0)
    for name, (value, grad) in checks.items():
        np.testing.assert_allclose(grad, finite_difference(loss, value), rtol=1e-6, atol=1e-8,
                                   err_msg=name)


@pytest.mark.parametrize("products", [blas_products, exact_products])
@pytest.mark.parametrize("options", [{}, {"proj_size": 3}, {"bias": False}])
def test_lstm_peephole_with_zero_peepholes_is_the_lstm_exactly(options, products):
    rng = np.random.default_rng(6)
    params = _variant_params("LSTM_PEEPHOLE", rng, **options)
    params["weight_peephole_l0"] = np.zeros((3, H))
    Hout = options.get("proj_size") or H
    x, h0, c0 = (rng.standard_normal(s) for s in ((T, B, I), (B, Hout), (B, H)))
    dy, dh_n, dc_n = (rng.standard_normal(s) for s in ((T, B, Hout), (B, Hout), (B, H)))
    for reverse in (False, True):
        results = []
        for cell in ("LSTM", "LSTM_PEEPHOLE"):
            ref = Reference(cell, params, lengths=LENGTHS, products=products)
            y, h_n, c_n, tape = ref.forward(x, h0, c0, reverse=reverse, keep=True)
            dx, dh0, dc0, grads = ref.backward(tape, dy, dh_n, dc_n)
            results.append(((y, h_n, c_n, dx, dh0, dc0), grads))
        (lstm, lstm_grads), (peephole, peephole_grads) = results
        for a, b in zip(lstm, peephole):
            np.testing.assert_array_equal(a, b)
        assert set(peephole_grads) == set(lstm_grads) | {"weight_peephole_l0"}
        for name, value in lstm_grads.items():
            np.testing.assert_array_equal(peephole_grads[name], value, err_msg=name)


def test_gru_reset_before_is_the_gru_when_the_reset_has_nothing_to_scale():
    """With W_hn = 0 and b_hn = 0, r scales zero in both GRUs: they agree,
    whereas they differ otherwise."""
    rng = np.random.default_rng(7)
    params = _variant_params("GRU", rng)
    x, h0 = rng.standard_normal((T, B, I)), rng.standard_normal((B, H))
    outputs = {cell: Reference(cell, params, lengths=LENGTHS).forward(x, h0)[0]
               for cell in ("GRU", "GRU_RESET_BEFORE")}
    assert not np.allclose(outputs["GRU"], outputs["GRU_RESET_BEFORE"])
    params["weight_hh_l0"][2 * H:] = 0
    params["bias_hh_l0"][2 * H:] = 0
    outputs = {cell: Reference(cell, params, lengths=LENGTHS).forward(x, h0)[0]
               for cell in ("GRU", "GRU_RESET_BEFORE")}
    np.testing.assert_allclose(outputs["GRU"], outputs["GRU_RESET_BEFORE"],
                               rtol=1e-13, atol=1e-15)


def test_lstm_peephole_needs_its_peepholes():
    params = _variant_params("LSTM", np.random.default_rng(8))
    with pytest.raises(KeyError, match="weight_peephole_l0"):
        Reference("LSTM_PEEPHOLE", params)
