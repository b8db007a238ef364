"""cyrnn: fast CPU recurrent layers (RNN, LSTM, GRU) with backpropagation
through time, a numpy API and PyTorch's weight layout."""
from cyrnn._tape import Gradients, Tape
from cyrnn._version import __version__
from cyrnn.layers import GRU, LSTM, RNN

__all__ = ["LSTM", "GRU", "RNN", "Tape", "Gradients", "__version__"]
