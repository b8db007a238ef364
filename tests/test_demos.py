"""`python -m cyrnn` and the demo logic, on tiny settings and made-up data.
Nothing here needs the `demo` extra (tqdm, statsmodels, matplotlib,
threadpoolctl): a subprocess run blocks their import to prove it."""
import argparse
import io
import os
import subprocess
import sys
import types

import numpy as np
import pytest

import cyrnn
from cyrnn import _cli, _demo_charlm, _demo_forecast, _progress
from cyrnn._demo_options import add_options, check_options

# Runs python with the demo extra's packages made unimportable.
BLOCK_EXTRAS = """
import sys
class _Block:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in {"tqdm", "statsmodels", "matplotlib", "threadpoolctl"}:
            raise ImportError(f"{name} blocked for this test")
sys.meta_path.insert(0, _Block())
from cyrnn._cli import main
sys.exit(main(sys.argv[1:]))
"""


def run_cli(*args, block_extras=False, timeout=120, cwd=None):
    command = ([sys.executable, "-c", BLOCK_EXTRAS, *args] if block_extras
               else [sys.executable, "-m", "cyrnn", *args])
    env = dict(os.environ, OMP_NUM_THREADS="1")
    return subprocess.run(command, capture_output=True, text=True, timeout=timeout,
                          env=env, cwd=cwd)


@pytest.mark.parametrize("args", [["--help"], ["demo", "--help"], ["forecast", "--help"]])
def test_help_exits_zero(args):
    result = run_cli(*args)
    assert result.returncode == 0, result.stderr
    assert "usage: python -m cyrnn" in result.stdout


def test_no_subcommand_prints_help():
    result = run_cli()
    assert result.returncode == 0, result.stderr
    assert "demo" in result.stdout and "forecast" in result.stdout


def test_bad_options_exit_two():
    result = run_cli("demo", "--steps", "0")
    assert result.returncode == 2 and "--steps must be >= 1" in result.stderr
    result = run_cli("forecast", "--lr", "-1")
    assert result.returncode == 2 and "--lr must be a positive number" in result.stderr


@pytest.mark.parametrize("module", [_demo_charlm, _demo_forecast])
def test_every_bounded_option_refuses_a_value_out_of_its_range(module, capsys):
    parser = argparse.ArgumentParser()
    add_options(parser, module.OPTIONS)
    defaults = parser.parse_args([])
    check_options(parser, defaults, module.OPTIONS)  # the defaults are in range
    bounded = [o for o in module.OPTIONS if o.least is not None or o.positive]
    assert bounded
    for option in bounded:
        bad = option.least - 1 if option.least is not None else 0
        args = argparse.Namespace(**{**vars(defaults), option.dest: option.kind(bad)})
        with pytest.raises(SystemExit):
            check_options(parser, args, module.OPTIONS)
        assert f"{option.flag} must be" in capsys.readouterr().err


def test_tiny_demo_runs_without_the_demo_extra(tmp_path):
    result = run_cli("demo", "--steps", "3", "--max-chars", "6000", "--hidden-size", "8",
                     "--batch-size", "4", "--seq-len", "10", "--sample-length", "20",
                     "--save", str(tmp_path / "lm.npz"), block_extras=True)
    assert result.returncode == 0, result.stderr
    assert "training loss" in result.stdout and "--- sample" in result.stdout
    assert "examples/" in result.stdout and "README" in result.stdout
    assert "threadpoolctl is not installed" in result.stderr
    model = cyrnn.load(tmp_path / "lm.npz")
    assert isinstance(model, cyrnn.Sequential)


def test_tiny_forecast_runs_on_a_csv_without_the_demo_extra(tmp_path):
    t = np.arange(120)
    csv = tmp_path / "series.csv"
    csv.write_text("year,value\n" + "".join(f"{1900 + i},{50 + 40 * np.sin(i / 2):.3f}\n"
                                            for i in t))
    result = run_cli("forecast", "--data", str(csv), "--test-size", "20", "--window", "12",
                     "--steps", "5", "--ensemble", "2", "--hidden-size", "4", "--plot", "",
                     "--season", "13", block_extras=True)
    assert result.returncode == 0, result.stderr
    assert "persistence" in result.stdout and "seasonal naive (13 back)" in result.stdout
    result = run_cli("forecast", "--test-size", "20", block_extras=True)   # needs statsmodels
    assert result.returncode == 1 and "statsmodels" in result.stderr


# -- the char LM logic ---------------------------------------------------------
def test_default_corpus_is_ascii_python_source():
    text = _demo_charlm.default_corpus(20_000)
    assert len(text) == 20_000 and text.isascii()
    assert "def " in text and "return" in text
    assert len(_demo_charlm.builtin_docstrings()) > 1000


def test_vocabulary_round_trip():
    vocab = _demo_charlm.Vocabulary("hello world")
    assert len(vocab) == 8
    assert vocab.decode(vocab.encode("world hello")) == "world hello"
    with pytest.raises(ValueError, match="'z' is not in the vocabulary"):
        vocab.encode("z")


def test_char_lm_learns_a_repeating_text():
    text = "abcdefgh" * 200
    vocab = _demo_charlm.Vocabulary(text)
    model = _demo_charlm.build_model(len(vocab), 16, seed=0)
    ids = vocab.encode(text)
    before = _demo_charlm.evaluate(model, ids, batch_size=4)
    result = _demo_charlm.train(model, ids, steps=60, batch_size=4, seq_len=16, lr=3e-2,
                                progress=None)
    after = _demo_charlm.evaluate(model, ids, batch_size=4)
    assert after < 0.3 * before, (before, after)
    assert result["chars_per_second"] > 0 and len(result["losses"]) == 60
    sample = _demo_charlm.sample(model, vocab, prime="abc", length=16, temperature=0.1)
    assert sample.startswith("abc") and "defgh" in sample
    again = _demo_charlm.sample(model, vocab, prime="abc", length=16, temperature=0.1)
    assert again == sample                                   # seeded


