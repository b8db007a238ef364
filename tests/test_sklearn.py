"""cyrnn.sklearn: RNNRegressor, RNNClassifier and SequenceScaler behave as
scikit-learn estimators (its own checks, every one that applies) and learn
from sequences: 3-D arrays, lists of different lengths, per-step targets."""
import functools
import json
import os
import pickle
import subprocess
import sys

import joblib
import numpy as np
import pytest
from sklearn.base import clone
from sklearn.exceptions import NotFittedError
from sklearn.model_selection import GridSearchCV, cross_val_score
from sklearn.pipeline import make_pipeline
from sklearn.utils import estimator_checks
from sklearn.utils.estimator_checks import parametrize_with_checks

from cyrnn.sklearn import RNNClassifier, RNNRegressor, SequenceScaler

# The instances scikit-learn's checks run on: the defaults, and the other
# cells and options. No check is expected to fail (see EXPECTED_FAILED).
ESTIMATORS = [
    RNNClassifier(random_state=0),
    RNNRegressor(random_state=0),
    RNNClassifier(cell="gru", bidirectional=True, num_layers=2, dropout=0.2, dtype="float64",
                  random_state=0),
    RNNRegressor(cell="rnn", early_stopping=True, batch_size=7, clip=1.0, random_state=0),
    SequenceScaler(),
]

# Checks that cannot apply to these estimators, with the reason. Empty: the
# checks feed (n_samples, n_features) arrays, which the estimators read as
# one-step sequences, so every check applies and passes. (The sample_weight
# checks are not run at all: fit takes no sample_weight.)
EXPECTED_FAILED = {}


def _check_name(check):
    return getattr(check, "func", check).__name__


@functools.cache
def _array_api_results():
    """check_array_api_input for every estimator, in a fresh interpreter:
    scikit-learn runs it only when SCIPY_ARRAY_API=1 was set before scipy
    was first imported, which this process did long ago."""
    code = (
        "import json, traceback\n"
        "from sklearn.utils.estimator_checks import check_array_api_input\n"
        "from cyrnn.sklearn import RNNClassifier, RNNRegressor, SequenceScaler\n"
        f"out = {{}}\n"
        f"for text in {[repr(e) for e in ESTIMATORS]!r}:\n"
        "    est = eval(text)\n"
        "    try:\n"
        "        check_array_api_input(type(est).__name__, est, array_namespace='numpy',\n"
        "                              expect_only_array_outputs=False)\n"
        "        out[text] = 'passed'\n"
        "    except Exception:\n"
        "        out[text] = traceback.format_exc()\n"
        "print(json.dumps(out))\n")
    env = dict(os.environ, SCIPY_ARRAY_API="1")
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


@parametrize_with_checks(ESTIMATORS, expected_failed_checks=lambda est: EXPECTED_FAILED,
                         xfail_strict=True)
def test_scikit_learn_checks(estimator, check):
    if _check_name(check) == "check_array_api_input" and not os.environ.get("SCIPY_ARRAY_API"):
        assert check.keywords == {"array_namespace": "numpy", "expect_only_array_outputs": False}
        assert _array_api_results()[repr(estimator)] == "passed"
        return
    check(estimator)


# Checks scikit-learn runs on its own estimators (sklearn/tests/test_common.py)
# but not in check_estimator, where they apply to ours: feature names from
# DataFrames, read-only input left alone, and set_output and
# get_feature_names_out for the transformer. (check_param_validation is for
# scikit-learn's private _parameter_constraints; these estimators check their
# parameters at fit, each error naming the parameter: see below.)
EXTRA_CHECKS = ["check_dataframe_column_names_consistency", "check_inplace_ensure_writeable"]
TRANSFORMER_CHECKS = ["check_set_output_transform", "check_set_output_transform_pandas",
                      "check_global_output_transform_pandas",
                      "check_transformer_get_feature_names_out",
                      "check_transformer_get_feature_names_out_pandas",
                      "check_get_feature_names_out_error"]


