"""Checkpoints: cyrnn.save with the optimizer, and a training run killed
between two steps and resumed from its last checkpoint gives bit-identical
weights to a run never stopped. Also the new classes' round trips (Embedding,
Dropout, tied weights) and the atomic, fsynced write."""
import json
import os
import signal
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import cyrnn

# A language model with every source of state a resumed run must restore:
# dropout in the LSTM and in a Dropout layer (generators), Adam's moments
# and step counts, tied weights. Batch s is drawn from default_rng(s), so
# the data order depends only on the step.
TRAINING = textwrap.dedent("""
    import sys, numpy as np, cyrnn
    V, STEPS = 13, int(sys.argv[2])

    def new_model():
        emb, dec = cyrnn.Embedding(V, 6, seed=0), cyrnn.Linear(6, V, seed=4)
        dec.tie("weight", emb)
        model = cyrnn.Sequential(emb, cyrnn.LSTM(6, 8, 2, dropout=0.3, seed=1),
                                 cyrnn.Dropout(0.2, seed=2), cyrnn.Linear(8, 6, seed=3), dec)
        return model, cyrnn.optim.Adam(model.parameters(), lr=1e-2)

    def train_step(model, opt, step):
        ids = np.random.default_rng(step).integers(0, V, (7, 3))
        out, _, tape = model.forward(ids[:-1])
        loss, dout = cyrnn.losses.softmax_cross_entropy(out, ids[1:])
        opt.step(model.backward(tape, dout).params)

    path = sys.argv[1]
    try:
        model, opt = cyrnn.load(path, with_optimizer=True)
        done = opt.state_dict()["state"]["0.weight"]["step"]
    except FileNotFoundError:
        (model, opt), done = new_model(), 0
    for step in range(done, STEPS):
        train_step(model, opt, step)
        cyrnn.save(path, model, optimizer=opt)
        print(step + 1, flush=True)
    np.savez(path + ".final.npz", **model.state_dict())
""")


def run_training(tmp_path, name, steps, kill_after=None):
    script = tmp_path / "train.py"
    script.write_text(TRAINING)
    checkpoint = str(tmp_path / name)
    process = subprocess.Popen([sys.executable, str(script), checkpoint, str(steps)],
                               stdout=subprocess.PIPE, text=True)
    if kill_after is not None:
        for line in process.stdout:
            if int(line) == kill_after:
                process.send_signal(signal.SIGKILL)  # between two steps, or within a save
                break
    process.communicate(timeout=120)
    return checkpoint, process.returncode


def test_a_killed_run_resumed_from_its_checkpoint_is_bit_identical(tmp_path):
    whole, code = run_training(tmp_path, "whole.npz", 12)
    assert code == 0
    killed, code = run_training(tmp_path, "killed.npz", 12, kill_after=5)
    assert code == -signal.SIGKILL and not os.path.exists(killed + ".final.npz")
    _, code = run_training(tmp_path, "killed.npz", 12)  # resumes
    assert code == 0
    with np.load(whole + ".final.npz") as a, np.load(killed + ".final.npz") as b:
        assert sorted(a.files) == sorted(b.files)
        for key in a.files:
            np.testing.assert_array_equal(a[key], b[key], err_msg=key)
        assert not np.array_equal(a["0.weight"], cyrnn.Embedding(13, 6, seed=0).state_dict()[
            "weight"])  # it did train


def test_checkpoint_round_trip_restores_the_optimizer(tmp_path):
    model = cyrnn.Sequential(cyrnn.GRU(2, 3, seed=0), cyrnn.Linear(3, 1, seed=1))
    opt = cyrnn.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, nesterov=True)
    x = np.ones((4, 2, 2), np.float32)
    out, _, tape = model.forward(x)
    opt.step(model.backward(tape, np.ones_like(out)).params)
    cyrnn.save(tmp_path / "c.npz", model, optimizer=opt)
    loaded, loaded_opt = cyrnn.load(tmp_path / "c.npz", with_optimizer=True)
    assert type(loaded_opt) is cyrnn.optim.SGD and loaded_opt.nesterov and loaded_opt.lr == 0.1
    assert all(loaded_opt.params[k] is v for k, v in loaded.parameters().items())
    for name, state in opt.state_dict()["state"].items():
        np.testing.assert_array_equal(
            loaded_opt.state_dict()["state"][name]["momentum_buffer"], state["momentum_buffer"])
    assert isinstance(cyrnn.load(tmp_path / "c.npz"), cyrnn.Sequential)  # the model alone


