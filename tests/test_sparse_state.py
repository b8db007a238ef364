"""A relu RNN's state is about half zeros, whose products the step skips at
the levels where that pays (SKIP_ZEROS in csrc/isa.h): a list of each row's
nonzero values, the rows of a tile in step. At every level this CPU runs
(each in a subprocess: the level is chosen once per process), the relu RNN
gives the plain IEEE reference's outputs over states of every density, row
by row, a state wider than the lists' stack (the dense product then runs),
and W_hh with NaN or Inf, whose products with zeros are NaN and must reach
the output as IEEE puts them (the step then multiplies every zero)."""
import numpy as np
import pytest

from helpers import arrays_at_level, make_model
from reference import Reference, blas_products, exact_products
from test_numerics import assert_same_special_values

# name: (dtype, H, the initial state, the bias added to b_ih, W_hh's special
# value or None). T = 6, B = 13 (tiles with leftover rows at every level),
# I = 9. H = 37 leaves a partial unit block at every vector width; 1500
# units of float32 take more than CYRNN_NONZERO_LIST_BYTES of lists.
CASES = {
    "rows of unlike density": ("float32", 37, "graded", 0.0, None),
    "rows of unlike density, float64": ("float64", 48, "graded", 0.0, None),
    "every unit active": ("float32", 37, "active", 5.0, None),
    "no unit active": ("float64", 37, "graded", -30.0, None),
    "wider than the lists": ("float32", 1500, "graded", 0.0, None),
    "NaN in W_hh, zero state": ("float32", 37, "zero", 0.0, np.nan),
    "Inf in W_hh, graded state": ("float64", 37, "graded", 0.0, np.inf),
}
T, B, I = 6, 13, 9


def initial_state(kind, H, rng):
    """(1, B, H): zeros; all positive; or row b nonzero with chance b / (B - 1)
    (the first row all zeros, the last none), as a relu state is."""
    if kind == "zero":
        return np.zeros((1, B, H))
    values = np.abs(rng.standard_normal((1, B, H))) + 0.1
    if kind == "active":
        return values
    keep = rng.random((1, B, H)) < (np.arange(B) / (B - 1))[None, :, None]
    return np.where(keep, values, 0.0)


def case_inputs(name):
    """The model's parameters, x and h0 of a case (float64 arrays)."""
    dtype, H, state, bias, special = CASES[name]
    model = make_model("RNN_RELU", I, H, dtype=np.dtype(dtype), seed=1)
    params = {k: v.astype(np.float64) for k, v in model.state_dict().items()}
    params["bias_ih_l0"] += bias
    if special is not None:
        params["weight_hh_l0"][3, 5] = special
        params["weight_hh_l0"][H - 1, 0] = -special
    rng = np.random.default_rng(2)
    return params, rng.standard_normal((T, B, I)), initial_state(state, H, rng)


def run_case(name):
    """y and h_n of the case's inference, asserted the same as its training
    forward pass's to the bit."""
    dtype, H = CASES[name][:2]
    params, x, h0 = case_inputs(name)
    model = make_model("RNN_RELU", I, H, dtype=np.dtype(dtype), seed=1)
    model.load_state_dict({k: v.astype(dtype) for k, v in params.items()})
    x, h0 = x.astype(dtype), h0.astype(dtype)
    y, hn = model(x, h0)
    y_train, hn_train, _ = model.forward(x, h0)
    np.testing.assert_array_equal(y, y_train, err_msg=name)
    np.testing.assert_array_equal(hn, hn_train, err_msg=name)
    return y, hn


def outputs_at(level, products, tmp_path):
    """run_case of every case in a process capped at `level` (arrays_at_level)."""
    return arrays_at_level(
        "from test_sparse_state import CASES, run_case\n"
        "arrays = {}\n"
        "for k, name in enumerate(CASES):\n"
        "    arrays[f'{k}/y'], arrays[f'{k}/hn'] = run_case(name)",
        level, products, tmp_path / f"level{level}-{products}.npz")


def test_the_cases_hold_what_they_say():
    """The graded state has an all-zero row and a row without zeros; the
    biased cases keep (almost) every unit on, or every unit off."""
    _, _, h0 = case_inputs("rows of unlike density")
    assert (h0[0, 0] == 0).all() and (h0[0, -1] != 0).all()
    y, _ = run_case("every unit active")
    assert (y > 0).mean() > 0.9
    y, _ = run_case("no unit active")
    assert (y == 0).all()


# Level 0 runs BLAS's products where the CPU has AVX: its own kernels run
# them with CYRNN_PRODUCTS=kernels.
@pytest.mark.parametrize("level,products", [(None, None), ("1", None), ("0", "kernels")])
def test_relu_rnn_gives_the_ieee_reference_at_every_level(level, products, tmp_path):
    got = outputs_at(level, products, tmp_path)
    for k, name in enumerate(CASES):
        dtype = np.dtype(CASES[name][0]).type
        params, x, h0 = case_inputs(name)
        # IEEE's products where W_hh has NaN or Inf (BLAS's may skip zeros)
        exact = CASES[name][4] is not None
        reference = Reference("RNN_RELU", params,
                              products=exact_products if exact else blas_products)
        with np.errstate(all="ignore"):
            want_y, want_hn, _, _ = reference.forward(x, h0[0])
        assert_same_special_values(got[f"{k}/y"], want_y, dtype, f"{name}: y")
        assert_same_special_values(got[f"{k}/hn"][0], want_hn, dtype, f"{name}: h_n")
