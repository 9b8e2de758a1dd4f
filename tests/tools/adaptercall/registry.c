/* adapter.c (registry and helpers) and adapter_util.c for the driver. The registry names
 * the sandbox and Stripe adapters too, which live in files this test tool does not
 * compile: here those names stand for the Xendit adapter, so no fake adapter exists. */
#define ex_adapter_sandbox ex_adapter_xendit
#define ex_adapter_stripe ex_adapter_xendit
#include "consumers/executor/adapter.c"
#undef ex_adapter_sandbox
#undef ex_adapter_stripe
#include "consumers/executor/adapter_util.c"
