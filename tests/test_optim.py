"""cyrnn.optim: SGD, Adam and AdamW against updates worked out by hand,
gradient clipping, state_dict round trips, bad input, and a short
end-to-end training run of LSTM + Linear + softmax_cross_entropy."""
import numpy as np
import pytest

import cyrnn
from cyrnn import losses, optim

G1 = np.array([0.5, 1.0])
G2 = np.array([1.0, -1.0])


def two_steps(make, dtype=np.float64, g1=G1, g2=G2):
    p = np.array([1.0, -2.0], dtype=dtype)
    opt = make({"p": p})
    opt.step({"p": g1})
    after_one = p.copy()
    opt.step({"p": g2})
    return after_one, p


# -- SGD -------------------------------------------------------------------
def test_sgd_plain():
    # p = [1, -2] - 0.1 * [0.5, 1] = [0.95, -2.1]; then - 0.1 * [1, -1] = [0.85, -2.0]
    one, two = two_steps(lambda p: optim.SGD(p, lr=0.1))
    np.testing.assert_allclose(one, [0.95, -2.1], rtol=1e-15)
    np.testing.assert_allclose(two, [0.85, -2.0], rtol=1e-15)


def test_sgd_momentum():
    # step 1: buf = g1 = [0.5, 1]; p = [1 - 0.05, -2 - 0.1] = [0.95, -2.1]
    # step 2: buf = 0.9 * [0.5, 1] + [1, -1] = [1.45, -0.1]
    #         p = [0.95 - 0.145, -2.1 + 0.01] = [0.805, -2.09]
    one, two = two_steps(lambda p: optim.SGD(p, lr=0.1, momentum=0.9))
    np.testing.assert_allclose(one, [0.95, -2.1], rtol=1e-15)
    np.testing.assert_allclose(two, [0.805, -2.09], rtol=1e-15)


def test_sgd_momentum_with_dampening():
    # torch starts the buffer at g1 undamped: buf = [0.5, 1], p = [0.95, -2.1]
    # step 2: buf = 0.9 * [0.5, 1] + (1 - 0.5) * [1, -1] = [0.95, 0.4]
    #         p = [0.95 - 0.095, -2.1 - 0.04] = [0.855, -2.14]
    one, two = two_steps(lambda p: optim.SGD(p, lr=0.1, momentum=0.9, dampening=0.5))
    np.testing.assert_allclose(one, [0.95, -2.1], rtol=1e-15)
    np.testing.assert_allclose(two, [0.855, -2.14], rtol=1e-14)


def test_sgd_nesterov():
    # step 1: buf = [0.5, 1]; g = g1 + 0.9 * buf = [0.95, 1.9]; p = [0.905, -2.19]
    # step 2: buf = [1.45, -0.1]; g = [1, -1] + 0.9 * buf = [2.305, -1.09]
    #         p = [0.905 - 0.2305, -2.19 + 0.109] = [0.6745, -2.081]
    one, two = two_steps(lambda p: optim.SGD(p, lr=0.1, momentum=0.9, nesterov=True))
    np.testing.assert_allclose(one, [0.905, -2.19], rtol=1e-15)
    np.testing.assert_allclose(two, [0.6745, -2.081], rtol=1e-14)


def test_sgd_weight_decay():
    # g = g1 + 0.1 * p = [0.5 + 0.1, 1 - 0.2] = [0.6, 0.8]; p = [1 - 0.06, -2 - 0.08]
    one, _ = two_steps(lambda p: optim.SGD(p, lr=0.1, weight_decay=0.1))
    np.testing.assert_allclose(one, [0.94, -2.08], rtol=1e-15)


# -- Adam / AdamW ----------------------------------------------------------
ADAM_STEP2 = [0.8034818, -2.09473684]