# (the pandas checks mix DataFrames and arrays on purpose, as for StandardScaler)
@pytest.mark.filterwarnings("ignore:X (does not have valid|has) feature names:UserWarning")
@pytest.mark.parametrize("estimator, name", [
    (est, name) for est in ESTIMATORS for name in EXTRA_CHECKS
    + (TRANSFORMER_CHECKS if isinstance(est, SequenceScaler) else [])], ids=repr)
def test_scikit_learn_common_checks(estimator, name):
    getattr(estimator_checks, name)(type(estimator).__name__, clone(estimator))


# -- data ---------------------------------------------------------------------------
def ragged(n=120, features=3, seed=0, low=3, high=12):
    rng = np.random.default_rng(seed)
    return [rng.standard_normal((int(rng.integers(low, high)), features)) for _ in range(n)]


def sign_of_sum(X):
    """A label per sequence that needs the whole sequence: the sign of the
    sum of its first feature."""
    return np.array(["pos" if x[:, 0].sum() > 0 else "neg" for x in X])


SMALL = dict(hidden_size=12, max_epochs=25, lr=1e-2, random_state=0)


def small(**options):
    return {**SMALL, **options}


# -- input forms ---------------------------------------------------------------------
def test_ragged_list_equals_each_sequence_alone():
    X = ragged()
    reg = RNNRegressor(**small(max_epochs=2)).fit(X, [x[:, 0].sum() for x in X])
    together = reg.predict(X)
    alone = np.concatenate([reg.predict([x]) for x in X[:15]])
    np.testing.assert_allclose(alone, together[:15], rtol=1e-12)
    assert reg.n_features_in_ == 3


def test_list_of_equal_lengths_equals_the_3d_array():
    rng = np.random.default_rng(1)
    X3 = rng.standard_normal((40, 6, 2))
    y = X3[:, :, 1].mean(axis=1)
    a = RNNRegressor(**small(max_epochs=3)).fit(X3, y)
    b = RNNRegressor(**small(max_epochs=3)).fit(list(X3), y)
    np.testing.assert_array_equal(a.predict(X3), b.predict(list(X3)))


def test_wrong_feature_count_and_bad_inputs_are_errors():
    X = ragged(30)
    clf = RNNClassifier(**small(max_epochs=1)).fit(X, sign_of_sum(X))
    with pytest.raises(ValueError, match="X has 4 features, but RNNClassifier is expecting 3"):
        clf.predict(np.zeros((2, 5, 4)))
    with pytest.raises(ValueError, match="X has 2 features"):
        clf.predict([np.zeros((3, 2))])
    with pytest.raises(ValueError, match=r"X\[1\] has 2 features per step but X\[0\] has 3"):
        clf.predict([np.zeros((3, 3)), np.zeros((3, 2))])
    with pytest.raises(ValueError, match="NaN"):
        clf.predict([np.full((3, 3), np.nan)])
    with pytest.raises(ValueError, match="inconsistent numbers of samples"):
        RNNClassifier().fit(X, sign_of_sum(X)[:-1])


def test_not_fitted_error():
    for est in (RNNClassifier(), RNNRegressor(), SequenceScaler()):
        method = est.transform if isinstance(est, SequenceScaler) else est.predict
        with pytest.raises(NotFittedError, match="not fitted yet"):
            method(np.zeros((2, 4, 3)))


@pytest.mark.parametrize("name, value, error", [
    ("cell", "lstmx", ValueError), ("hidden_size", 0, ValueError), ("hidden_size", 2.5, TypeError),
    ("dropout", 1.0, ValueError), ("lr", 0, ValueError), ("clip", -1, ValueError),
    ("dtype", "float16", ValueError), ("validation_fraction", 1.0, ValueError),
    ("bidirectional", "yes", TypeError)])
def test_bad_parameters_fail_at_fit_naming_them(name, value, error):
    est = RNNRegressor(**{name: value})          # __init__ only stores
    assert est.get_params()[name] == value
    with pytest.raises(error, match=name):
        est.fit(np.zeros((4, 3, 2)), np.zeros(4))


