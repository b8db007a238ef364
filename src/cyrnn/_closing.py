"""A base for objects that hold something to release (a progress bar, a
cluster): `with obj:` calls obj.close() on the way out, however it ends."""


class ClosedOnExit:
    def close(self):
        raise NotImplementedError

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
