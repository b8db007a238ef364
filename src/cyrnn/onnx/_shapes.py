"""Shape arithmetic over dimensions that may be time or batch atoms:
Slice's indices, broadcasting, and Reshape of zeros and of the model's
data (its atoms regrouped, never split)."""
import math

from cyrnn.onnx._errors import BadModel
from cyrnn.onnx._values import atom_size, data_atoms, describe_axes, describe_dims


def slice_indices(dim, start, end, step):
    """ONNX Slice's indices of one axis (its clamping rules)."""
    if start < 0:
        start += dim
    if end < 0:
        end += dim
    if step > 0:
        start, end = min(max(start, 0), dim), min(max(end, 0), dim)
    else:
        start, end = min(max(start, 0), dim - 1), min(max(end, -1), dim - 1)
    return list(range(start, end, step))


def broadcast(dims, target, where):
    """numpy's broadcast of two shapes whose entries may be time/batch atoms."""
    n = max(len(dims), len(target))
    a = [1] * (n - len(dims)) + list(dims)
    b = [1] * (n - len(target)) + list(target)
    out = []
    for x, y in zip(a, b):
        if x == y or y == 1:
            out.append(x)
        elif x == 1:
            out.append(y)
        else:
            raise BadModel(f"{where} cannot broadcast {describe_dims(dims)} to "
                           f"{describe_dims(target)}")
    return out


def reshape_dims(dims, entries, allowzero, where):
    """Reshape of a zeros tensor whose shape may hold time/batch atoms."""
    target = [dims[k] if e == 0 and not allowzero and k < len(dims) else e
              for k, e in enumerate(entries)]
    dynamic = [d for d in dims if not isinstance(d, int)]
    if [d for d in target if not isinstance(d, int)] != dynamic:
        raise BadModel(f"{where} reshapes zeros of shape {describe_dims(dims)} to {entries}, "
                       f"moving the time or batch axis")
    static = math.prod(d for d in dims if isinstance(d, int))
    known = math.prod(d for d in target if isinstance(d, int) and d != -1)
    if target.count(-1) > 1 or any(isinstance(d, int) and d < -1 for d in target):
        raise BadModel(f"{where} has a bad shape {entries}")
    if -1 in target:
        if known == 0 or static % known:
            raise BadModel(f"{where} cannot reshape {describe_dims(dims)} to {entries}")
        target[target.index(-1)] = static // known
    elif known != static:
        raise BadModel(f"{where} cannot reshape {describe_dims(dims)} to {entries}")
    return target


def regroup(axes, entries, allowzero, where):
    """Reshape of a dynamic tensor: the target's dimensions as groups of the
    atoms, in order. Splitting an atom is refused."""
    entries = _target_entries(axes, entries, allowzero, where)
    queue = [a for axis in axes for a in data_atoms(axis)]
    failure = BadModel(f"{where} reshapes {describe_axes(axes)} to "
                       f"{_describe_target(entries)}, which splits or moves what cyrnn's "
                       f"layers keep whole (time, batch, features)")
    if -1 in entries:
        return _groups_around_free(entries, queue, failure)
    groups = [_take_group(e, queue, failure) for e in entries]
    if queue:
        raise failure
    return groups


def _target_entries(axes, entries, allowzero, where):
    """Reshape's shape with each copied dimension (a 0) as ("copy", its
    atoms)."""
    entries = list(entries)
    for k, e in enumerate(entries):
        if e == 0 and not allowzero:
            if k >= len(axes):
                raise BadModel(f"{where} copies dimension {k} of a tensor of rank {len(axes)}")
            entries[k] = ("copy", data_atoms(axes[k]))
        elif isinstance(e, int) and e < -1:
            raise BadModel(f"{where} has a negative dimension {e}")
        elif e is None:
            raise BadModel(f"{where} reshapes to a dimension it cannot tell")
    if entries.count(-1) > 1:
        raise BadModel(f"{where} has more than one -1")
    return entries


def _groups_around_free(entries, queue, failure):
    """The groups of a shape with a -1: the entries before it taken from the
    front, those after it from the back, and the -1 the atoms left between."""
    split = entries.index(-1)
    front = [_take_group(e, queue, failure) for e in entries[:split]]
    back_queue = queue[::-1]
    back = []
    for e in reversed(entries[split + 1:]):
        if isinstance(e, tuple) and e[0] == "copy":
            e = ("copy", e[1][::-1])
        back.append(tuple(reversed(_take_group(e, back_queue, failure))))
    middle = back_queue[::-1]
    return front + [tuple(middle)] + back[::-1]


def _take_group(entry, atoms, failure):
    """The group of `atoms` (consumed from its front) that `entry` covers."""
    if isinstance(entry, tuple) and entry[0] == "copy":
        group = entry[1]
        if tuple(atoms[:len(group)]) != group:
            raise failure
        del atoms[:len(group)]
        return group
    if isinstance(entry, tuple):  # a time/batch atom from Shape
        if not atoms or atoms[0] != entry:
            raise failure
        return (atoms.pop(0),)
    if entry < 1:
        raise failure
    if entry == 1 and atoms and atoms[0][0] in ("T", "B") and atoms[0][1] == 1:
        return (atoms.pop(0),)  # a time or batch axis declared of size 1
    group, product = [], 1
    while product < entry:
        if not atoms:
            raise failure
        atom = atoms[0]
        size = atom_size(atom) if atom_size(atom) is not None else atom[1]
        if size is None:  # time or batch, of a size the graph does not declare
            raise failure
        product *= size
        group.append(atoms.pop(0))
    if product != entry:
        raise failure
    return tuple(group)


def _describe_target(entries):
    out = []
    for e in entries:
        if isinstance(e, tuple) and e[0] == "copy":
            out.append("0")
        elif isinstance(e, tuple):
            out.append("time" if e[0] == "T" else "batch")
        else:
            out.append(str(e))
    return "(" + ", ".join(out) + ")"
