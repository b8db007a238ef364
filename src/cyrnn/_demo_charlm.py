"""`python -m cyrnn demo`: a character-level LSTM language model.

It reads a corpus that every Python installation carries (the source of
some standard-library modules, found through importlib; the docstrings of
the builtins if the sources are not installed), trains
Sequential(LSTM, Linear) on next-character prediction with truncated BPTT
over parallel streams of the text, and samples from the trained model.
Every piece is an importable function so that tests (and curious users)
can run it on tiny settings; examples/char_lm.py is the same thing as a
short script."""
import builtins
import importlib.util
import math
import time

import numpy as np

import cyrnn
from cyrnn import losses, optim
from cyrnn._demo_options import Option
from cyrnn._progress import Progress

# Pure-Python standard-library modules present from Python 3.10 on.
CORPUS_MODULES = (
    "textwrap", "string", "fnmatch", "glob", "shlex", "bisect", "heapq", "colorsys",
    "calendar", "fractions", "statistics", "queue", "sched", "contextlib", "difflib",
    "dataclasses", "functools", "argparse", "random", "csv", "json.decoder",
    "json.encoder", "pprint", "tokenize", "inspect", "typing",
)


# -- the corpus ----------------------------------------------------------------
def module_source(name):
    """The source text of a module, or None if it is not installed as source."""
    try:
        spec = importlib.util.find_spec(name)
        if spec is None or spec.loader is None or not hasattr(spec.loader, "get_source"):
            return None
        return spec.loader.get_source(name)
    except (ImportError, OSError, ValueError, SyntaxError):
        return None


def builtin_docstrings():
    """The docstrings of the builtins: there even when no .py is installed."""
    docs = []
    for name in sorted(vars(builtins)):
        doc = getattr(getattr(builtins, name), "__doc__", None)
        if isinstance(doc, str) and not name.startswith("_"):
            docs.append(f"{name}\n{doc.strip()}\n")
    return "\n".join(docs)


def default_corpus(max_chars=300_000):
    """Up to max_chars characters of standard-library source (whole modules,
    in CORPUS_MODULES order), or the builtins' docstrings without sources;
    characters outside ASCII become "?" (they are rare, and each would cost
    the model an input and an output)."""
    if max_chars < 1:
        raise ValueError(f"max_chars must be >= 1, got {max_chars}")
    parts, total = [], 0
    for name in CORPUS_MODULES:
        source = module_source(name)
        if not source:
            continue
        parts.append(source)
        total += len(source)
        if total >= max_chars:
            break
    text = "\n".join(parts) if parts else builtin_docstrings()
    return text[:max_chars].encode("ascii", "replace").decode("ascii")


class Vocabulary:
    """The characters of a text, each mapped to an index (sorted order)."""

    def __init__(self, text):
        if not isinstance(text, str) or not text:
            raise ValueError("text must be a non-empty string")
        self.chars = sorted(set(text))
        self._index = {c: i for i, c in enumerate(self.chars)}

    def __len__(self):
        return len(self.chars)

    def encode(self, text):
        """str -> int array; a character outside the vocabulary is a ValueError."""
        try:
            return np.fromiter((self._index[c] for c in text), dtype=np.intp, count=len(text))
        except KeyError as exc:
            raise ValueError(f"character {exc.args[0]!r} is not in the vocabulary") from None

    def decode(self, ids):
        return "".join(self.chars[i] for i in ids)


# -- the model -----------------------------------------------------------------
def build_model(vocab_size, hidden_size=128, num_layers=1, *, seed=0, dtype=np.float32):
    """Sequential(LSTM(vocab_size -> hidden_size), Linear(hidden_size -> vocab_size)):
    one-hot characters in, next-character logits out. The forget gates'
    biases start at 1, a common help for remembering over long spans."""
    lstm = cyrnn.LSTM(vocab_size, hidden_size, num_layers, seed=seed, dtype=dtype)
    head = cyrnn.Linear(hidden_size, vocab_size, seed=seed + 1, dtype=dtype)
    params = lstm.parameters()
    for layer in range(num_layers):
        params[f"bias_ih_l{layer}"][hidden_size:2 * hidden_size] = 1.0
    return cyrnn.Sequential(lstm, head)


