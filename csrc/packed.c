/* packed recurrent-product kernels for float and double. */
#define CYRNN_TEMPLATE "packed_template.h"
#include "instantiate.h"
