"""cyrnn: fast CPU recurrent layers (RNN, LSTM, GRU) with backpropagation
through time, a numpy API and PyTorch's weight layout."""
from cyrnn._tape import Gradients, Tape
from cyrnn._version import __version__
from cyrnn.layers import GRU, LSTM, RNN
from cyrnn.linear import Linear
from cyrnn import losses, optim

__all__ = ["LSTM", "GRU", "RNN", "Linear", "Tape", "Gradients", "losses", "optim",
           "__version__"]
