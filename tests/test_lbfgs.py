"""cyrnn.optim.LBFGS: scipy's L-BFGS-B over the flattened live parameters.
Against scipy.optimize.minimize called directly, on a convex quadratic and a
small LSTM model, the final point and its loss, in-place write back and
dtypes, the evaluation budget, bad closures, bad gradients and bad
hyper-parameters."""
import numpy as np
import pytest
import scipy.optimize

import cyrnn
from cyrnn import losses, optim

SHAPES = {"w": (2, 3), "b": (4,)}
N = 10


def make_params(dtype=np.float64, seed=0):
    rng = np.random.default_rng(seed)
    return {name: rng.standard_normal(shape).astype(dtype) for name, shape in SHAPES.items()}


def flat(params):
    return np.concatenate([params[name].ravel().astype(np.float64) for name in SHAPES])


def unflat(x):
    out, start = {}, 0
    for name, shape in SHAPES.items():
        size = int(np.prod(shape))
        out[name] = x[start:start + size].reshape(shape)
        start += size
    return out


def quadratic(seed=1):
    """f(x) = 0.5 x'Ax - b'x with A symmetric positive definite, as a
    function of the flattened point: (f, gradient)."""
    rng = np.random.default_rng(seed)
    M = rng.standard_normal((N, N))
    A = M @ M.T + N * np.eye(N)
    b = rng.standard_normal(N)
    return (lambda x: (0.5 * x @ A @ x - b @ x, A @ x - b)), np.linalg.solve(A, b)


def rosenbrock(x):
    return scipy.optimize.rosen(x), scipy.optimize.rosen_der(x)


def closure_of(params, function, calls=None):
    """The closure LBFGS calls: the function of the live arrays' values
    (in float64), its gradient split per name and cast to each dtype."""
    def closure():
        if calls is not None:
            calls.append(flat(params))
        f, g = function(flat(params))
        return f, {name: value.astype(params[name].dtype) for name, value in unflat(g).items()}
    return closure


def scipy_directly(function, x0, opt, callback=None):
    return scipy.optimize.minimize(function, x0, jac=True, method="L-BFGS-B",
                                   options=opt.scipy_options(), callback=callback)


# -- the mapping onto scipy --------------------------------------------------
def test_scipy_options_map_torch_knobs():
    opt = optim.LBFGS(make_params())
    assert opt.scipy_options() == {"maxiter": 20, "maxfun": 24, "gtol": 1e-7, "ftol": 1e-9,
                                   "maxcor": 100, "maxls": 20}
    # max_eval=None follows max_iter (torch's max_iter * 5 // 4) at each step
    opt.max_iter = 8
    assert opt.max_eval is None and opt.scipy_options()["maxfun"] == 10 - 1
    opt = optim.LBFGS(make_params(), max_iter=3, max_eval=7, tolerance_grad=1e-5,
                      tolerance_change=0.0, history_size=5, max_ls=9)
    assert opt.scipy_options() == {"maxiter": 3, "maxfun": 6, "gtol": 1e-5, "ftol": 0.0,
                                   "maxcor": 5, "maxls": 9}
    assert "LBFGS(2 parameters" in repr(opt)


# -- convergence and agreement with scipy ------------------------------------
def test_converges_on_a_convex_quadratic_to_scipys_answer():
    function, solution = quadratic()
    params = make_params()
    x0 = flat(params)
    opt = optim.LBFGS(params, max_iter=200, tolerance_change=0.0)   # stop on the gradient
    loss = opt.step(closure_of(params, function))
    direct = scipy_directly(function, x0, opt)
    assert opt.result.success and direct.success and "PGTOL" in direct.message
    np.testing.assert_array_equal(flat(params), direct.x)
    np.testing.assert_array_equal(opt.result.x, direct.x)
    assert loss == direct.fun == opt.result.fun and isinstance(loss, float)
    np.testing.assert_allclose(flat(params), solution, rtol=1e-6, atol=1e-7)
    assert np.max(np.abs(opt.result.jac)) <= 1e-7


