"""The registry of cells (cyrnn._cells) and what is built from it: the
layers, their parameters, the C header, and the refusal of a kind that has
no kernels."""
import dataclasses
import pathlib
import re

import numpy as np
import pytest

import cyrnn
from cyrnn import _cells, _forward
from cyrnn._packing import SequenceLayout
from cyrnn.layers import CELL_KEYS, make_layer

# written by setup.py into the source tree these tests belong to
HEADER = pathlib.Path(__file__).parent.parent / "csrc" / "generated" / "cyrnn_cells.h"


@pytest.mark.parametrize("key", CELL_KEYS)
def test_make_layer_builds_the_layer_of_each_entry(key):
    model = make_layer(key, 3, 5, bidirectional=True, seed=0)
    cell = _cells.BY_KEY[key]
    assert type(model).__name__ == cell.layer and model._cell is cell
    assert _cells.select(cell.layer, **dict(cell.options)) is cell
    shapes = cell.parameter_shapes(3, 5, 1, bias=True, bidirectional=True, proj_size=0)
    assert {k: v.shape for k, v in model.state_dict().items()} == shapes


def test_kinds_are_numbered_by_their_place_in_the_registry():
    assert [cell.kind for cell in _cells.CELLS] == list(range(len(_cells.CELLS)))
    assert len(set(CELL_KEYS)) == len(CELL_KEYS)


def test_the_c_header_numbers_and_describes_every_kind_as_the_registry_does():
    text = HEADER.read_text()
    for cell in _cells.CELLS:
        assert f"CYRNN_CELL_{cell.key} = {cell.kind}," in text
    assert f"CYRNN_CELL_COUNT = {len(_cells.CELLS)}" in text
    for fact in ("gates", "accumulators", "extra"):
        body = re.search(rf"cyrnn_cell_{fact}\(int cell\)\n\{{(.*?)\n\}}", text, re.S).group(1)
        for cell in _cells.CELLS:
            assert f"case CYRNN_CELL_{cell.key}: return {getattr(cell, fact)};" in body


def test_a_layer_option_that_selects_no_cell_is_a_type_error():
    with pytest.raises(TypeError, match="peephole"):
        _cells.select("GRU", peephole=True)


def test_the_time_loops_refuse_a_kind_without_kernels():
    """A cell outside the registry never reaches the kernels (which would
    otherwise compute nothing for it, or another cell's arithmetic)."""
    model = cyrnn.LSTM(2, 3, seed=0)
    fake = type("Fake", (), {f.name: getattr(_cells.LSTM, f.name)
                             for f in dataclasses.fields(_cells.LSTM)})()
    fake.kind = len(_cells.CELLS)
    layout = SequenceLayout.full(2, 1)
    call = model._forward_call(np.zeros((2, 1, 2), np.float32), None, None, False)
    layers, _ = model._forward_layers(call, None)
    with pytest.raises(RuntimeError, match="no kernels"):
        _forward.run(fake, False, False, layout.batch_sizes, layout.offsets, 3, 3, layers,
                     np.float32)
