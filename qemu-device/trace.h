#include "trace/trace-hw_misc_partlink.h"