# -- learning ------------------------------------------------------------------------
@pytest.mark.parametrize("cell", ["lstm", "gru", "rnn"])
def test_classifier_learns_ragged_sequences(cell):
    X, Xt = ragged(300, seed=0), ragged(100, seed=1)
    clf = RNNClassifier(cell=cell, **SMALL).fit(X, sign_of_sum(X))
    assert list(clf.classes_) == ["neg", "pos"]
    proba = clf.predict_proba(Xt)
    assert proba.shape == (100, 2)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0)
    np.testing.assert_array_equal(clf.predict(Xt), clf.classes_[proba.argmax(axis=1)])
    assert clf.score(Xt, sign_of_sum(Xt)) > 0.85
    assert clf.n_iter_ == 25 and len(clf.loss_curve_) == 25
    assert clf.loss_curve_[-1] < clf.loss_curve_[0]


def test_bidirectional_regressor_per_sequence_multi_output():
    X = ragged(200, seed=2)
    y = np.array([[x[:, 0].sum(), x[0, 1]] for x in X])    # needs the start and the sum
    reg = RNNRegressor(bidirectional=True, num_layers=2, **SMALL).fit(X, y)
    assert reg.predict(X).shape == (200, 2) and reg.n_outputs_ == 2 and not reg.per_step_
    assert reg.score(X, y) > 0.8


def test_per_step_targets_3d_and_ragged():
    rng = np.random.default_rng(3)
    X3 = rng.standard_normal((150, 8, 2))
    Y3 = np.cumsum(X3[:, :, :1], axis=1) / 3                  # a running sum: one per step
    reg = RNNRegressor(cell="gru", **SMALL).fit(X3, Y3)
    assert reg.per_step_ and reg.predict(X3).shape == (150, 8, 1)
    assert reg.score(X3, Y3) > 0.9
    X = ragged(150, features=2, seed=4)
    Y = [np.cumsum(x[:, 0]) / 3 for x in X]                  # (T_i,) per sequence
    reg = RNNRegressor(cell="gru", **SMALL).fit(X, Y)
    pred = reg.predict(X)
    assert isinstance(pred, list) and [p.shape for p in pred] == [y.shape for y in Y]
    assert reg.score(X, Y) > 0.9
    # the padded steps count for nothing: a shorter copy of a sequence
    # predicts the first steps of the longer one
    longest = max(X, key=len)
    np.testing.assert_allclose(reg.predict([longest[:3]])[0], reg.predict([longest])[0][:3],
                               rtol=1e-10)


def test_early_stopping_keeps_the_best_epoch():
    X = ragged(200, seed=5)
    y = np.array([x[:, 0].sum() for x in X]) + np.random.default_rng(0).normal(0, 2, 200)
    reg = RNNRegressor(hidden_size=16, lr=3e-2, max_epochs=200, early_stopping=True,
                       n_iter_no_change=4, random_state=0).fit(X, y)
    assert reg.n_iter_ < 200
    assert len(reg.validation_loss_curve_) == reg.n_iter_
    assert reg.best_validation_loss_ == min(reg.validation_loss_curve_)


def test_partial_fit_continues_training():
    X = ragged(200, seed=6)
    y = sign_of_sum(X)
    clf = RNNClassifier(**SMALL)
    with pytest.raises(ValueError, match="classes must be passed"):
        clf.partial_fit(X, y)
    clf.partial_fit(X[:100], y[:100], classes=["neg", "pos"])
    for _ in range(15):
        clf.partial_fit(X, y)
    assert clf.n_iter_ == 16
    assert clf.loss_curve_[-1] < clf.loss_curve_[0]
    with pytest.raises(ValueError, match="not in classes_"):
        clf.partial_fit(X[:3], ["neg", "pos", "maybe"])
    reg = RNNRegressor(**SMALL)
    reg.partial_fit(X, np.ones(200))
    with pytest.raises(ValueError, match="X has 2 features"):
        reg.partial_fit(np.zeros((3, 4, 2)), np.ones(3))