def test_adam_two_steps():
    # step 1: m = 0.1 * g1 = [0.05, 0.1]; v = 0.001 * g1**2 = [0.00025, 0.001]
    #   step_size = lr / (1 - 0.9) = 1; denom = sqrt(v) / sqrt(1 - 0.999) + eps = [0.5, 1]
    #   p = [1 - 0.05 / (0.5 + 1e-8), -2 - 0.1 / (1 + 1e-8)] ~ [0.9, -2.1]
    #   (Adam's first step is lr * sign(g), up to eps)
    # step 2: m = 0.9 * [0.05, 0.1] + 0.1 * [1, -1] = [0.145, -0.01]
    #   v = 0.999 * [0.00025, 0.001] + 0.001 * [1, 1] = [0.00124975, 0.001999]
    #   bias corrections 1 - 0.9**2 = 0.19 and 1 - 0.999**2 = 0.001999
    #   denom = sqrt(v / 0.001999) = [sqrt(0.6251876), 1] = [0.79068805, 1]
    #   p -= (0.1 / 0.19) * m / denom = [0.0965182, -0.00526316]
    #   p = [0.8034818, -2.09473684]
    one, two = two_steps(lambda p: optim.Adam(p, lr=0.1))
    np.testing.assert_allclose(one, [1 - 0.05 / (0.5 + 1e-8), -2 - 0.1 / (1 + 1e-8)],
                               rtol=1e-15)
    np.testing.assert_allclose(one, [0.9, -2.1], rtol=1e-8)
    np.testing.assert_allclose(two, ADAM_STEP2, rtol=1e-7)


def test_adam_l2_weight_decay():
    # step 1: g = g1 + 0.1 * p = [0.6, 0.8]: same sign -> p = [0.9, -2.1]
    # step 2: g = [1, -1] + 0.1 * [0.9, -2.1] = [1.09, -1.21]
    #   m = 0.9 * [0.06, 0.08] + 0.1 * g = [0.163, -0.049]
    #   v = 0.999 * 0.001 * [0.36, 0.64] + 0.001 * g**2 = [0.00154774, 0.00210346]
    #   denom = sqrt(v / 0.001999) = [0.87991882, 1.02579536]
    #   p = [0.9, -2.1] - (0.1 / 0.19) * m / denom = [0.80250297, -2.07485905]
    one, two = two_steps(lambda p: optim.Adam(p, lr=0.1, weight_decay=0.1))
    np.testing.assert_allclose(one, [0.9, -2.1], rtol=1e-8)
    np.testing.assert_allclose(two, [0.80250297, -2.07485905], rtol=1e-7)


def test_adamw_decoupled_weight_decay():
    # step 1: p *= 1 - 0.1 * 0.1 -> [0.99, -1.98]; then Adam's -0.1 * sign -> [0.89, -2.08]
    #   (with eps: [0.99 - 0.05 / (0.5 + 1e-8), -1.98 - 0.1 / (1 + 1e-8)])
    # step 2: p *= 0.99 -> [0.8811, -2.0592]; Adam's step-2 update (gradients
    #   without L2) is [0.0965182, -0.00526316] as in test_adam_two_steps
    #   -> [0.7845818, -2.05393684]
    one, two = two_steps(lambda p: optim.AdamW(p, lr=0.1, weight_decay=0.1))
    np.testing.assert_allclose(one, [0.99 - 0.05 / (0.5 + 1e-8), -1.98 - 0.1 / (1 + 1e-8)],
                               rtol=1e-15)
    np.testing.assert_allclose(one, [0.89, -2.08], rtol=1e-8)
    np.testing.assert_allclose(two, [0.7845818, -2.05393684], rtol=1e-7)


def test_adamw_without_decay_is_adam():
    _, adam = two_steps(lambda p: optim.Adam(p, lr=0.1))
    _, adamw = two_steps(lambda p: optim.AdamW(p, lr=0.1, weight_decay=0.0))
    np.testing.assert_array_equal(adam, adamw)


def test_adam_eps_enters_the_denominator():
    # zero gradient: m = v = 0, the update is 0 / (0 + eps) = 0
    p = np.array([1.0, 2.0])
    optim.Adam({"p": p}, lr=0.1).step({"p": np.zeros(2)})
    np.testing.assert_array_equal(p, [1.0, 2.0])
    # a huge eps dominates the denominator:
    p = np.array([0.0])
    optim.Adam({"p": p}, lr=1.0, eps=1e3).step({"p": np.array([2.0])})
    # m = 0.2, step_size = 1 / 0.1 = 10, denom = sqrt(0.004) / sqrt(0.001) + 1000 = 1002
    np.testing.assert_allclose(p, [-10 * 0.2 / 1002], rtol=1e-12)


