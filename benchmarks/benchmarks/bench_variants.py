"""Stacked and bidirectional layers, and ragged batches given by lengths=."""
from .common import CELLS, Problem


class Structure(Problem):
    """num_layers in (1, 2) x bidirectional in (False, True), float32."""

    params = [CELLS, ["small", "medium"], [1, 2], [False, True]]
    param_names = ["cell", "size", "num_layers", "bidirectional"]
    timeout = 300

    def setup(self, cell, size, num_layers, bidirectional):
        self.build(cell, size, "float32", num_layers=num_layers, bidirectional=bidirectional)

    def time_inference(self, cell, size, num_layers, bidirectional):
        self.inference()

    def time_training_step(self, cell, size, num_layers, bidirectional):
        self.training_step()


class VariableLengths(Problem):
    """The same batch at full length, or with lengths= uniform in [T/4, T]
    (fixed seed; about 5/8 of the T*B steps are real). Cost should follow
    the real number of steps, so `random` should take roughly 60-70% of `full`."""

    params = [CELLS, ["small", "medium"], ["full", "random"]]
    param_names = ["cell", "size", "lengths"]
    timeout = 300

    def setup(self, cell, size, lengths):
        self.build(cell, size, "float32", lengths=(lengths == "random"))

    def time_inference(self, cell, size, lengths):
        self.inference()

    def time_training_step(self, cell, size, lengths):
        self.training_step()
