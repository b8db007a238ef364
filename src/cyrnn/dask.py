"""Dask for cyrnn (the ``dask`` extra: ``pip install "cyrnn[dask]"``).

* ``predict(model, X)``: inference over a Dask array ``(B, T, I)`` (or ids
  ``(B, T)``) chunked along the batch axis; the outputs and the final states
  come back as Dask arrays, one task per chunk. On a ``dask.distributed``
  cluster the model is scattered to every worker once per call (not once
  per chunk); elsewhere it is one key of the graph, shared by the threads of
  Dask's local scheduler. cyrnn releases the GIL for the whole pass, so the
  threads of one worker run their chunks side by side on one model.
* ``DataParallel(model, optimizer)``: data-parallel training on a
  ``dask.distributed`` cluster. Each worker holds a replica of the model and
  its optimizer (an Actor) and a shard of the data; at every step each
  replica computes the gradient of its part of the global batch with
  ``forward``/``backward``, the client sums them, and every replica applies
  the same optimizer step to the same summed gradient, so the replicas stay
  identical and equal to single-process training on the global batch (up
  to the order of floating-point sums).

Dask is started the way its users start it: pass ``client=`` (an existing
``distributed.Client``), or ``DataParallel`` starts a ``LocalCluster`` of
its own (one thread per worker process) and closes it with ``close()``;
``predict`` uses the client passed in or the default one, else Dask's
current scheduler. Scheduling and transport are Dask's: ``Client.scatter``,
``Client.submit`` and Actors.
"""
import hashlib
import os
import pickle
import threading
import time
from collections import OrderedDict

import dask
import dask.array as da
import numpy as np

from cyrnn import _checkpoint, losses, optim
from cyrnn._closing import ClosedOnExit
from cyrnn._progress import Progress
from cyrnn.sequential import backward_options

__all__ = ["predict", "DataParallel", "local_cluster", "model_token"]


# -- a cluster -----------------------------------------------------------------
# glibc's malloc in the worker processes. Dask's nanny sets
# MALLOC_TRIM_THRESHOLD_=65536 before it spawns a worker, which also fixes
# the mmap threshold at 128 KiB: every array above it is then fresh pages,
# and a training step of the medium LSTM takes about 15% longer. These keep
# arrays up to 32 MiB (glibc's largest mmap threshold) on the heap, reused.
MALLOC_ENVIRON = {"MALLOC_TRIM_THRESHOLD_": str(1 << 30),
                  "MALLOC_MMAP_THRESHOLD_": str(32 << 20)}


def local_cluster(n_workers=2, *, threads_per_worker=1, trim_memory=False, **kwargs):
    """A distributed.LocalCluster of worker processes for cyrnn: one thread
    each by default (a worker's time loops run on cyrnn's one thread).
    trim_memory=False (the default) starts the workers with MALLOC_ENVIRON
    instead of Dask's MALLOC_TRIM_THRESHOLD_; True is Dask's own setting.
    Other keywords go to LocalCluster."""
    from distributed import LocalCluster
    kwargs.setdefault("dashboard_address", ":0")
    if trim_memory:
        return LocalCluster(n_workers=n_workers, threads_per_worker=threads_per_worker,
                            processes=True, **kwargs)
    # The nanny reads distributed.nanny.pre-spawn-environ, where this
    # process's own environment wins, and writes it into os.environ: set
    # both while the workers start, then leave os.environ as it was.
    environ = dict(dask.config.get("distributed.nanny.pre-spawn-environ", {}))
    environ.update(MALLOC_ENVIRON)
    saved = {name: os.environ.get(name) for name in environ}
    os.environ.update({name: str(value) for name, value in MALLOC_ENVIRON.items()})
    try:
        with dask.config.set({"distributed.nanny.pre-spawn-environ": environ}):
            return LocalCluster(n_workers=n_workers, threads_per_worker=threads_per_worker,
                                processes=True, **kwargs)
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


# -- the model on the workers ---------------------------------------------------
def model_token(model):
    """A hex digest of the model's class, configuration and weights: equal
    tokens, equal models for inference."""
    h = hashlib.blake2b(digest_size=16)
    h.update(f"{type(model).__module__}.{type(model).__qualname__}\n{model!r}".encode())
    for name, value in model.state_dict().items():
        value = np.ascontiguousarray(value)
        h.update(f"\n{name}:{value.dtype.str}:{value.shape}".encode())
        h.update(value.data)
    return h.hexdigest()