def test_same_point_as_scipy_directly_on_a_nonconvex_function():
    """Rosenbrock in 10 dimensions, stopped by max_iter: the same iterates,
    the same final x, the same counts."""
    params = make_params()
    x0 = flat(params)
    calls = []
    opt = optim.LBFGS(params, max_iter=15, history_size=7)
    loss = opt.step(closure_of(params, rosenbrock, calls))
    direct = scipy_directly(rosenbrock, x0, opt)
    np.testing.assert_array_equal(flat(params), direct.x)
    assert (opt.result.nit, opt.result.nfev, opt.result.message) == \
        (direct.nit, direct.nfev, direct.message) == (15, len(calls), direct.message)
    assert loss == direct.fun == rosenbrock(direct.x)[0]
    np.testing.assert_array_equal(calls[0], x0)     # the first call: the starting point


def test_closure_sees_the_point_scipy_asks_for():
    asked = []

    def recording(x):
        asked.append(x.copy())
        return rosenbrock(x)

    params = make_params()
    x0 = flat(params)
    seen = []
    optim.LBFGS(params, max_iter=5).step(closure_of(params, rosenbrock, seen))
    scipy.optimize.minimize(recording, x0, jac=True, method="L-BFGS-B",
                            options=optim.LBFGS(make_params(), max_iter=5).scipy_options())
    assert len(seen) == len(asked)
    for ours, theirs in zip(seen, asked):
        np.testing.assert_array_equal(ours, theirs)


def test_successive_steps_restart_from_the_current_parameters():
    function, solution = quadratic()
    params = make_params()
    opt = optim.LBFGS(params, max_iter=3)
    first = opt.step(closure_of(params, function))
    x1 = flat(params)
    second = opt.step(closure_of(params, function))
    direct = scipy_directly(function, x1, opt)       # a fresh minimize from x1
    np.testing.assert_array_equal(flat(params), direct.x)
    assert second == direct.fun < first


def test_loss_is_that_of_the_final_point_after_a_failed_line_search():
    """A gradient that turns noisy makes a line search fail: L-BFGS-B then
    restores the previous iterate in x while scipy leaves the rejected trial
    point's f in fun. step returns (and puts in result.fun) x's own loss."""
    def noisy(seed):
        rng = np.random.default_rng(seed)
        count = [0]

        def function(x):
            count[0] += 1
            f, g = rosenbrock(x)
            return f, (g + 10 * rng.standard_normal(N) if count[0] > 8 else g)
        return function

    params = make_params()
    x0 = flat(params)
    evaluated = []
    function = noisy(5)

    def recording(x):
        f, g = function(x)
        evaluated.append((x.copy(), f, g))
        return f, g

    opt = optim.LBFGS(params, max_iter=100)
    loss = opt.step(closure_of(params, recording))
    direct = scipy_directly(noisy(5), x0, opt)
    assert direct.message.startswith("ABNORMAL")
    assert direct.fun != rosenbrock(direct.x)[0]       # scipy's own mismatch
    np.testing.assert_array_equal(flat(params), direct.x)
    assert not np.array_equal(evaluated[-1][0], direct.x)
    assert loss == opt.result.fun == rosenbrock(direct.x)[0]
    # result.jac: the gradient the closure gave at x (not at the last trial)
    at_x = [g for x, f, g in evaluated if np.array_equal(x, direct.x)]
    np.testing.assert_array_equal(opt.result.jac, at_x[-1])


# -- in place, dtypes ----------------------------------------------------------
def test_parameters_are_written_back_in_place():
    function, solution = quadratic()
    params = make_params()
    arrays = dict(params)
    view = params["w"][:, 1]                      # a view sees the new values
    opt = optim.LBFGS(params, max_iter=100)
    opt.step(closure_of(params, function))
    assert all(params[name] is arrays[name] for name in SHAPES)
    assert opt.params["w"] is arrays["w"]
    np.testing.assert_array_equal(view, unflat(opt.result.x)["w"][:, 1])


