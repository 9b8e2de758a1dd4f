/* trace.h - W3C trace context (traceparent), carried from every input to its outputs.
 * Pure functions; the one parser every daemon uses. */
#ifndef KS_TRACE_H
#define KS_TRACE_H

/* W3C traceparent "00-<32 hex trace>-<16 hex span>-<2 hex flags>": 0 and the parts
 * (lower case) when valid, -1 otherwise (all-zero ids are invalid). */
int ks_trace_parse(const char *s, char trace_id[33], char span_id[17], char flags[3]);
/* Writes "00-trace-span-flags" (56 characters + NUL) into out. */
void ks_trace_format(const char *trace_id, const char *span_id, const char *flags,
                     char out[56]);

#endif
