/* A model library with the ABI version but no entry points. */

#include "kserve_cuda_backend.h"

KSV_CUDA_DEFINE_ABI_VERSION;