def one_hot(ids, size, dtype=np.float32):
    out = np.zeros(ids.shape + (size,), dtype=dtype)
    np.put_along_axis(out, ids[..., None], 1, axis=-1)
    return out


def streams(ids, batch_size):
    """The text cut into batch_size equally long parallel streams, (L, B):
    column b continues where it left off from one chunk to the next, so the
    LSTM's final state of one chunk is the right initial state of the next."""
    length = len(ids) // batch_size
    if length < 2:
        raise ValueError(f"the text ({len(ids)} characters) is too short for "
                         f"batch_size={batch_size}")
    return ids[:length * batch_size].reshape(batch_size, length).T


def train(model, ids, *, steps, batch_size=32, seq_len=100, lr=1e-2, clip=1.0,
          progress=True, on_step=None):
    """Truncated BPTT over parallel streams: each step trains on the next
    seq_len characters of every stream, starting from the states the last
    step ended with (values carried, gradient cut). progress: True for
    tqdm's bar (plain lines without tqdm), False for plain lines, None for
    silence. Returns a dict with the per-step losses (nats per character),
    elapsed seconds and characters/s."""
    data = streams(ids, batch_size)
    if len(data) < seq_len + 1:
        raise ValueError(f"the text is too short for seq_len={seq_len} with "
                         f"batch_size={batch_size}")
    vocab_size = model.input_size
    opt = optim.Adam(model.parameters(), lr=lr)
    history, states, pos = [], None, 0
    start = time.perf_counter()
    with Progress(steps, "training", bar=progress) as bar:
        for step in range(steps):
            if pos + seq_len + 1 > len(data):        # end of the text: start over
                pos, states = 0, None
            chunk = data[pos:pos + seq_len + 1]
            pos += seq_len
            x = one_hot(chunk[:-1], vocab_size, model.dtype)
            logits, states, tape = model.forward(x, states)
            loss, dlogits = losses.softmax_cross_entropy(logits, chunk[1:])
            grads = model.backward(tape, dlogits, input_grad=False).params
            optim.clip_grad_norm(grads, clip)
            opt.step(grads)
            states = cyrnn.detach_states(states)        # carry the values, cut the gradient
            history.append(float(loss))
            elapsed = time.perf_counter() - start
            bar.update(1, loss=float(np.mean(history[-20:])),
                       chars_s=(step + 1) * seq_len * batch_size / elapsed)
            if on_step is not None:
                on_step(step, float(loss))
    elapsed = time.perf_counter() - start
    return {"losses": history, "seconds": elapsed,
            "chars_per_second": steps * seq_len * batch_size / elapsed if steps else 0.0}


def evaluate(model, ids, *, batch_size=32):
    """Mean cross-entropy (nats per character) of predicting each next
    character of ids, read as batch_size parallel streams in one pass."""
    data = streams(ids, batch_size)
    logits, _ = model(one_hot(data[:-1], model.input_size, model.dtype))
    loss, _ = losses.softmax_cross_entropy(logits, data[1:])
    return float(loss)


def sample(model, vocab, *, prime="\n", length=400, temperature=0.8, seed=0):
    """Text generated after `prime`: each next character drawn from
    softmax(logits / temperature), one step at a time with the state carried."""
    if not prime:
        raise ValueError("prime must be at least one character")
    if not temperature > 0:
        raise ValueError(f"temperature must be > 0, got {temperature}")
    rng = np.random.default_rng(seed)
    ids = vocab.encode(prime)
    logits, states = model(one_hot(ids[:, None], len(vocab), model.dtype))
    last = logits[-1, 0]
    out = []
    for _ in range(length):
        z = last.astype(np.float64) / temperature
        p = np.exp(z - z.max())
        nxt = int(rng.choice(len(p), p=p / p.sum()))
        out.append(nxt)
        logits, states = model(one_hot(np.array([[nxt]]), len(vocab), model.dtype), states)
        last = logits[-1, 0]
    return prime + vocab.decode(out)