_ARRIVED_LOCK = threading.Lock()
_ARRIVED = OrderedDict()      # token -> the model, in the process it arrived in
_ARRIVALS = {}                # token -> how many times it was unpickled here
_KEPT = 4                     # models kept per process


class _Shipped:
    """A model on its way to the workers, under its token. Unpickled, it
    counts its arrival and finds the same model already in the process if
    one came before (the cache keeps its inference packings across calls)."""

    __slots__ = ("token", "model")

    def __init__(self, token, model):
        self.token, self.model = token, model

    def __reduce__(self):
        return (_arrive, (self.token, pickle.dumps(self.model, protocol=5)))


def _arrive(token, payload):
    with _ARRIVED_LOCK:
        _ARRIVALS[token] = _ARRIVALS.get(token, 0) + 1
        model = _ARRIVED.get(token)
        if model is None:
            model = pickle.loads(payload)
            _ARRIVED[token] = model
            while len(_ARRIVED) > _KEPT:
                _ARRIVED.popitem(last=False)
        else:
            _ARRIVED.move_to_end(token)
    return _Shipped(token, model)


def arrivals():
    """{token: times unpickled} in this process (call it on the workers with
    client.run to see that a model travelled once per worker)."""
    with _ARRIVED_LOCK:
        return dict(_ARRIVALS)


def _distributed_client(client):
    """The client to use: the one passed, else distributed's default, else
    None (Dask's local scheduler)."""
    if client is not None:
        return client
    try:
        from distributed import default_client
    except ImportError:          # pragma: no cover - distributed is part of the extra
        return None
    try:
        return default_client()
    except ValueError:
        return None


# -- inference ------------------------------------------------------------------
def _flatten(states):
    """The arrays of a states structure (an array, a pair, a list of those)
    and a function that builds the structure back from them."""
    if states is None:
        return [], lambda leaves: None
    if isinstance(states, (tuple, list)):
        parts = [_flatten(s) for s in states]
        counts = [len(p[0]) for p in parts]
        kind = type(states)

        def rebuild(leaves):
            out, start = [], 0
            for (_, build), n in zip(parts, counts):
                out.append(build(leaves[start:start + n]))
                start += n
            return kind(out)
        return [leaf for p in parts for leaf in p[0]], rebuild
    return [states], lambda leaves: leaves[0]


def _call(model, x, lengths):
    """(y, states) of the batch-first chunk x, y batch first."""
    if isinstance(model, _Shipped):
        model = model.model
    batch_first = getattr(model, "batch_first", False)
    y, states = model(x if batch_first else np.swapaxes(x, 0, 1), lengths=lengths)
    return np.ascontiguousarray(y if batch_first else np.swapaxes(y, 0, 1)), states


def _run_model(model, x, lengths):
    """(y batch first, then the states' arrays) of one chunk."""
    y, states = _call(model, x, lengths)
    return (y,) + tuple(_flatten(states)[0])


def predict(model, X, *, lengths=None, client=None):
    """Inference over a Dask array: ``(y, states)``, both lazy Dask arrays.

    model : a cyrnn recurrent layer or Sequential (anything with
        ``model(x, lengths=...) -> (y, states)``).
    X : a Dask array (B, T, I), or integer ids (B, T) for a model that starts
        with an Embedding, chunked along B (other axes are made one chunk);
        batch first whatever model.batch_first says. A numpy array is
        wrapped in one chunk.
    lengths : None or an integer array (B,) (numpy or Dask), as the model's.
    client : a distributed.Client, or None for the default client if there
        is one, else Dask's current scheduler. Compute the results with that
        client (its compute(), or dask.compute while it is the default).

    Returns y, a Dask array (B, T, F) chunked as X along B, and the final
    states in the model's structure (an array (K, B, H), a pair for an LSTM,
    a list for a Sequential), each a Dask array chunked along its B axis.
    One task per chunk computes both. On a distributed cluster the model is
    scattered to every worker once, when predict is called; the arrays hold
    it until they are dropped.
    """
    X, lengths = _checked_inputs(X, lengths)
    # Shapes and dtypes of the outputs, from one sequence of zeros.
    y_like, states_like = _call(model, np.zeros((1,) + X.shape[1:], dtype=X.dtype), None)
    leaves_like, rebuild = _flatten(states_like)
    outputs = _chunk_outputs(_model_reference(model, client), X, lengths,
                             [y_like] + leaves_like)
    y = da.concatenate(outputs[0], axis=0)
    leaves = [da.concatenate(parts, axis=1) for parts in outputs[1:]]
    return y, rebuild(leaves)


