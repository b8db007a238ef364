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
