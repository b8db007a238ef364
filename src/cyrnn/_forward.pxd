# The forward loops for a caller that keeps its plan between calls (the
# stream, _stream.pyx, runs a one-step plan at every step): the plan's
# weights packed once, then the pass run as often as needed.
from cyrnn._plan cimport Plan

cdef void pack_plan(Plan *p, bint single) noexcept nogil
cdef void run_forward(const Plan *p, bint single) noexcept nogil