def test_float32_parameters_stay_float32():
    function, solution = quadratic()
    params = make_params(np.float32)
    arrays = dict(params)
    dtypes = []

    def closure():
        dtypes.extend(params[name].dtype for name in SHAPES)
        return closure_of(params, function)()

    opt = optim.LBFGS(params, max_iter=50)
    loss = opt.step(closure)
    assert set(dtypes) == {np.dtype(np.float32)}
    assert all(params[name] is arrays[name] and params[name].dtype == np.float32
               for name in SHAPES)
    np.testing.assert_allclose(flat(params), solution, rtol=1e-4, atol=1e-4)
    # the returned loss is the closure's at the float32 point step leaves
    assert loss == float(closure_of(params, function)()[0])
    np.testing.assert_array_equal(flat(params), opt.result.x.astype(np.float32))


def test_missing_or_none_gradients_are_zero():
    function, _ = quadratic()
    params = make_params()
    params["frozen"] = np.array([1.5, -2.5])
    inner = closure_of({k: params[k] for k in SHAPES}, function)
    for absent in ("missing", "none"):
        params["frozen"][...] = [1.5, -2.5]

        def closure():
            loss, grads = inner()
            if absent == "none":
                grads["frozen"] = None
            return loss, grads

        opt = optim.LBFGS(params, max_iter=30)
        opt.step(closure)
        np.testing.assert_array_equal(params["frozen"], [1.5, -2.5])
        assert opt.result.success


# -- a small cyrnn model ------------------------------------------------------
def sine_task(T=60, B=4):
    """Next-value prediction on sine waves of B phases."""
    t = np.arange(T + 1)[:, None] * 0.3 + np.linspace(0.0, np.pi, B)[None, :]
    wave = np.sin(t)[..., None]
    return wave[:-1], wave[1:]


def test_lstm_linear_on_a_sine_wave_loses_most_of_its_loss():
    x, target = sine_task()
    model = cyrnn.Sequential(cyrnn.LSTM(1, 8, dtype=np.float64, seed=0),
                             cyrnn.Linear(8, 1, dtype=np.float64, seed=1))
    arrays = model.parameters()

    def closure():
        y, _, tape = model.forward(x)
        loss, dy = losses.mse(y, target)
        return loss, model.backward(tape, dy).params

    before = float(closure()[0])
    opt = optim.LBFGS(model.parameters(), max_iter=20)
    history = [opt.step(closure) for _ in range(3)]
    assert before > 0.3
    assert history[0] < before / 50, (before, history)
    assert history[-1] < history[0] and history[-1] < before / 200, (before, history)
    # the live arrays hold the point whose loss was returned
    assert float(closure()[0]) == history[-1]
    assert all(model.parameters()[k] is arrays[k] for k in arrays)


def test_sine_wave_model_same_point_as_scipy_directly():
    x, target = sine_task(T=20, B=2)

    def model_and_closure():
        model = cyrnn.Sequential(cyrnn.LSTM(1, 4, dtype=np.float64, seed=3),
                                 cyrnn.Linear(4, 1, dtype=np.float64, seed=4))

        def closure():
            y, _, tape = model.forward(x)
            loss, dy = losses.mse(y, target)
            return loss, model.backward(tape, dy).params
        return model, closure

    model, closure = model_and_closure()
    names = list(model.parameters())
    x0 = np.concatenate([v.ravel() for v in model.parameters().values()])
    opt = optim.LBFGS(model.parameters(), max_iter=10)
    loss = opt.step(closure)

    twin, twin_closure = model_and_closure()

    def function(x):
        start = 0
        for name in names:
            array = twin.parameters()[name]
            array[...] = x[start:start + array.size].reshape(array.shape)
            start += array.size
        f, g = twin_closure()
        return float(f), np.concatenate([g[name].ravel() for name in names])

    direct = scipy_directly(function, x0, opt)
    np.testing.assert_allclose(opt.result.x, direct.x, rtol=1e-12, atol=1e-12)
    assert loss == pytest.approx(direct.fun, rel=1e-12)