@pytest.mark.parametrize("make", [lambda p: optim.SGD(p, lr=0.1, momentum=0.9),
                                  lambda p: optim.Adam(p, lr=0.1),
                                  lambda p: optim.AdamW(p, lr=0.1)],
                         ids=["SGD", "Adam", "AdamW"])
def test_float32_parameters_stay_float32_and_in_place(make):
    one64, two64 = two_steps(make)
    p = np.array([1.0, -2.0], dtype=np.float32)
    before_id = id(p)
    opt = make({"p": p})
    opt.step({"p": G1})
    opt.step({"p": G2.astype(np.float32)})
    assert id(p) == before_id and p.dtype == np.float32
    np.testing.assert_allclose(p, two64, rtol=1e-6)


def test_missing_names_are_skipped_and_their_state_does_not_advance():
    a, b = np.array([1.0, -2.0]), np.array([5.0])
    opt = optim.Adam({"a": a, "b": b}, lr=0.1)
    opt.step({"a": G1})
    np.testing.assert_array_equal(b, [5.0])
    opt.step({"a": G2, "b": None})
    np.testing.assert_allclose(a, ADAM_STEP2, rtol=1e-7)
    assert "b" not in opt.state_dict()["state"]
    opt.step({"b": np.array([3.0])})                  # b's first step: lr * sign
    np.testing.assert_allclose(b, [4.9], rtol=1e-9)
    assert opt.state_dict()["state"]["b"]["step"] == 1
    assert opt.state_dict()["state"]["a"]["step"] == 2


def test_step_on_layer_parameters_updates_the_layer():
    m = cyrnn.Linear(3, 2, dtype=np.float64, seed=0)
    before = m.state_dict()
    y, tape = m.forward(np.ones((4, 3)))
    g = m.backward(tape, np.ones_like(y))
    optim.SGD(m.parameters(), lr=0.5).step(g.params)
    np.testing.assert_allclose(m.state_dict()["bias"], before["bias"] - 0.5 * 4)
    np.testing.assert_allclose(m.state_dict()["weight"], before["weight"] - 0.5 * 4)


@pytest.mark.parametrize("make", [lambda p: optim.SGD(p, lr=0.1, momentum=0.9),
                                  lambda p: optim.Adam(p, lr=0.1, weight_decay=0.01),
                                  lambda p: optim.AdamW(p, lr=0.1)],
                         ids=["SGD", "Adam", "AdamW"])
def test_state_dict_round_trip(make):
    rng = np.random.default_rng(0)
    p1 = {"w": rng.standard_normal((2, 3)), "b": rng.standard_normal(2)}
    p2 = {k: v.copy() for k, v in p1.items()}
    opt1 = make(p1)
    for _ in range(3):
        opt1.step({k: rng.standard_normal(v.shape) for k, v in p1.items()})
    p2 = {k: v.copy() for k, v in p1.items()}
    opt2 = make(p2)
    saved = opt1.state_dict()
    opt2.load_state_dict(saved)
    # state_dict returns copies
    for state in saved["state"].values():
        for value in state.values():
            if isinstance(value, np.ndarray):
                value[...] = 1e9
    grads = {k: rng.standard_normal(v.shape) for k, v in p1.items()}
    opt1.step(grads)
    opt2.step(grads)
    for k in p1:
        np.testing.assert_array_equal(p1[k], p2[k])


