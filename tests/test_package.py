"""The package itself: what `import cyrnn` brings in, and what it leaves
to the optional extras."""
import subprocess
import sys


def test_the_extras_load_on_first_use_only():
    """`import cyrnn` imports neither onnx, sklearn nor dask; cyrnn.onnx
    and the others are there when asked for."""
    code = ("import sys, cyrnn\n"
            "assert not {'onnx', 'sklearn', 'dask'} & set(sys.modules), sys.modules.keys()\n"
            "assert callable(cyrnn.onnx.export)\n"
            "try:\n    cyrnn.nothing\nexcept AttributeError as e:\n    print(e)\n")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert "no attribute 'nothing'" in result.stdout
