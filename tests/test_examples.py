"""The examples of issue 20 run from a clean checkout (shortened here by
their own options) and print what they promise."""
import pathlib
import re
import subprocess
import sys

import pytest

EXAMPLES = pathlib.Path(__file__).resolve().parent.parent / "examples"


def run_example(name, *args):
    result = subprocess.run([sys.executable, str(EXAMPLES / name), *args],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    return result.stdout


@pytest.mark.parametrize("tied", [False, True])
def test_word_language_model_runs(tied):
    out = run_example("word_language_model.py", "--epochs", "2", "--max-steps", "4",
                      "--vocab", "300", "--emsize", "16", "--nhid", "16", "--no-torch",
                      *(["--tied"] if tied else []))
    perplexity = float(re.search(r"^cyrnn\s+([\d.]+)\s+[\d,]+$", out, re.M).group(1))
    assert 1 < perplexity < 300  # learnt something: below the vocabulary's size
    assert out.count("valid perplexity") == 2


def test_time_sequence_prediction_runs():
    out = run_example("time_sequence_prediction.py", "--steps", "2", "--max-iter", "3",
                      "--length", "80", "--future", "30", "--no-torch")
    losses = [float(v) for v in re.findall(r"cyrnn step\s+\d+: loss ([\d.e+-]+)", out)]
    assert len(losses) == 2 and losses[1] < losses[0]
    assert re.search(r"first 30 unseen values|over all 30", out)