def test_load_state_dict_rejects_and_changes_nothing():
    p = np.array([1.0, -2.0])
    opt = optim.Adam({"p": p}, lr=0.1)
    opt.step({"p": G1})
    good = opt.state_dict()
    bad_shape = {"hyperparameters": {}, "state": {"p": dict(good["state"]["p"],
                                                            exp_avg=np.zeros(3))}}
    with pytest.raises(ValueError, match=r"state_dict\['state'\]\['p'\]\['exp_avg'\]"):
        opt.load_state_dict(bad_shape)
    with pytest.raises(ValueError, match="unknown parameter 'q'"):
        opt.load_state_dict({"state": {"q": good["state"]["p"]}})
    with pytest.raises(ValueError, match="lr"):
        opt.load_state_dict({"hyperparameters": {"lr": -1.0}, "state": {}})
    with pytest.raises(ValueError, match="momentum"):
        opt.load_state_dict({"hyperparameters": {"momentum": 0.9}, "state": {}})
    with pytest.raises(ValueError, match="step"):
        opt.load_state_dict({"state": {"p": dict(good["state"]["p"], step=-1)}})
    with pytest.raises(ValueError, match="missing"):
        opt.load_state_dict({"state": {"p": {"step": 1}}})
    after = opt.state_dict()
    assert after["hyperparameters"] == good["hyperparameters"]
    np.testing.assert_array_equal(after["state"]["p"]["exp_avg"], good["state"]["p"]["exp_avg"])


def test_hyperparameters_are_attributes_and_checked_when_set():
    opt = optim.SGD({"p": np.zeros(2)}, lr=0.1, momentum=0.9, nesterov=True)
    assert opt.lr == 0.1 and opt.momentum == 0.9 and opt.nesterov is True
    opt.lr = 0.01
    assert opt.state_dict()["hyperparameters"]["lr"] == 0.01
    with pytest.raises(ValueError, match="lr"):
        opt.lr = 0.0
    with pytest.raises(ValueError, match="nesterov"):
        opt.momentum = 0.0
    assert opt.lr == 0.01 and opt.momentum == 0.9
    assert "SGD(1 parameters" in repr(opt)


# -- bad input -------------------------------------------------------------
@pytest.mark.parametrize("make, error, fragment", [
    (lambda p: optim.SGD(p, lr=0.0), ValueError, "lr"),
    (lambda p: optim.SGD(p, lr=-1.0), ValueError, "lr"),
    (lambda p: optim.SGD(p, lr=float("nan")), ValueError, "lr"),
    (lambda p: optim.SGD(p, lr="0.1"), TypeError, "lr"),
    (lambda p: optim.SGD(p, lr=0.1, momentum=-0.5), ValueError, "momentum"),
    (lambda p: optim.SGD(p, lr=0.1, dampening=1.5), ValueError, "dampening"),
    (lambda p: optim.SGD(p, lr=0.1, weight_decay=-1), ValueError, "weight_decay"),
    (lambda p: optim.SGD(p, lr=0.1, nesterov=True), ValueError, "nesterov requires momentum"),
    (lambda p: optim.SGD(p, lr=0.1, momentum=0.9, dampening=0.1, nesterov=True),
     ValueError, "dampening == 0"),
    (lambda p: optim.SGD(p, lr=0.1, nesterov=1), TypeError, "nesterov"),
    (lambda p: optim.Adam(p, lr=0), ValueError, "lr"),
    (lambda p: optim.Adam(p, betas=(1.0, 0.999)), ValueError, r"betas\[0\]"),
    (lambda p: optim.Adam(p, betas=(0.9, -0.1)), ValueError, r"betas\[1\]"),
    (lambda p: optim.Adam(p, betas=0.9), TypeError, "betas"),
    (lambda p: optim.AdamW(p, betas=(0.9,)), TypeError, "betas"),
    (lambda p: optim.Adam(p, eps=-1e-8), ValueError, "eps"),
    (lambda p: optim.AdamW(p, weight_decay=-0.01), ValueError, "weight_decay"),
])
def test_bad_hyperparameters(make, error, fragment):
    with pytest.raises(error, match=fragment):
        make({"p": np.zeros(2)})


@pytest.mark.parametrize("make", [lambda p: optim.SGD(p, lr=0.1), optim.Adam, optim.AdamW,
                                  optim.LBFGS], ids=["SGD", "Adam", "AdamW", "LBFGS"])