# -- the command ---------------------------------------------------------------
OPTIONS = (
    Option("--text", metavar="PATH",
           help="train on this UTF-8 text file instead of the built-in corpus "
                "(standard-library source code)"),
    Option("--max-chars", int, 300_000, "characters of the built-in corpus to use", least=1),
    Option("--steps", int, 1500,
           "training steps (default: %(default)s, about a minute on 2 cores)", least=1),
    Option("--hidden-size", int, 128, "LSTM units", least=1),
    Option("--num-layers", int, 1, "stacked LSTM layers", least=1),
    Option("--batch-size", int, 32, "parallel streams of text per step", least=1),
    Option("--seq-len", int, 100, "characters per stream per step: the BPTT truncation",
           least=1),
    Option("--lr", float, 1e-2, "Adam's learning rate", positive=True),
    Option("--clip", float, 1.0, "gradient norm clipping", positive=True),
    Option("--sample-length", int, 400, "characters to generate at the end", least=0),
    Option("--temperature", float, 0.7,
           "sampling temperature; lower is more conservative", positive=True),
    Option("--prime", str, "def ", "text the sample starts from (default: %(default)r)"),
    Option("--seed", int, 0, "seed for the weights and the sampling", least=0),
    Option("--save", metavar="PATH",
           help="save the trained model here (cyrnn.save; load with cyrnn.load)"),
)


def run(args, *, progress=True, out=print):
    """The demo from parsed arguments; returns a summary dict."""
    if args.text:
        with open(args.text, encoding="utf-8", errors="replace") as f:
            text = f.read()
        source = args.text
    else:
        text = default_corpus(args.max_chars)
        source = "standard-library source code"
    if not text:
        raise ValueError("the training text is empty")
    vocab = Vocabulary(text + args.prime)
    ids = vocab.encode(text)
    held_out = max(len(ids) // 20, args.batch_size * 2)
    if len(ids) - held_out < args.batch_size * (args.seq_len + 1):
        raise ValueError(f"the text ({len(ids)} characters) is too short for "
                         f"--batch-size {args.batch_size} and --seq-len {args.seq_len}")
    train_ids, test_ids = ids[:-held_out], ids[-held_out:]
    out(f"corpus: {len(text):,} characters of {source}, {len(vocab)} distinct; "
        f"{len(test_ids):,} held out")
    model = build_model(len(vocab), args.hidden_size, args.num_layers, seed=args.seed)
    n_params = sum(p.size for p in model.parameters().values())
    out(f"model: {type(model.layers[0]).__name__} {args.hidden_size} x {args.num_layers} "
        f"+ Linear head, {n_params:,} parameters; "
        f"{args.steps} steps of {args.batch_size} x {args.seq_len} characters")
    eval_batch = min(args.batch_size, max(1, len(test_ids) // 2))
    before = evaluate(model, test_ids, batch_size=eval_batch)
    result = train(model, train_ids, steps=args.steps, batch_size=args.batch_size,
                   seq_len=args.seq_len, lr=args.lr, clip=args.clip, progress=progress)
    after = evaluate(model, test_ids, batch_size=eval_batch)
    history = result["losses"]
    k = max(1, len(history) // 20)
    first, last = float(np.mean(history[:k])), float(np.mean(history[-k:]))
    out(f"training loss: {first:.3f} -> {last:.3f} nats/char "
        f"({result['chars_per_second']:,.0f} chars/s, {result['seconds']:.1f} s)")
    out(f"held-out loss: {before:.3f} -> {after:.3f} nats/char "
        f"({after / math.log(2):.2f} bits/char; uniform guessing: "
        f"{math.log(len(vocab)):.3f})")
    if args.save:
        cyrnn.save(args.save, model)
        out(f"saved the model to {args.save} (reload: model = cyrnn.load({args.save!r}))")
    text_out = ""
    if args.sample_length:
        text_out = sample(model, vocab, prime=args.prime, length=args.sample_length,
                          temperature=args.temperature, seed=args.seed)
        out(f"\n--- sample (temperature {args.temperature}, seed {args.seed}) ---")
        out(text_out)
        out("--- end of sample ---\n")
    return {"first_loss": first, "last_loss": last, "held_out_before": before,
            "held_out_after": after, "chars_per_second": result["chars_per_second"],
            "seconds": result["seconds"], "sample": text_out, "vocab_size": len(vocab)}
