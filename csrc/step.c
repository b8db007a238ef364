/* fused cell-step kernels for float and double. */
#define CYRNN_TEMPLATE "step_template.h"
#include "instantiate.h"