def test_bad_params(make):
    """Every optimizer checks its params alike (the shared _Optimizer)."""
    with pytest.raises(TypeError, match="params"):
        make([np.zeros(2)])
    with pytest.raises(TypeError, match=r"params\['p'\]"):
        make({"p": [1.0, 2.0]})
    with pytest.raises(TypeError, match=r"params\['p'\]"):
        make({"p": np.zeros(2, dtype=int)})
    frozen = np.zeros(2)
    frozen.flags.writeable = False
    with pytest.raises(ValueError, match=r"params\['p'\]"):
        make({"p": frozen})
    shared = np.zeros(2)
    with pytest.raises(ValueError, match="same array"):
        make({"a": shared, "b": shared})


def test_bad_grads_change_nothing():
    a, b = np.array([1.0, 2.0]), np.array([3.0])
    opt = optim.SGD({"a": a, "b": b}, lr=0.1, momentum=0.9)
    with pytest.raises(ValueError) as info:
        opt.step({"a": np.ones(2), "c": np.ones(2)})
    assert "grads" in str(info.value) and "'c'" in str(info.value)
    with pytest.raises(ValueError) as info:
        opt.step({"a": np.ones(2), "b": np.ones(2)})
    assert "grads['b']" in str(info.value) and "(1,)" in str(info.value) \
        and "(2,)" in str(info.value)
    with pytest.raises(TypeError, match=r"grads\['a'\]"):
        opt.step({"a": np.ones(2, complex)})
    with pytest.raises(TypeError, match="grads"):
        opt.step([np.ones(2), np.ones(1)])
    np.testing.assert_array_equal(a, [1.0, 2.0])
    np.testing.assert_array_equal(b, [3.0])
    assert opt.state_dict()["state"] == {}


# -- clipping --------------------------------------------------------------
def test_clip_grad_norm_scales_by_torch_rule():
    # total 2-norm of [3, 4] and [0, 12] = sqrt(9 + 16 + 144) = 13;
    # max_norm 6.5 -> every array times 6.5 / (13 + 1e-6) ~ 0.5
    grads = {"a": np.array([3.0, 4.0]), "b": np.array([[0.0, 12.0]])}
    total = optim.clip_grad_norm(grads, 6.5)
    assert total == pytest.approx(13.0, rel=1e-15) and isinstance(total, float)
    coef = 6.5 / (13.0 + 1e-6)
    np.testing.assert_allclose(grads["a"], [3 * coef, 4 * coef], rtol=1e-15)
    np.testing.assert_allclose(grads["b"], [[0.0, 12 * coef]], rtol=1e-15)
    np.testing.assert_allclose(np.sqrt(np.sum(grads["a"] ** 2) + np.sum(grads["b"] ** 2)),
                               6.5, rtol=1e-6)


def test_clip_grad_norm_leaves_small_grads_alone():
    grads = {"a": np.array([3.0, 4.0], np.float32)}
    assert optim.clip_grad_norm(grads, 5.0) == pytest.approx(5.0)   # 5 / (5 + 1e-6) < 1: scaled
    np.testing.assert_allclose(grads["a"], [3.0, 4.0], rtol=1e-6)
    assert grads["a"].dtype == np.float32
    grads = {"a": np.array([3.0, 4.0])}
    assert optim.clip_grad_norm(grads, 10.0) == 5.0
    np.testing.assert_array_equal(grads["a"], [3.0, 4.0])


def test_clip_grad_norm_other_norms():
    # inf-norm: max |g| = 12; 1-norm: 3 + 4 + 12 = 19
    grads = [np.array([3.0, -4.0]), np.array([-12.0])]
    assert optim.clip_grad_norm(grads, 100.0, norm_type=float("inf")) == 12.0
    assert optim.clip_grad_norm(grads, 100.0, norm_type=1) == 19.0
    optim.clip_grad_norm(grads, 6.0, norm_type=np.inf)
    np.testing.assert_allclose(grads[1], [-12.0 * 6.0 / (12.0 + 1e-6)], rtol=1e-15)
    assert optim.clip_grad_norm({}, 1.0) == 0.0
    assert optim.clip_grad_norm({"a": None, "b": np.zeros(3)}, 1.0) == 0.0


