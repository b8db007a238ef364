/* gru kernels for float and double. */
#define CYRNN_TEMPLATE "gru_template.h"
#include "instantiate.h"
