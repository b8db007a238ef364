/* rnn kernels for float and double. */
#define CYRNN_TEMPLATE "rnn_template.h"
#include "instantiate.h"