def test_clip_grad_norm_nonfinite():
    grads = {"a": np.array([np.nan, 1.0])}
    assert np.isnan(optim.clip_grad_norm(grads, 1.0))
    assert np.all(np.isnan(grads["a"]))          # as torch: scaled by NaN
    with pytest.raises(ValueError, match="nan"):
        optim.clip_grad_norm({"a": np.array([np.nan, 1.0])}, 1.0, error_if_nonfinite=True)
    grads = {"a": np.array([np.inf, 1.0])}
    assert optim.clip_grad_norm(grads, 1.0) == np.inf
    assert np.isnan(grads["a"][0]) and grads["a"][1] == 0.0   # scaled by 1 / inf = 0


def test_clip_grad_value():
    grads = {"a": np.array([-3.0, 0.5, 2.0, np.nan]), "b": np.array([[10.0]], np.float32)}
    assert optim.clip_grad_value(grads, 1.0) is None
    np.testing.assert_array_equal(grads["a"], [-1.0, 0.5, 1.0, np.nan])
    np.testing.assert_array_equal(grads["b"], [[1.0]])
    assert grads["b"].dtype == np.float32


def test_clip_bad_input():
    with pytest.raises(ValueError, match="max_norm"):
        optim.clip_grad_norm({"a": np.ones(2)}, -1.0)
    with pytest.raises(ValueError, match="norm_type"):
        optim.clip_grad_norm({"a": np.ones(2)}, 1.0, norm_type=0)
    with pytest.raises(ValueError, match="norm_type"):
        optim.clip_grad_norm({"a": np.ones(2)}, 1.0, norm_type="fro")
    with pytest.raises(ValueError, match="clip_value"):
        optim.clip_grad_value({"a": np.ones(2)}, -0.5)
    with pytest.raises(TypeError, match="clip_value"):
        optim.clip_grad_value({"a": np.ones(2)}, "1")
    with pytest.raises(TypeError, match=r"grads\['a'\]"):
        optim.clip_grad_norm({"a": [1.0, 2.0]}, 1.0)
    with pytest.raises(TypeError, match=r"grads\['a'\]"):
        optim.clip_grad_value({"a": np.ones(2, int)}, 1.0)
    g = cyrnn.Gradients(input=np.ones(2), hx=None, params={"w": np.ones(2)})
    with pytest.raises(TypeError, match="Gradients.params"):
        optim.clip_grad_norm(g, 1.0)
    with pytest.raises(TypeError, match="grads"):
        optim.clip_grad_value(3.0, 1.0)


# -- end to end ------------------------------------------------------------
def test_lstm_linear_cross_entropy_trains_with_adam():
    """Per step, predict which of 3 input channels was largest one step
    earlier (needs the recurrent state); a few dozen Adam steps on a fixed
    batch must cut the loss by well over half."""
    rng = np.random.default_rng(0)
    T, B, I, H, C = 8, 16, 3, 16, 3
    x = rng.standard_normal((T, B, I))
    targets = np.zeros((T, B), dtype=np.int64)
    targets[1:] = np.argmax(x[:-1], axis=-1)
    lengths = rng.integers(3, T + 1, B)

    lstm = cyrnn.LSTM(I, H, dtype=np.float64, seed=1)
    head = cyrnn.Linear(H, C, dtype=np.float64, seed=2)
    params = {**{"lstm." + k: v for k, v in lstm.parameters().items()},
              **{"head." + k: v for k, v in head.parameters().items()}}
    opt = optim.Adam(params, lr=0.03)

    history = []
    for _ in range(60):
        y, _, lstm_tape = lstm.forward(x, lengths=lengths)
        logits, head_tape = head.forward(y)
        loss, dlogits = losses.softmax_cross_entropy(logits, targets, lengths=lengths)
        history.append(float(loss))
        g_head = head.backward(head_tape, dlogits)
        g_lstm = lstm.backward(lstm_tape, g_head.input)
        grads = {**{"lstm." + k: v for k, v in g_lstm.params.items()},
                 **{"head." + k: v for k, v in g_head.params.items()}}
        optim.clip_grad_norm(grads, 5.0)
        opt.step(grads)

    assert np.all(np.isfinite(history))
    assert history[0] > 0.9                     # about log(3) = 1.0986 at the start
    assert history[-1] < 0.2 * history[0], history
