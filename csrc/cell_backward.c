/* BPTT's cell step of every kind, for float and double. */
#define CYRNN_TEMPLATE "cell_backward_template.h"
#include "instantiate.h"