def _checked_inputs(X, lengths):
    """predict's X and lengths as Dask arrays chunked alike along B, X one
    chunk along every other axis."""
    X = da.asarray(X)
    if X.ndim not in (2, 3):
        raise ValueError(f"X must be a Dask array (B, T, I) or ids (B, T), got shape {X.shape}")
    if any(np.isnan(c) for chunks in X.chunks for c in chunks):
        raise ValueError("X must have known chunk sizes (call X.compute_chunk_sizes())")
    X = X.rechunk({axis: -1 for axis in range(1, X.ndim)})
    B = X.shape[0]
    if lengths is not None:
        lengths = da.asarray(lengths)
        if lengths.shape != (B,):
            raise ValueError(f"lengths must have shape (B,) = ({B},), got {lengths.shape}")
        if lengths.dtype.kind not in "iu":
            raise TypeError(f"lengths must be an integer array, got dtype {lengths.dtype}")
        lengths = lengths.rechunk((X.chunks[0],))
    return X, lengths


def _model_reference(model, client):
    """The model as the tasks receive it: scattered once to every worker of
    a distributed client, else a delayed value of the graph."""
    token = model_token(model)
    client = _distributed_client(client)
    if client is not None:
        return client.scatter(_Shipped(token, model), broadcast=True, hash=False)
    return dask.delayed(model, name=f"cyrnn-model-{token}", traverse=False)


def _chunk_outputs(reference, X, lengths, probe):
    """One task per chunk of X along B; for each output of `probe` (y, then
    the states' leaves), the list of its chunks as Dask arrays."""
    x_blocks = X.to_delayed().reshape(-1)
    l_blocks = [None] * len(x_blocks) if lengths is None else lengths.to_delayed().reshape(-1)
    outputs = [[] for _ in probe]
    for x_block, l_block, rows in zip(x_blocks, l_blocks, X.chunks[0]):
        result = dask.delayed(_run_model, pure=True, nout=len(probe))(reference, x_block, l_block)
        for k, like in enumerate(probe):
            # y is (rows, T, F); each state (K, rows, H)
            shape = (rows,) + like.shape[1:] if k == 0 else \
                like.shape[:1] + (rows,) + like.shape[2:]
            outputs[k].append(da.from_delayed(result[k], shape=shape, dtype=like.dtype))
    return outputs


# -- data-parallel training -------------------------------------------------------
_LOSSES = ("mse", "softmax_cross_entropy", "binary_cross_entropy_with_logits")


def _counted(name, out_shape, lengths, batch_first):
    """How many terms the loss `name` averages over with reduction="mean"."""
    shape = out_shape[:-1] if name == "softmax_cross_entropy" else out_shape
    if lengths is None:
        return int(np.prod(shape, dtype=np.int64))
    return int(np.sum(lengths, dtype=np.int64)) * int(np.prod(shape[2:], dtype=np.int64))


class _SummedLoss:
    """A cyrnn.losses function as (sum, its gradient, the count of terms)."""

    def __init__(self, name):
        self.name = name

    def __call__(self, out, target, lengths, batch_first):
        loss, dout = getattr(losses, self.name)(out, target, lengths=lengths,
                                                batch_first=batch_first, reduction="sum")
        return loss, dout, _counted(self.name, out.shape, lengths, batch_first)


def _reseed(model, index):
    """Replica `index` > 0 draws its dropout masks from its own stream: each
    generator jumped `index` times (2**127 draws each for PCG64)."""
    for _, layer in _checkpoint._with_generators(model):
        bit = layer._rng.bit_generator
        if hasattr(bit, "jumped"):
            layer._rng = np.random.Generator(bit.jumped(index))
        else:                      # pragma: no cover - numpy's default is PCG64
            layer._rng = np.random.default_rng([index, int(layer._rng.integers(2**63))])


