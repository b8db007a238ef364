"""Layers that travel between processes (multiprocessing, joblib, Dask):
pickled without what cannot or need not travel, which is built anew on
arrival."""


class RebuiltOnArrival:
    """Pickles __dict__ without the attributes named in _TRANSIENT (locks,
    which cannot be pickled; scratch buffers and caches, which would only
    weigh the message), and calls _rebuild_transient() after unpickling to
    make them again. cyrnn.save's files stay pickle-free: this is for
    processes that trust each other, as pickle always is."""

    _TRANSIENT = ()

    def __getstate__(self):
        state = self.__dict__.copy()
        for name in self._TRANSIENT:
            state.pop(name, None)
        return state

    def __setstate__(self, state):
        self.__dict__.update(state)
        self._rebuild_transient()

    def _rebuild_transient(self):
        raise NotImplementedError
