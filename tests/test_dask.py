"""cyrnn.dask on a LocalCluster of two worker processes: inference over
Dask arrays (the model sent once per worker), data-parallel training that
equals single-process training, and the scikit-learn estimators under
joblib's Dask backend."""
import pickle

import dask
import dask.array as da
import joblib
import numpy as np
import pytest
from distributed import Client, LocalCluster, get_task_stream
from sklearn.model_selection import GridSearchCV

import cyrnn
import cyrnn.dask as cd
from cyrnn import losses, optim
from cyrnn.sklearn import RNNClassifier


@pytest.fixture(scope="module")
def client():
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                      dashboard_address=":0") as cluster, \
            Client(cluster, direct_to_workers=True) as client:
        yield client


def data(B=40, T=7, I=3, seed=0):
    rng = np.random.default_rng(seed)
    return rng.standard_normal((B, T, I)).astype(np.float32), rng.integers(1, T + 1, B)


# -- inference -----------------------------------------------------------------------
MODELS = {
    "lstm_bidir_2layers": lambda: cyrnn.LSTM(3, 5, 2, bidirectional=True, seed=0),
    "gru_batch_first": lambda: cyrnn.GRU(3, 4, batch_first=True, seed=1),
    "sequential": lambda: cyrnn.Sequential(cyrnn.RNN(3, 6, batch_first=True, seed=2),
                                           cyrnn.Linear(6, 2, seed=3),
                                           cyrnn.LSTM(2, 3, batch_first=True, seed=4)),
}


def local_answer(model, x, lengths):
    """(y batch first, states) computed in this process."""
    bf = model.batch_first
    y, states = model(x if bf else x.transpose(1, 0, 2), lengths=lengths)
    return (y if bf else y.transpose(1, 0, 2)), states


def assert_same_states(got, want):
    if isinstance(want, (tuple, list)):
        assert type(got) is type(want) and len(got) == len(want)
        for g, w in zip(got, want):
            assert_same_states(g, w)
    else:
        assert isinstance(got, da.Array)
        np.testing.assert_array_equal(got.compute(), want)


@pytest.mark.parametrize("name", list(MODELS))
def test_predict_with_the_local_scheduler(name):
    model = MODELS[name]()
    x, lengths = data()
    X = da.from_array(x, chunks=(8, 7, 3))
    y, states = cd.predict(model, X, lengths=lengths, client=None)
    assert isinstance(y, da.Array) and y.chunks[0] == X.chunks[0]
    want_y, want_states = local_answer(model, x, lengths)
    with dask.config.set(scheduler="threads"):
        np.testing.assert_array_equal(y.compute(), want_y)
        assert_same_states(states, want_states)


def test_predict_on_the_cluster_sends_the_model_once_per_worker(client):
    model = cyrnn.LSTM(3, 16, 2, bidirectional=True, seed=5)
    x, lengths = data(B=64)
    X = da.from_array(x, chunks=(8, 7, 3))                     # 8 chunks, 2 workers
    y, (h, c) = cd.predict(model, X, lengths=da.from_array(lengths, chunks=8), client=client)
    with get_task_stream(client) as stream:
        y_np, h_np, c_np = dask.compute(y, h, c)
    want_y, (want_h, want_c) = local_answer(model, x, lengths)
    np.testing.assert_array_equal(y_np, want_y)
    np.testing.assert_array_equal(h_np, want_h)
    np.testing.assert_array_equal(c_np, want_c)
    ran_on = {task["worker"] for task in stream.data
              if str(task["key"][0] if isinstance(task["key"], tuple) else task["key"])
              .startswith("_run_model")}
    assert len(ran_on) == 2                                      # both workers took chunks
    token = cd.model_token(model)
    arrivals = client.run(cd.arrivals)
    assert [counts.get(token) for counts in arrivals.values()] == [1, 1]


# -- data-parallel training -----------------------------------------------------------------
def single_process(model, optimizer, batches, x, y, lengths, clip):
    """Plain training on the same global batches: the reference."""
    for rows in batches:
        out, _, tape = model.forward(x[rows], lengths=lengths[rows])
        _, dout = losses.mse(out, y[rows], lengths=lengths[rows], batch_first=True)
        grads = model.backward(tape, dout).params
        if clip:
            optim.clip_grad_norm(grads, clip)
        optimizer.step(grads)


@pytest.mark.parametrize("dtype, tolerance", [(np.float64, dict(rtol=1e-10, atol=1e-12)),
                                              (np.float32, dict(rtol=0, atol=1e-5))])