class _Replica:
    """A worker's replica: the model, its optimizer and the worker's shard
    (batch-first rows). Lives on its worker as a Dask Actor."""

    def __init__(self, payload, shard, index, loss, clip):
        self.model, self.optimizer = pickle.loads(payload)
        if index:
            _reseed(self.model, index)
        self.x, self.y, self.lengths = shard
        self.loss, self.clip = loss, clip
        self.batch_first = getattr(self.model, "batch_first", False)
        params = self.optimizer.params
        self.names = list(params)
        self.shapes = [params[name].shape for name in self.names]
        self.dtype = np.result_type(*[params[name].dtype for name in self.names])

    def _apply(self, flat):
        grads, start = {}, 0
        for name, shape in zip(self.names, self.shapes):
            size = int(np.prod(shape, dtype=np.int64))
            grads[name] = flat[start:start + size].reshape(shape)
            start += size
        if self.clip is not None:
            optim.clip_grad_norm(grads, self.clip)
        self.optimizer.step(grads)

    def step(self, summed, rows):
        """Applies the previous step's summed gradient (None at the first
        step), then returns (the sum of this worker's gradients as one flat
        array, the sum of its losses, its count of terms, seconds computing)
        for the rows `rows` of its shard; (None, 0.0, 0, 0.0) for none."""
        start = time.perf_counter()
        if summed is not None:
            self._apply(summed)
        if len(rows) == 0:
            return None, 0.0, 0, time.perf_counter() - start
        x, target = self.x[rows], self.y[rows]
        lengths = None if self.lengths is None else self.lengths[rows]
        if not self.batch_first:
            x = np.swapaxes(x, 0, 1)
            target = np.swapaxes(target, 0, 1) if target.ndim > 1 else target
        result = self.model.forward(x, lengths=lengths)
        out, tape = result[0], result[-1]
        loss, dout, count = self.loss(out, target, lengths, self.batch_first)
        # the inputs are data: no dL/dx, where the model can leave it out
        grads = self.model.backward(tape, dout, **backward_options(self.model, False)).params
        flat = np.empty(sum(int(np.prod(s, dtype=np.int64)) for s in self.shapes), self.dtype)
        start_at = 0
        for name in self.names:
            g = grads.get(name)
            if g is None:
                raise ValueError(f"the model gave no gradient for {name!r}")
            g = g.toarray() if hasattr(g, "toarray") else np.asarray(g)
            flat[start_at:start_at + g.size] = g.ravel()
            start_at += g.size
        return flat, float(loss), int(count), time.perf_counter() - start

    def finish(self, summed):
        """Applies the last summed gradient; returns the weights' token."""
        if summed is not None:
            self._apply(summed)
        return model_token(self.model)

    def payload(self):
        """The model and optimizer, pickled (with the generators' states)."""
        return pickle.dumps((self.model, self.optimizer), protocol=5)


