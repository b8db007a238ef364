/* lstm kernels for float and double. */
#define CYRNN_TEMPLATE "lstm_template.h"
#include "instantiate.h"