def test_data_parallel_equals_single_process_training(client, dtype, tolerance):
    rng = np.random.default_rng(1)
    x = rng.standard_normal((48, 9, 3))
    y = rng.standard_normal((48, 9, 2))
    lengths = rng.integers(1, 10, 48)
    model = cyrnn.Sequential(cyrnn.GRU(3, 8, 2, batch_first=True, dtype=dtype, seed=0),
                             cyrnn.Linear(8, 2, dtype=dtype, seed=1))
    opt = optim.Adam(model.parameters(), lr=1e-2)
    ref_model, ref_opt = pickle.loads(pickle.dumps((model, opt)))
    trainer = cd.DataParallel(model, opt, loss="mse", clip=1.0, client=client)
    trainer.fit(x, y, lengths=lengths, batch_size=4, epochs=3, seed=0)
    batches = trainer.global_batches(48, batch_size=4, epochs=3, seed=0)
    assert len(batches) == len(trainer.history_) == 18 and all(len(b) == 8 for b in batches)
    single_process(ref_model, ref_opt, batches, x, y, lengths, clip=1.0)
    assert len(set(trainer.replica_tokens_)) == 1                # the replicas stayed identical
    got, want = model.state_dict(), ref_model.state_dict()
    for name in want:
        np.testing.assert_allclose(got[name], want[name], **tolerance, err_msg=name)
    assert opt.state_dict()["state"]["0.weight_hh_l0"]["step"] == 18
    assert np.mean(trainer.history_[-6:]) < np.mean(trainer.history_[:6])   # an epoch each
    # one flat gradient in from each worker and the sum out to each
    n_params = sum(p.size for p in model.parameters().values())
    assert trainer.bytes_per_step_ == 4 * n_params * np.dtype(dtype).itemsize


def test_data_parallel_with_dropout_keeps_replicas_identical(client):
    x, lengths = data(B=32, seed=2)
    y = np.random.default_rng(3).integers(0, 3, (32, 7))
    model = cyrnn.Sequential(cyrnn.LSTM(3, 8, 2, dropout=0.3, batch_first=True, seed=0),
                             cyrnn.Dropout(0.2, seed=1), cyrnn.Linear(8, 3, seed=2))
    opt = optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    before = model.state_dict()
    trainer = cd.DataParallel(model, opt, loss="softmax_cross_entropy", client=client)
    trainer.fit(x, y, lengths=lengths, batch_size=8, epochs=2)
    assert len(set(trainer.replica_tokens_)) == 1
    assert trainer.replica_tokens_[0] == cd.model_token(model)      # brought back in place
    assert any(not np.array_equal(before[k], v) for k, v in model.state_dict().items())


def test_data_parallel_starts_its_own_local_cluster_and_reads_dask_arrays():
    x, lengths = data(B=24, seed=4)
    y = np.random.default_rng(5).standard_normal((24, 7, 4)).astype(np.float32)
    model = cyrnn.LSTM(3, 4, batch_first=True, seed=0)
    opt = optim.Adam(model.parameters(), lr=1e-2)
    ref_model, ref_opt = pickle.loads(pickle.dumps((model, opt)))
    with cd.DataParallel(model, opt) as trainer:
        assert len(trainer.workers) == 2
        trainer.fit(da.from_array(x, chunks=5), da.from_array(y, chunks=7),
                    lengths=da.from_array(lengths, chunks=24), batch_size=3, epochs=1, seed=1,
                    verbose=1)
        batches = trainer.global_batches(24, batch_size=3, seed=1)
    assert trainer._own_cluster is None                          # closed
    single_process(ref_model, ref_opt, batches, x, y, lengths, clip=None)
    for name, value in ref_model.state_dict().items():
        np.testing.assert_allclose(model.state_dict()[name], value, atol=1e-5)


def test_data_parallel_checks_its_arguments(client):
    model = cyrnn.LSTM(3, 4, seed=0)
    with pytest.raises(TypeError, match="optimizer"):
        cd.DataParallel(model, optim.LBFGS(model.parameters()), client=client)
    with pytest.raises(ValueError, match="model.parameters"):
        cd.DataParallel(model, optim.SGD(cyrnn.LSTM(3, 4).parameters(), lr=0.1), client=client)
    with pytest.raises(ValueError, match="loss"):
        cd.DataParallel(model, optim.SGD(model.parameters(), lr=0.1), loss="l1", client=client)
    with pytest.raises(ValueError, match="n_workers=3"):
        cd.DataParallel(model, optim.SGD(model.parameters(), lr=0.1), n_workers=3,
                        client=client)


# -- scikit-learn on the cluster -------------------------------------------------------
def test_grid_search_under_joblibs_dask_backend(client):
    rng = np.random.default_rng(6)
    X = [rng.standard_normal((int(rng.integers(3, 10)), 2)) for _ in range(90)]
    y = np.array([int(x[:, 0].sum() > 0) for x in X])
    grid = {"hidden_size": [4, 8], "lr": [1e-3, 2e-2]}
    search = GridSearchCV(RNNClassifier(max_epochs=8, random_state=0), grid, cv=3, n_jobs=-1)
    with get_task_stream(client) as stream, joblib.parallel_backend("dask"):
        search.fit(X, y)
    assert {task["worker"] for task in stream.data} == set(client.scheduler_info()["workers"])
    here = GridSearchCV(RNNClassifier(max_epochs=8, random_state=0), grid, cv=3).fit(X, y)
    np.testing.assert_array_equal(search.cv_results_["mean_test_score"],
                                  here.cv_results_["mean_test_score"])
    assert search.best_params_ == here.best_params_
