"""cyrnn: fast CPU recurrent layers (RNN, LSTM, GRU) with backpropagation
through time, a numpy API and PyTorch's weight layout."""
from cyrnn._config import show_config
from cyrnn._sparse import RowGradient
from cyrnn._tape import Gradients, Tape
from cyrnn._threads import get_num_threads, set_num_threads
from cyrnn._version import __version__
from cyrnn.cells import GRUCell, LSTMCell, RNNCell
from cyrnn.dropout import Dropout
from cyrnn.embedding import Embedding
from cyrnn.layers import GRU, LSTM, RNN
from cyrnn.linear import Linear
from cyrnn import losses, optim
from cyrnn.sequential import Sequential, SequentialTape
from cyrnn.serialization import load, save
from cyrnn.states import detach_states

__all__ = ["LSTM", "GRU", "RNN", "LSTMCell", "GRUCell", "RNNCell", "Linear", "Embedding",
           "Dropout", "Tape", "Gradients", "RowGradient", "losses", "optim", "Sequential",
           "SequentialTape", "save", "load", "detach_states", "get_num_threads",
           "set_num_threads", "show_config", "__version__"]

# The optional extras, imported on first use (cyrnn.onnx.export(...)) so
# that `import cyrnn` needs numpy and scipy only.
_EXTRAS = ("onnx", "sklearn", "dask")


def __getattr__(name):
    if name in _EXTRAS:
        import importlib
        return importlib.import_module(f"cyrnn.{name}")
    raise AttributeError(f"module 'cyrnn' has no attribute {name!r}")
