"""Peak memory of a training step (and of inference, for contrast).

asv's peakmem_* reports the process's high-water resident set size, which
includes the interpreter, the imports and everything setup() allocates. So
setup() here builds only the model, x and dy (no warm-up passes, no stored
tape), and peakmem_model_and_data is the baseline to subtract.
"""
import numpy as np

from .common import CELLS, DTYPES, Problem

try:
    from cyrnn._base import RecurrentLayer  # only to stop the walk at the model
except ImportError:  # pragma: no cover
    RecurrentLayer = type(None)


def _arrays(obj, seen_ids, out):
    if isinstance(obj, np.ndarray):
        root = obj
        while isinstance(root.base, np.ndarray):
            root = root.base
        if id(root) not in seen_ids:
            seen_ids.add(id(root))
            out.append(root)
    elif isinstance(obj, dict):
        for value in obj.values():
            _arrays(value, seen_ids, out)
    elif isinstance(obj, (list, tuple)):
        for value in obj:
            _arrays(value, seen_ids, out)
    elif hasattr(obj, "__dict__") and not isinstance(obj, (type, RecurrentLayer)) \
            and id(obj) not in seen_ids:
        seen_ids.add(id(obj))  # e.g. the tape's packing layout
        _arrays(vars(obj), seen_ids, out)


class PeakMemory(Problem):
    params = [CELLS, ["small", "medium", "large"], DTYPES]
    param_names = ["cell", "size", "dtype"]
    timeout = 300

    def setup(self, cell, size, dtype):
        if size == "large" and dtype == "float64":
            raise NotImplementedError("size 'large' runs in float32 only")
        self.build(cell, size, dtype, warm=False)

    def peakmem_model_and_data(self, cell, size, dtype):
        pass

    def peakmem_inference(self, cell, size, dtype):
        self.inference()

    def peakmem_training_step(self, cell, size, dtype):
        self.training_step()

    def track_tape_bytes(self, cell, size, dtype):
        """Bytes of the arrays a tape keeps alive (the model's own parameters
        excluded), found by walking the tape's fields."""
        _, _, tape = self.model.forward(self.x, lengths=self.lengths)
        params = {id(p) for p in self.model.parameters().values()}
        seen, found = set(params), []
        fields = getattr(type(tape), "__slots__", None) or list(vars(tape))
        for name in fields:
            if name != "model":
                _arrays(getattr(tape, name, None), seen, found)
        return sum(a.nbytes for a in found)

    track_tape_bytes.unit = "bytes"
