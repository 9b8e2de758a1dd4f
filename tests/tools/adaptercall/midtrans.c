/* The Midtrans adapter, compiled into the driver as its own translation unit. */
#include "consumers/executor/adapter_midtrans.c"
