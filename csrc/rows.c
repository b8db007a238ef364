/* rows kernels for float and double. */
#define CYRNN_TEMPLATE "rows_template.h"
#include "instantiate.h"