def test_run_on_a_text_file(tmp_path):
    path = tmp_path / "text.txt"
    path.write_text("the quick brown fox jumps over the lazy dog\n" * 40)
    parser = argparse.ArgumentParser()
    add_options(parser, _demo_charlm.OPTIONS)
    args = parser.parse_args(["--text", str(path), "--steps", "4", "--hidden-size", "8",
                              "--batch-size", "2", "--seq-len", "8", "--sample-length", "10",
                              "--prime", "the "])
    lines = []
    summary = _demo_charlm.run(args, progress=None, out=lines.append)
    assert summary["vocab_size"] == len(set(path.read_text()))
    assert summary["sample"].startswith("the ") and len(summary["sample"]) == 14
    assert any("held-out loss" in line for line in lines)


# -- the forecast logic --------------------------------------------------------
def test_baselines_and_scores():
    values = np.arange(30, dtype=float) ** 2
    np.testing.assert_array_equal(_demo_forecast.persistence(values, 25), values[24:29])
    np.testing.assert_array_equal(_demo_forecast.seasonal_naive(values, 25, 11),
                                  values[14:19])
    with pytest.raises(ValueError, match="season"):
        _demo_forecast.seasonal_naive(values, 5, 11)
    s = _demo_forecast.scores([1.0, 3.0], [2.0, 2.0])
    assert s == {"mae": 1.0, "rmse": 1.0}


def test_forecaster_beats_the_baselines_on_a_noisy_cycle():
    """A made-up 'solar cycle' of varying amplitude plus noise: the LSTM's
    one-step forecasts beat persistence and the seasonal naive forecast."""
    rng = np.random.default_rng(0)
    t = np.arange(260)
    values = 60 + 50 * np.sin(2 * np.pi * t / 10.7) * (1 + 0.3 * np.sin(t / 40)) \
        + 3 * rng.standard_normal(len(t))
    forecast, histories, _ = _demo_forecast.forecast_series(
        values, 30, ensemble=1, hidden_size=16, steps=250, window=30, lr=1e-2, progress=None)
    truth = values[-30:]
    lstm = _demo_forecast.scores(forecast, truth)["mae"]
    assert lstm < _demo_forecast.scores(_demo_forecast.persistence(values, 230), truth)["mae"]
    assert lstm < _demo_forecast.scores(_demo_forecast.seasonal_naive(values, 230, 11),
                                        truth)["mae"]
    assert np.mean(histories[0][-20:]) < 0.2 * np.mean(histories[0][:5])


def test_load_csv_forms(tmp_path):
    one = tmp_path / "one.csv"
    one.write_text("value\n1\n2\n3\n")
    index, values = _demo_forecast.load_csv(one)
    np.testing.assert_array_equal(index, [0, 1, 2])
    np.testing.assert_array_equal(values, [1, 2, 3])
    two = tmp_path / "two.csv"
    two.write_text("2000,1.5\n2001,2.5\n")
    index, values = _demo_forecast.load_csv(two)
    assert index.dtype.kind == "i" and list(index) == [2000, 2001]
    bad = tmp_path / "bad.csv"
    bad.write_text("1\n2\nthree\n")
    with pytest.raises(ValueError, match="line 3"):
        _demo_forecast.load_csv(bad)
    ragged = tmp_path / "ragged.csv"
    ragged.write_text("1\n2,3\n")
    with pytest.raises(ValueError, match="one column"):
        _demo_forecast.load_csv(ragged)


# -- the progress display ------------------------------------------------------
def test_progress_falls_back_to_plain_lines_without_tqdm(monkeypatch):
    monkeypatch.setattr(_progress, "_tqdm", None)
    out = io.StringIO()
    with _progress.Progress(20, "training", file=out) as bar:
        for _ in range(20):
            bar.update(1, loss=1.5, chars_s=12345.0)
    lines = out.getvalue().splitlines()
    assert len(lines) == 10
    assert lines[-1].startswith("training step 20/20") and "chars_s 12,345" in lines[-1]


def test_progress_uses_tqdm_when_present(monkeypatch):
    calls = []

    class FakeTqdm:
        def __init__(self, **kwargs):
            calls.append(("init", kwargs["total"]))

        def set_postfix(self, stats, refresh=False):
            calls.append(("postfix", dict(stats)))

        def update(self, n):
            calls.append(("update", n))

        def close(self):
            calls.append(("close",))

    monkeypatch.setattr(_progress, "_tqdm", FakeTqdm)
    with _progress.Progress(2, "x", file=io.StringIO()) as bar:
        bar.update(1, loss=0.5)
    assert calls == [("init", 2), ("postfix", {"loss": "0.500"}), ("update", 1), ("close",)]
    calls.clear()
    out = io.StringIO()
    with _progress.Progress(2, "x", bar=False, file=out) as bar:
        bar.update(1)
    assert calls == [] and out.getvalue().startswith("x step 1/2")
    out = io.StringIO()
    with _progress.Progress(2, "x", bar=None, file=out) as bar:
        bar.update(2)
    assert calls == [] and out.getvalue() == ""


def test_cli_parser_lists_both_commands():
    parser = _cli.build_parser()
    args = parser.parse_args(["forecast", "--plot", "x.png"])
    assert args.command == "forecast" and args.plot == "x.png" and args.threads == 1
    assert isinstance(parser, argparse.ArgumentParser)
    assert isinstance(_cli.NEXT_STEPS, str) and "examples/" in _cli.NEXT_STEPS
    assert isinstance(_demo_forecast, types.ModuleType)