# -- the evaluation budget ------------------------------------------------------
def test_max_iter_is_respected():
    params = make_params()
    calls = []
    opt = optim.LBFGS(params, max_iter=4, max_eval=1000)
    opt.step(closure_of(params, rosenbrock, calls))
    assert opt.result.nit == 4 and "ITERATIONS" in opt.result.message
    assert len(calls) == opt.result.nfev


@pytest.mark.parametrize("max_eval", [1, 6, 11])
def test_max_eval_ends_the_step_after_the_iteration_that_reaches_it(max_eval):
    """torch's rule: stop after the first iteration that brings the closure
    calls to max_eval or more (checked between iterations only, so the last
    line search may go past it)."""
    params = make_params()
    x0 = flat(params)
    calls, calls_at_iteration_end = [], []
    opt = optim.LBFGS(params, max_iter=1000, max_eval=max_eval)
    opt.step(closure_of(params, rosenbrock, calls))
    assert "F,G EVALUATIONS" in opt.result.message.upper()
    assert len(calls) == opt.result.nfev
    assert max_eval <= len(calls) <= max_eval - 1 + 2 * opt.max_ls
    # the same run through scipy, counting the calls at each iteration's end
    count = [0]

    def counting(x):
        count[0] += 1
        return rosenbrock(x)

    direct = scipy_directly(counting, x0, opt,
                            callback=lambda intermediate_result:
                            calls_at_iteration_end.append(count[0]))
    assert direct.nfev == len(calls) and direct.nit == opt.result.nit < 1000
    assert calls_at_iteration_end[-1] == len(calls) >= max_eval
    assert all(n < max_eval for n in calls_at_iteration_end[:-1])
    if max_eval == 1:
        assert opt.result.nit == 1


def test_default_max_eval_is_torchs():
    params = make_params()
    calls = []
    opt = optim.LBFGS(params, max_iter=4)          # max_eval 4 * 5 // 4 = 5
    opt.step(closure_of(params, rosenbrock, calls))
    assert opt.scipy_options()["maxfun"] == 4
    assert opt.result.nit <= 4 and len(calls) == opt.result.nfev


def test_converged_start_makes_one_call():
    function, solution = quadratic()
    params = unflat(solution.copy())
    calls = []
    opt = optim.LBFGS(params, tolerance_grad=1e-6)
    loss = opt.step(closure_of(params, function, calls))
    assert len(calls) == 1 and opt.result.nit == 0 and opt.result.success
    assert loss == function(solution)[0]
    np.testing.assert_array_equal(flat(params), solution)


# -- bad closures ------------------------------------------------------------------
def good_grads():
    return {name: np.zeros(shape) for name, shape in SHAPES.items()}


@pytest.mark.parametrize("result, error, fragment", [
    (1.0, TypeError, r"pair \(loss, grads\)"),
    ((1.0,), TypeError, "length 1"),
    ((1.0, {}, None), TypeError, "length 3"),
    (("1.0", {}), TypeError, "loss"),
    ((True, {}), TypeError, "loss"),
    ((1 + 2j, {}), TypeError, "loss"),
    ((np.array([1.0, 2.0]), {}), ValueError, r"loss of shape \(2,\)"),
    ((np.array(["a"])[0], {}), TypeError, "loss"),
    ((1.0, [np.zeros(6), np.zeros(4)]), TypeError, "mapping"),
    ((1.0, cyrnn.Gradients(input=None, hx=None, params={})), TypeError, r"\.params"),
    ((1.0, {"w": np.zeros((2, 3)), "c": np.zeros(1)}), ValueError, "'c'"),
    ((1.0, {"b": np.zeros(3)}), ValueError, r"grads\['b'\].*\(4,\).*\(3,\)"),
    ((1.0, {"b": np.zeros(4, complex)}), TypeError, r"grads\['b'\]"),
    ((float("nan"), good_grads()), ValueError, "non-finite loss"),
    ((float("inf"), good_grads()), ValueError, "non-finite loss"),
    ((1.0, dict(good_grads(), b=np.array([0.0, np.nan, 0.0, 0.0]))), ValueError,
     r"non-finite gradients in \['b'\]"),
])
def test_bad_closure_results_at_the_start_change_nothing(result, error, fragment):
    params = make_params()
    before = {k: v.copy() for k, v in params.items()}
    opt = optim.LBFGS(params)
    with pytest.raises(error, match=fragment) as info:
        opt.step(lambda: result)
    assert "closure()" in str(info.value)
    for name in SHAPES:
        np.testing.assert_array_equal(params[name], before[name])
    assert opt.result is None


