"""The onnx package, imported on first use: ``import cyrnn.onnx`` works
without it, and only a call that needs it fails."""


def require_onnx():
    try:
        import onnx
        import onnx.checker
        import onnx.helper
    except ImportError as exc:
        raise ImportError('cyrnn.onnx needs the onnx package, an optional extra of cyrnn: '
                          'pip install "cyrnn[onnx]"') from exc
    return onnx
