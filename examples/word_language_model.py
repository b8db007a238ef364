"""A word-level language model: cyrnn's version of the classic
"word_language_model" example of pytorch/examples, written from its
description.

An Embedding feeds a 2-layer LSTM with dropout, then Dropout and a Linear
decoder over the vocabulary (with --tied, the decoder's weight is the
embedding table). Training is truncated backpropagation through time over
long streams of text (the state carries from one chunk to the next, the
gradient stops at the chunk's start), gradient clipping and plain SGD whose
learning rate is divided by 4 whenever the validation loss stops improving.
It prints the validation perplexity per epoch, the test perplexity, and the
words per second of training.

The text is Python's own documentation (``pydoc_data.topics``, which ships
with CPython): split into words, ``<eos>`` at each line's end, the rarest
words replaced by ``<unk>``; 80% to train, 10% to validate and 10% to test.

With torch installed (``pip install torch==2.13.0``), the same model, from
the same starting weights and on as many threads, is trained by torch in
the same run and its figures are printed beside cyrnn's.

    python examples/word_language_model.py            # about a minute
    python examples/word_language_model.py --tied
"""
import argparse
import collections
import math
import time

import numpy as np
import pydoc_data.topics

import cyrnn
from cyrnn import losses, optim


# -- the corpus ------------------------------------------------------------------
def corpus(max_vocab):
    """(train, valid, test) id arrays and the vocabulary (a list of words)."""
    lines = [line.split() + ["<eos>"] for topic in pydoc_data.topics.topics.values()
             for line in topic.splitlines() if line.strip()]
    words = [word for line in lines for word in line]
    cut1, cut2 = int(0.8 * len(words)), int(0.9 * len(words))
    counts = collections.Counter(words[:cut1])
    vocab = ["<unk>"] + [w for w, _ in counts.most_common(max_vocab - 1) if w != "<unk>"]
    index = {w: i for i, w in enumerate(vocab)}
    ids = np.array([index.get(w, 0) for w in words], dtype=np.int64)
    return ids[:cut1], ids[cut1:cut2], ids[cut2:], vocab


def batchify(ids, batch_size):
    """(T, batch_size) streams: the text cut into batch_size columns."""
    T = len(ids) // batch_size
    return ids[:T * batch_size].reshape(batch_size, T).T.copy()


def chunks(data, bptt):
    for start in range(0, len(data) - 1, bptt):
        T = min(bptt, len(data) - 1 - start)
        yield data[start:start + T], data[start + 1:start + 1 + T]


# -- cyrnn -----------------------------------------------------------------------
def build_model(vocab_size, args):
    embedding = cyrnn.Embedding(vocab_size, args.emsize, seed=0)
    decoder = cyrnn.Linear(args.nhid, vocab_size, seed=3)
    if args.tied:
        if args.nhid != args.emsize:
            raise SystemExit("--tied needs --nhid equal to --emsize")
        decoder.tie("weight", embedding)
    return cyrnn.Sequential(embedding, cyrnn.Dropout(args.dropout, seed=4),
                            cyrnn.LSTM(args.emsize, args.nhid, args.nlayers,
                                       dropout=args.dropout, seed=1),
                            cyrnn.Dropout(args.dropout, seed=2), decoder)


def evaluate(model, data, bptt):
    """The mean loss per word over data, states carried."""
    total, count, states = 0.0, 0, None
    for x, y in chunks(data, bptt):
        out, states = model(x, states)
        loss, _ = losses.softmax_cross_entropy(out, y)
        total += float(loss) * y.size
        count += y.size
    return total / count


def train_cyrnn(model, train, valid, args):
    """Trains in place; (words per second, last validation loss)."""
    lr, best, words, seconds = args.lr, math.inf, 0, 0.0
    for epoch in range(1, args.epochs + 1):
        states, start = None, time.perf_counter()
        for step, (x, y) in enumerate(chunks(train, args.bptt)):
            if args.max_steps and step >= args.max_steps:
                break
            out, states, tape = model.forward(x, states)   # states: the last chunk's values
            loss, dout = losses.softmax_cross_entropy(out, y)
            grads = model.backward(tape, dout).params
            optim.clip_grad_norm(grads, args.clip)
            params = model.parameters()
            for name, grad in grads.items():             # SGD, as the original
                if isinstance(grad, cyrnn.RowGradient):  # the embedding: only the rows seen
                    params[name][grad.indices] -= lr * grad.values
                else:
                    params[name] -= lr * grad
            words += y.size
        seconds += time.perf_counter() - start
        val = evaluate(model, valid, args.bptt)
        print(f"  cyrnn epoch {epoch}: valid perplexity {math.exp(val):8.2f}  lr {lr:g}")
        if val < best:
            best = val
        else:
            lr /= 4.0
    return words / seconds, val