def test_reproducible_with_random_state():
    X = ragged(60, seed=7)
    y = np.array([x[:, 1].mean() for x in X])
    est = RNNRegressor(dropout=0.3, **small(max_epochs=5))
    a, b = clone(est).fit(X, y), clone(est).fit(X, y)
    np.testing.assert_array_equal(a.predict(X), b.predict(X))
    c = clone(est).set_params(random_state=1).fit(X, y)
    assert not np.array_equal(a.predict(X), c.predict(X))


def test_verbose_shows_progress(capsys):
    X = ragged(20)
    RNNRegressor(max_epochs=10, verbose=1).fit(X, np.zeros(20))
    shown = capsys.readouterr()
    assert "RNNRegressor" in shown.out + shown.err and "10/10" in shown.out + shown.err
    RNNRegressor(max_epochs=10).fit(X, np.zeros(20))
    assert capsys.readouterr().out == ""


# -- scikit-learn's tools -------------------------------------------------------------
def test_pickle_round_trip_predicts_the_same():
    X = ragged(50, seed=8)
    clf = RNNClassifier(cell="gru", **small(max_epochs=3)).fit(X, sign_of_sum(X))
    copy = pickle.loads(pickle.dumps(clf))
    np.testing.assert_array_equal(copy.predict_proba(X), clf.predict_proba(X))
    copy.partial_fit(X, sign_of_sum(X))      # and trains on
    clf.partial_fit(X, sign_of_sum(X))
    np.testing.assert_array_equal(copy.predict_proba(X), clf.predict_proba(X))


def _fit_and_predict(est, X, y):
    return est.fit(X, y).predict_proba(X)


def test_joblib_workers_fit_as_this_process_does():
    X = ragged(60, seed=9)
    y = sign_of_sum(X)
    ests = [RNNClassifier(**small(max_epochs=3)), RNNClassifier(cell="rnn", **small(max_epochs=3))]
    remote = joblib.Parallel(n_jobs=2, backend="loky")(
        joblib.delayed(_fit_and_predict)(clone(e), X, y) for e in ests)
    for est, got in zip(ests, remote):
        np.testing.assert_array_equal(got, _fit_and_predict(clone(est), X, y))


def test_pipeline_with_sequence_scaler():
    X = [x * [100.0, 0.01, 1.0] + [5.0, 0.0, -3.0] for x in ragged(300, seed=10)]
    y = sign_of_sum([x - [5.0, 0.0, -3.0] for x in X])
    scaler = SequenceScaler().fit(X)
    steps = np.concatenate(scaler.transform(X))
    np.testing.assert_allclose(steps.mean(axis=0), 0, atol=1e-12)
    np.testing.assert_allclose(steps.std(axis=0), 1)
    back = scaler.inverse_transform(scaler.transform(X))
    np.testing.assert_allclose(back[0], X[0])
    pipe = make_pipeline(SequenceScaler(), RNNClassifier(**SMALL))
    scores = cross_val_score(pipe, X, y, cv=3)
    assert scores.mean() > 0.8
    x3 = np.stack([x[:3] for x in X])                         # 3-D in, 3-D out
    assert scaler.transform(x3).shape == x3.shape


def test_grid_search_over_hidden_size_and_learning_rate():
    X = ragged(150, seed=11)
    y = sign_of_sum(X)
    search = GridSearchCV(RNNClassifier(max_epochs=10, random_state=0),
                          {"hidden_size": [4, 16], "lr": [1e-4, 2e-2]}, cv=3)
    search.fit(X, y)
    assert set(search.best_params_) == {"hidden_size", "lr"}
    assert search.best_params_["lr"] == 2e-2      # 10 epochs at 1e-4 learn next to nothing
    assert search.best_score_ > 0.7
    assert search.best_estimator_.predict(X[:5]).shape == (5,)


def test_importing_cyrnn_does_not_import_sklearn():
    code = "import sys, cyrnn; print('sklearn' in sys.modules, 'dask' in sys.modules)"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          check=True)
    assert done.stdout.split() == ["False", "False"]