def test_checkpoint_errors(tmp_path):
    model = cyrnn.LSTM(2, 3)
    cyrnn.save(tmp_path / "m.npz", model)
    with pytest.raises(ValueError, match="holds no optimizer"):
        cyrnn.load(tmp_path / "m.npz", with_optimizer=True)
    with pytest.raises(ValueError, match="exactly model.parameters"):
        cyrnn.save(tmp_path / "m.npz", model, optimizer=cyrnn.optim.Adam(
            cyrnn.LSTM(2, 3).parameters()))
    with pytest.raises(TypeError, match="optimizer must be one of"):
        cyrnn.save(tmp_path / "m.npz", model, optimizer=object())
    with pytest.raises(TypeError, match="with_optimizer"):
        cyrnn.load(tmp_path / "m.npz", with_optimizer="yes")


def test_tampered_optimizer_records_are_refused(tmp_path):
    model = cyrnn.LSTM(2, 3)
    opt = cyrnn.optim.Adam(model.parameters())
    opt.step({k: np.ones_like(v) for k, v in model.parameters().items()})
    cyrnn.save(tmp_path / "c.npz", model, optimizer=opt)
    with np.load(tmp_path / "c.npz") as npz:
        arrays = {k: npz[k] for k in npz.files}
    header = json.loads(str(arrays["__cyrnn__"]))
    for change, words in [
            (lambda h, a: h["optimizer"].update({"class": "os.system"}), "optimizer"),
            (lambda h, a: h["optimizer"]["hyperparameters"].update({"lr": -1}), "lr"),
            (lambda h, a: h["optimizer"]["steps"].update({"weight_ih_l0": "3"}), "step"),
            (lambda h, a: a.update({"__optimizer__::exp_avg::weight_ih_l0": np.ones(3, np.float32)}),
             "no weight of its shape"),
            (lambda h, a: h["generators"][""].update({"bit_generator": "Evil"}), "generator")]:
        h, a = json.loads(json.dumps(header)), dict(arrays)
        change(h, a)
        a["__cyrnn__"] = np.array(json.dumps(h))
        np.savez(tmp_path / "bad.npz", **a)
        with pytest.raises(ValueError, match=words):
            cyrnn.load(tmp_path / "bad.npz", with_optimizer=True)


def test_generators_continue_after_load(tmp_path):
    drop = cyrnn.Dropout(0.5, seed=3)
    drop.forward(np.ones(10))
    cyrnn.save(tmp_path / "d.npz", drop)
    loaded = cyrnn.load(tmp_path / "d.npz")
    np.testing.assert_array_equal(loaded.forward(np.ones(50))[0], drop.forward(np.ones(50))[0])


@pytest.mark.parametrize("make", [
    lambda: cyrnn.Embedding(9, 4, padding_idx=3, dtype=np.float64, seed=0),
    lambda: cyrnn.Dropout(0.25),
    lambda: (lambda e, d: (d.tie("weight", e), cyrnn.Sequential(
        e, cyrnn.LSTM(4, 4, seed=1), cyrnn.Dropout(0.1), d))[1])(
        cyrnn.Embedding(9, 4, seed=0), cyrnn.Linear(4, 9, seed=2)),
])
def test_new_classes_round_trip(tmp_path, make):
    model = make()
    cyrnn.save(tmp_path / "m.npz", model)
    loaded = cyrnn.load(tmp_path / "m.npz")
    assert repr(loaded) == repr(model)
    ids = np.arange(12).reshape(4, 3) % 9
    a, b = model(ids), loaded(ids)
    np.testing.assert_array_equal(a[0] if isinstance(a, tuple) else a,
                                  b[0] if isinstance(b, tuple) else b)
    if isinstance(model, cyrnn.Sequential):
        assert loaded.tied() == {"3.weight": "0.weight"}
        assert loaded[3].parameters()["weight"] is loaded[0].parameters()["weight"]
        with np.load(tmp_path / "m.npz") as npz:
            assert "3.weight" not in npz.files  # saved once


def test_save_flushes_to_disk_before_the_rename(tmp_path, monkeypatch):
    events = []
    real_fsync, real_replace = os.fsync, os.replace
    monkeypatch.setattr(os, "fsync", lambda fd: (events.append("fsync"), real_fsync(fd))[1])
    monkeypatch.setattr(os, "replace", lambda a, b: (events.append("replace"),
                                                     real_replace(a, b))[1])
    cyrnn.save(tmp_path / "m.npz", cyrnn.Linear(2, 2))
    assert events[:2] == ["fsync", "replace"]