# -- torch, when installed ------------------------------------------------------------
def train_torch(model, train, valid, test, args):
    """The same model in torch from cyrnn's starting weights: (words per
    second, test loss), or None without torch."""
    try:
        import torch
    except ImportError:
        return None
    from torch import nn
    torch.set_num_threads(cyrnn.get_num_threads())
    torch.manual_seed(0)
    V = model[0].num_embeddings

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.drop = nn.Dropout(args.dropout)
            self.encoder = nn.Embedding(V, args.emsize)
            self.rnn = nn.LSTM(args.emsize, args.nhid, args.nlayers, dropout=args.dropout)
            self.decoder = nn.Linear(args.nhid, V)
            if args.tied:
                self.decoder.weight = self.encoder.weight

        def forward(self, x, hidden):
            y, hidden = self.rnn(self.drop(self.encoder(x)), hidden)
            return self.decoder(self.drop(y)), hidden

    net = Net()
    with torch.no_grad():
        net.encoder.weight.copy_(torch.from_numpy(model[0].state_dict()["weight"]))
        for name, value in model[2].state_dict().items():
            getattr(net.rnn, name).copy_(torch.from_numpy(value))
        for name, value in model[4].state_dict().items():
            getattr(net.decoder, name).copy_(torch.from_numpy(value))
    criterion = nn.CrossEntropyLoss()

    def run(data, train_mode, lr=None):
        net.train(train_mode)
        hidden, total, count = None, 0.0, 0
        for step, (x, y) in enumerate(chunks(data, args.bptt)):
            if train_mode and args.max_steps and step >= args.max_steps:
                break
            x, y = torch.from_numpy(x), torch.from_numpy(y)
            if hidden is not None:
                hidden = tuple(h.detach() for h in hidden)
            with torch.set_grad_enabled(train_mode):
                out, hidden = net(x, hidden)
                loss = criterion(out.reshape(-1, V), y.reshape(-1))
            if train_mode:
                net.zero_grad()
                loss.backward()
                nn.utils.clip_grad_norm_(net.parameters(), args.clip)
                with torch.no_grad():
                    for p in net.parameters():
                        p -= lr * p.grad
            total += float(loss.detach()) * y.numel()
            count += y.numel()
        return total / count, count

    lr, best, words, seconds = args.lr, math.inf, 0, 0.0
    for epoch in range(1, args.epochs + 1):
        start = time.perf_counter()
        _, n = run(train, True, lr)
        seconds += time.perf_counter() - start
        words += n
        val, _ = run(valid, False)
        print(f"  torch epoch {epoch}: valid perplexity {math.exp(val):8.2f}  lr {lr:g}")
        if val < best:
            best = val
        else:
            lr /= 4.0
    return words / seconds, run(test, False)[0]


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--emsize", type=int, default=128, help="embedding size")
    parser.add_argument("--nhid", type=int, default=128, help="LSTM units per layer")
    parser.add_argument("--nlayers", type=int, default=2)
    parser.add_argument("--vocab", type=int, default=5000, help="words kept; the rest are <unk>")
    parser.add_argument("--lr", type=float, default=20.0, help="SGD's first learning rate")
    parser.add_argument("--clip", type=float, default=0.25, help="gradient norm clipping")
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--batch-size", type=int, default=20)
    parser.add_argument("--bptt", type=int, default=35, help="steps per chunk")
    parser.add_argument("--dropout", type=float, default=0.2)
    parser.add_argument("--tied", action="store_true", help="decoder weight = embedding table")
    parser.add_argument("--max-steps", type=int, default=0, help="chunks per epoch (0: all)")
    parser.add_argument("--no-torch", action="store_true", help="skip the torch comparison")
    args = parser.parse_args(argv)

    train_ids, valid_ids, test_ids, vocab = corpus(args.vocab)
    train = batchify(train_ids, args.batch_size)
    valid, test = batchify(valid_ids, 10), batchify(test_ids, 10)
    print(f"Python's documentation: {len(train_ids)} words to train, {len(valid_ids)} to "
          f"validate, {len(test_ids)} to test; vocabulary {len(vocab)}; "
          f"{cyrnn.get_num_threads()} thread(s)")
    model = build_model(len(vocab), args)
    twin = build_model(len(vocab), args)   # torch starts from these same weights
    speed, _ = train_cyrnn(model, train, valid, args)
    test_loss = evaluate(model, test, args.bptt)
    rows = [("cyrnn", math.exp(test_loss), speed)]
    if not args.no_torch:
        result = train_torch(twin, train, valid, test, args)
        if result is not None:
            rows.append(("torch", math.exp(result[1]), result[0]))
    print(f"\n{'':8}{'test perplexity':>16}{'train words/s':>15}")
    for name, perplexity, words_per_second in rows:
        print(f"{name:8}{perplexity:16.2f}{words_per_second:15,.0f}")


if __name__ == "__main__":
    main()
