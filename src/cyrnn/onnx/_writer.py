"""The graph being written: its nodes, initializers, inputs and outputs,
with unique names; and where the data stands between the layers' nodes."""
from dataclasses import dataclass
from typing import Optional

import numpy as np


class GraphWriter:
    """The nodes, initializers, inputs and outputs of the graph being built."""

    def __init__(self, onnx, elem):
        self.onnx, self.elem = onnx, elem
        self.nodes, self.inits, self.inputs, self.outputs = [], [], [], []
        self.used = set()

    def name(self, base):
        name, k = base, 1
        while name in self.used:
            name, k = f"{base}_{k}", k + 1
        self.used.add(name)
        return name

    def const(self, base, array):
        name = self.name(base)
        tensor = self.onnx.numpy_helper.from_array(np.ascontiguousarray(array), name)
        self.inits.append(tensor)
        return name

    def ints(self, base, values):
        return self.const(base, np.asarray(values, dtype=np.int64))

    def node(self, op, inputs, outputs, node_name, **attributes):
        names = [self.name(o) for o in outputs]
        self.nodes.append(self.onnx.helper.make_node(op, list(inputs), names,
                                                     name=self.name(node_name), **attributes))
        return names

    def value_info(self, name, elem, shape, doc):
        info = self.onnx.helper.make_tensor_value_info(name, elem, shape)
        info.doc_string = doc
        return info

    def rename(self, old, new):
        """Renames the value a node makes (each is made once: names are
        unique); False when no node makes it."""
        for node in reversed(self.nodes):
            for k, out in enumerate(node.output):
                if out == old:
                    node.output[k] = new
                    return True
        return False

    def name_output(self, value, name):
        """Gives the graph's output its name: the node making `value` is
        renamed (nothing has read it yet), or an Identity when `value` is the
        input."""
        if not self.rename(value, name):
            self.nodes.append(self.onnx.helper.make_node("Identity", [value], [name], name="y"))


@dataclass
class Stream:
    """Where the data stands while the layers are written: the value that
    holds it, its layout, and the values every recurrent node shares."""
    value: str
    time_major: bool
    lengths: str = ""             # sequence_lens of the recurrent nodes ("": none)
    batch: Optional[str] = None   # a 1-D tensor of the batch size, once made