def test_closure_must_be_callable():
    opt = optim.LBFGS(make_params())
    with pytest.raises(TypeError, match="closure must be a callable"):
        opt.step(None)
    with pytest.raises(TypeError, match="closure must be a callable"):
        opt.step(good_grads())


@pytest.mark.parametrize("failure", ["nan", "raise"])
def test_failure_mid_step_restores_the_last_accepted_iterate(failure):
    """A NaN loss (or an exception) at the 7th call: the arrays go back to
    the last iterate scipy accepted before it, not the trial point."""
    params = make_params()
    x0 = flat(params)

    # the iterates scipy accepts, with the number of calls made by then
    count, accepted = [0], []

    def counting(x):
        count[0] += 1
        return rosenbrock(x)

    scipy.optimize.minimize(counting, x0, jac=True, method="L-BFGS-B",
                            callback=lambda intermediate_result: accepted.append(
                                (count[0], intermediate_result.x.copy())),
                            options=optim.LBFGS(make_params()).scipy_options())
    expected = x0
    for calls_by_then, x in accepted:
        if calls_by_then < 7:
            expected = x
    assert not np.array_equal(expected, x0)          # some iterate was accepted

    class Stop(Exception):
        pass

    calls = []

    def closure():
        calls.append(flat(params))
        if len(calls) == 7:
            if failure == "raise":
                raise Stop("the closure's own error")
            return float("nan"), good_grads()
        return closure_of(params, rosenbrock)()

    opt = optim.LBFGS(params)
    with pytest.raises(Stop if failure == "raise" else ValueError,
                       match="own error" if failure == "raise" else "evaluation 7"):
        opt.step(closure)
    assert not np.array_equal(calls[-1], expected)    # the failing point was a trial
    np.testing.assert_array_equal(flat(params), expected)
    assert opt.result is None


# -- bad params and hyper-parameters ---------------------------------------------
def test_params_without_elements():
    """(The checks every optimizer makes of params: test_optim.test_bad_params.)"""
    with pytest.raises(ValueError, match="at least one element"):
        optim.LBFGS({})
    with pytest.raises(ValueError, match="at least one element"):
        optim.LBFGS({"empty": np.zeros((0, 3))})


@pytest.mark.parametrize("options, error, fragment", [
    (dict(max_iter=0), ValueError, "max_iter"),
    (dict(max_iter=2.5), TypeError, "max_iter"),
    (dict(max_iter=True), TypeError, "max_iter"),
    (dict(max_eval=0), ValueError, "max_eval"),
    (dict(max_eval="10"), TypeError, "max_eval"),
    (dict(tolerance_grad=-1e-7), ValueError, "tolerance_grad"),
    (dict(tolerance_grad=float("nan")), ValueError, "tolerance_grad"),
    (dict(tolerance_change=-1.0), ValueError, "tolerance_change"),
    (dict(tolerance_change="small"), TypeError, "tolerance_change"),
    (dict(history_size=0), ValueError, "history_size"),
    (dict(history_size=None), TypeError, "history_size"),
    (dict(max_ls=0), ValueError, "max_ls"),
])
def test_bad_hyperparameters(options, error, fragment):
    with pytest.raises(error, match=fragment):
        optim.LBFGS(make_params(), **options)


