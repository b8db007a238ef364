"""cyrnn's forward pass and BPTT against the numpy reference (reference.py),
direction by direction, in float64: ragged lengths, projections, initial
states and gradients reaching the final states."""
import numpy as np
import pytest

from helpers import make_model
from reference import Reference

T, B, I, H = 6, 5, 4, 7
LENGTHS = np.array([6, 2, 5, 6, 1])


def _split(state, cell):
    """(h, c) of a layer's state for each direction (c None but for the LSTM)."""
    if cell == "LSTM":
        h, c = state
        return [(h[d], c[d]) for d in range(h.shape[0])]
    return [(state[d], None) for d in range(state.shape[0])]


CASES = [("LSTM", {}), ("LSTM", {"proj_size": 3}), ("GRU", {}), ("RNN_TANH", {}),
         ("RNN_RELU", {}), ("GRU", {"bias": False})]


@pytest.mark.parametrize("ragged", [False, True])
@pytest.mark.parametrize("cell, options", CASES)
def test_forward_and_bptt_match_the_reference_in_each_direction(cell, options, ragged):
    model = make_model(cell, I, H, dtype=np.float64, seed=3, bidirectional=True, **options)
    rng = np.random.default_rng(4)
    Hout = options.get("proj_size") or H
    lengths = LENGTHS if ragged else None
    x = rng.standard_normal((T, B, I))
    h0 = rng.standard_normal((2, B, Hout))
    hx = (h0, rng.standard_normal((2, B, H))) if cell == "LSTM" else h0
    y, hn, tape = model.forward(x, hx, lengths=lengths)
    dy = rng.standard_normal(y.shape)
    dhn = (rng.standard_normal((2, B, Hout)), rng.standard_normal((2, B, H))) \
        if cell == "LSTM" else rng.standard_normal((2, B, Hout))
    grads = model.backward(tape, dy, dhn)
    params = model.state_dict()
    for d, (sfx, (h_init, c_init), (dh_n, dc_n), (h_n, c_n), (dh0, dc0)) in enumerate(zip(
            ("_l0", "_l0_reverse"), _split(hx, cell), _split(dhn, cell), _split(hn, cell),
            _split(grads.hx, cell))):
        ref = Reference(cell, params, suffix=sfx, lengths=lengths)
        ry, rh, rc, rtape = ref.forward(x, h_init, c_init, reverse=d == 1, keep=True)
        np.testing.assert_allclose(y[..., d * Hout:(d + 1) * Hout], ry, rtol=1e-10, atol=1e-12)
        np.testing.assert_allclose(h_n, rh, rtol=1e-10, atol=1e-12)
        if cell == "LSTM":
            np.testing.assert_allclose(c_n, rc, rtol=1e-10, atol=1e-12)
        rdx, rdh0, rdc0, rgrads = ref.backward(rtape, dy[..., d * Hout:(d + 1) * Hout],
                                               dh_n, dc_n)
        np.testing.assert_allclose(dh0, rdh0, rtol=1e-9, atol=1e-12)
        if cell == "LSTM":
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