class DataParallel(ClosedOnExit):
    """Data-parallel training of a cyrnn model on a dask.distributed cluster.

    model : a cyrnn layer or Sequential (forward/backward; any layer of the
        protocol in cyrnn.sequential).
    optimizer : a cyrnn.optim optimizer over model.parameters() (SGD, Adam,
        AdamW); it travels with the model, so its state carries on.
    loss : "mse", "softmax_cross_entropy" or
        "binary_cross_entropy_with_logits" (cyrnn.losses, mean over the
        global batch's counted terms), or a callable ``loss(out, target,
        lengths, batch_first) -> (sum of the losses, its gradient dL/dout,
        number of terms)``: the step's loss is the sum over workers divided
        by the total number of terms.
    clip : None or the largest norm of the summed gradient
        (cyrnn.optim.clip_grad_norm), applied on every replica alike.
    client : a distributed.Client (best with direct_to_workers=True, so
        that the gradients go straight between the client and the workers),
        or None to start local_cluster(n_workers) (closed by close()).
    n_workers : how many of the cluster's workers to use (default: all, or
        2 for the LocalCluster this starts).

    ``fit(X, y, lengths=...)`` splits the rows of X (batch first, axis 0)
    into one contiguous shard per worker, sends each worker its shard once,
    and trains: at every step each worker takes ``batch_size`` rows of its
    shard, so the global batch is n_workers * batch_size rows
    (``global_batches`` lists them), and the model and optimizer passed in
    are updated in place at the end. Same global batches, same seed: the
    result equals single-process training on the global batches up to the
    order of floating-point sums (the per-worker gradients are summed before
    the division by the global count). Replica 0 keeps the model's dropout
    generators; replica k > 0 draws from the same generators jumped k times.

    Per step the client receives one flat gradient from each worker and
    sends the sum back to each: 2 * n_workers * (number of parameters) *
    itemsize bytes. A lost worker ends the fit (no recovery).
    """

    def __init__(self, model, optimizer, *, loss="mse", clip=None, client=None,
                 n_workers=None):
        for method in ("forward", "backward", "parameters", "state_dict"):
            if not callable(getattr(model, method, None)):
                raise TypeError(f"model must be a cyrnn layer or Sequential, got "
                                f"{type(model).__name__} (no {method}())")
        if not isinstance(optimizer, optim._Optimizer) or isinstance(optimizer, optim.LBFGS):
            raise TypeError(f"optimizer must be a cyrnn.optim SGD, Adam or AdamW over "
                            f"model.parameters(), got {type(optimizer).__name__}")
        live = {id(a) for a in model.parameters().values()}
        if not all(id(a) in live for a in optimizer.params.values()):
            raise ValueError("optimizer must be built over model.parameters() (the live arrays "
                             "of this model)")
        if isinstance(loss, str):
            if loss not in _LOSSES:
                raise ValueError(f"loss must be one of {list(_LOSSES)} or a callable, "
                                 f"got {loss!r}")
            loss = _SummedLoss(loss)
        elif not callable(loss):
            raise TypeError(f"loss must be a name or a callable, got {type(loss).__name__}")
        if clip is not None and not (isinstance(clip, (int, float)) and clip > 0):
            raise ValueError(f"clip must be None or a number > 0, got {clip!r}")
        if n_workers is not None and (not isinstance(n_workers, int) or n_workers < 1):
            raise ValueError(f"n_workers must be None or an integer >= 1, got {n_workers!r}")
        self.model, self.optimizer, self.loss = model, optimizer, loss
        self.clip = None if clip is None else float(clip)
        self._own_cluster = None
        if client is None:
            from distributed import Client
            self._own_cluster = local_cluster(n_workers or 2)
            client = Client(self._own_cluster, direct_to_workers=True, set_as_default=False)
        self.client = client
        workers = sorted(client.scheduler_info()["workers"])
        if not workers:
            raise ValueError("the client's cluster has no workers")
        if n_workers is not None and n_workers > len(workers):
            raise ValueError(f"n_workers={n_workers} but the cluster has {len(workers)} workers")
        self.workers = workers[:n_workers] if n_workers else workers
        self.history_ = []
        self.step_seconds_ = []
        self.compute_seconds_ = []
        self.bytes_per_step_ = None

    # -- cluster ---------------------------------------------------------------
    def close(self):
        """Closes the LocalCluster this trainer started (nothing otherwise)."""
        if self._own_cluster is not None:
            self.client.close()
            self._own_cluster.close()
            self._own_cluster = None


    # -- batches ---------------------------------------------------------------
    def shards(self, n_samples):
        """The rows of each worker's shard: contiguous, sizes differing by at
        most one."""
        return np.array_split(np.arange(n_samples), len(self.workers))

    def _plan(self, n_samples, batch_size, epochs, shuffle, seed):
        """[step][worker] -> the shard-local rows of that worker's part."""
        rng = np.random.default_rng(seed)
        shards = self.shards(n_samples)
        steps = []
        for _ in range(epochs):
            orders = [rng.permutation(len(s)) if shuffle else np.arange(len(s)) for s in shards]
            n_steps = -(-max(len(s) for s in shards) // batch_size)
            for k in range(n_steps):
                steps.append([order[k * batch_size:(k + 1) * batch_size] for order in orders])
        return steps

    def global_batches(self, n_samples, *, batch_size=32, epochs=1, shuffle=True, seed=None):
        """The rows of X (global indices) in each step's global batch, in the
        order fit uses them (worker 0's part first): what single-process
        training must use to give the same result."""
        shards = self.shards(n_samples)
        return [np.concatenate([shards[w][rows] for w, rows in enumerate(step)])
                for step in self._plan(n_samples, batch_size, epochs, shuffle, seed)]

    # -- training --------------------------------------------------------------
    def _scatter_shards(self, X, y, lengths):
        futures = []
        for worker, rows in zip(self.workers, self.shards(X.shape[0])):
            start, stop = (int(rows[0]), int(rows[-1]) + 1) if len(rows) else (0, 0)
            parts = [None if a is None else a[start:stop] for a in (X, y, lengths)]
            if any(isinstance(p, da.Array) for p in parts):
                shard = self.client.compute(dask.delayed(tuple)(parts), workers=[worker])
            else:
                shard = self.client.scatter([tuple(parts)], workers=[worker], hash=False)[0]
            futures.append(shard)
        return futures

    def fit(self, X, y, *, lengths=None, epochs=1, batch_size=32, shuffle=True, seed=None,
            verbose=0):
        """Trains for `epochs` passes over (X, y); returns self. X, y and
        lengths are numpy or Dask arrays with the samples along axis 0 (y:
        the targets of the model's output, batch first). batch_size rows
        per worker per step. history_ gets each step's global mean loss,
        step_seconds_ its wall time, compute_seconds_ the slowest worker's
        time computing."""
        n = X.shape[0]
        if y.shape[0] != n or (lengths is not None and len(lengths) != n):
            raise ValueError(f"X, y and lengths must have the same number of samples, got "
                             f"{n}, {y.shape[0]} and {None if lengths is None else len(lengths)}")
        if not isinstance(batch_size, int) or batch_size < 1:
            raise ValueError(f"batch_size must be an integer >= 1, got {batch_size!r}")
        if not isinstance(epochs, int) or epochs < 1:
            raise ValueError(f"epochs must be an integer >= 1, got {epochs!r}")
        if lengths is not None and not isinstance(lengths, da.Array):
            lengths = np.asarray(lengths)
        # Actors bind to the current client when they arrive: this one, even
        # when another client is distributed's default.
        with self.client.as_current():
            model, optimizer, tokens = self._train(X, y, lengths, n, epochs, batch_size, shuffle,
                                                   seed, verbose)
        self.model.load_state_dict(model.state_dict())
        self.optimizer.load_state_dict(optimizer.state_dict())
        _checkpoint.restore_generators(self.model, _checkpoint.generator_states(model))
        self.replica_tokens_ = tokens
        return self

    def _train(self, X, y, lengths, n, epochs, batch_size, shuffle, seed, verbose):
        client = self.client
        payload = client.scatter(pickle.dumps((self.model, self.optimizer), protocol=5),
                                 broadcast=True, hash=False)
        shards = self._scatter_shards(X, y, lengths)
        actors = [client.submit(_Replica, payload, shard, index, self.loss, self.clip,
                                actor=True, workers=[worker], allow_other_workers=False,
                                pure=False).result()
                  for index, (worker, shard) in enumerate(zip(self.workers, shards))]
        plan = self._plan(n, batch_size, epochs, shuffle, seed)
        progress = Progress(len(plan), "DataParallel", bar=True if verbose else None)
        summed = None
        try:
            for step in plan:
                start = time.perf_counter()
                calls = [actor.step(summed, rows) for actor, rows in zip(actors, step)]
                results = [call.result() for call in calls]
                flats = [r[0] for r in results if r[0] is not None]
                count = sum(r[2] for r in results)
                total = flats[0].copy()
                for flat in flats[1:]:
                    total += flat
                total /= total.dtype.type(count)
                summed = total
                loss = sum(r[1] for r in results) / count
                self.history_.append(loss)
                self.step_seconds_.append(time.perf_counter() - start)
                self.compute_seconds_.append(max(r[3] for r in results))
                self.bytes_per_step_ = sum(f.nbytes for f in flats) + len(step) * total.nbytes
                progress.update(1, loss=loss)
            tokens = [call.result() for call in [actor.finish(summed) for actor in actors]]
            if len(set(tokens)) != 1:
                raise RuntimeError(f"the replicas diverged: weights tokens {tokens}")
            model, optimizer = pickle.loads(actors[0].payload().result())
        finally:
            progress.close()
            del actors
        return model, optimizer, tokens