def test_no_lr_and_positional_options_refused():
    with pytest.raises(TypeError):
        optim.LBFGS(make_params(), lr=1.0)
    with pytest.raises(TypeError):
        optim.LBFGS(make_params(), 1.0)


def test_hyperparameters_are_checked_when_set():
    opt = optim.LBFGS(make_params(), max_iter=5)
    opt.max_eval = 9
    assert opt.scipy_options()["maxfun"] == 8
    with pytest.raises(ValueError, match="max_iter"):
        opt.max_iter = 0
    assert opt.max_iter == 5


# -- state_dict -------------------------------------------------------------------
def test_state_dict_holds_the_hyperparameters_only():
    opt = optim.LBFGS(make_params(), max_iter=7, history_size=3, tolerance_change=1e-6)
    function, _ = quadratic()
    opt.step(closure_of(opt.params, function))
    saved = opt.state_dict()
    assert saved == {"hyperparameters": {"max_iter": 7, "max_eval": None,
                                         "tolerance_grad": 1e-7, "tolerance_change": 1e-6,
                                         "history_size": 3, "max_ls": 20},
                     "state": {}}
    other = optim.LBFGS(make_params())
    other.load_state_dict(saved)
    assert other.scipy_options() == opt.scipy_options()
    other.load_state_dict({"hyperparameters": {}, "state": {"w": {}}})
    assert other.state_dict()["state"] == {}


def test_load_state_dict_rejects_and_changes_nothing():
    opt = optim.LBFGS(make_params(), max_iter=7)
    with pytest.raises(ValueError, match="cannot be resumed"):
        opt.load_state_dict({"hyperparameters": {"max_iter": 3},
                             "state": {"w": {"old_dirs": np.zeros(3)}}})
    with pytest.raises(ValueError, match="unknown name 'lr'"):
        opt.load_state_dict({"hyperparameters": {"lr": 1.0}, "state": {}})
    with pytest.raises(ValueError, match="max_iter"):
        opt.load_state_dict({"hyperparameters": {"max_iter": -1}, "state": {}})
    with pytest.raises(ValueError, match="unknown parameter 'q'"):
        opt.load_state_dict({"hyperparameters": {}, "state": {"q": {}}})
    assert opt.max_iter == 7


def test_embedding_row_gradients_count_as_dense():
    """An Embedding's RowGradient (the rows the ids touched) enters the
    flattened gradient as its dense array; untouched rows do not move."""
    rng = np.random.default_rng(0)
    V, T, B = 7, 6, 3
    ids = rng.integers(0, V - 2, (T, B))            # the last two rows are never looked up
    targets = np.roll(ids, -1, axis=0)
    model = cyrnn.Sequential(cyrnn.Embedding(V, 4, dtype=np.float64, seed=0),
                             cyrnn.LSTM(4, 6, dtype=np.float64, seed=1),
                             cyrnn.Linear(6, V, dtype=np.float64, seed=2))
    table = model.parameters()["0.weight"]
    unused = table[V - 2:].copy()

    def closure():
        y, _, tape = model.forward(ids)
        loss, dy = losses.softmax_cross_entropy(y, targets)
        grads = model.backward(tape, dy).params
        assert isinstance(grads["0.weight"], cyrnn.RowGradient)
        return loss, grads

    before = float(closure()[0])
    opt = optim.LBFGS(model.parameters(), max_iter=15)
    after = opt.step(closure)
    assert after < 0.5 * before
    np.testing.assert_array_equal(table[V - 2:], unused)
    rows = opt.result.jac[:V * 4].reshape(V, 4)
    dense = np.asarray(closure()[1]["0.weight"])
    np.testing.assert_array_equal(rows, dense)
