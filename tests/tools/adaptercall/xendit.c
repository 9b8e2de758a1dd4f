/* The Xendit adapter, compiled into the driver as its own translation unit (the adapters'
 * static names are alike, as in the executor). */
#include "consumers/executor/adapter_xendit.c"
