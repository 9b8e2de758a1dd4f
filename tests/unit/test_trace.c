/* test_trace.c - W3C trace context (lib/trace.c). */
#include <stdlib.h>
#include <string.h>

#include "lib/trace.h"
#include "tests/unit/ktest.h"

KT_TEST(test_traceparent)
{
    char t[33], s[17], f[3], out[56];
    KT_INTEQ(ks_trace_parse("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", t,
                                  s, f), 0);
    KT_STREQ(t, "4bf92f3577b34da6a3ce929d0e0e4736");
    KT_STREQ(s, "00f067aa0ba902b7");
    KT_STREQ(f, "01");
    KT_INTEQ(ks_trace_parse("00-4BF92F3577B34DA6A3CE929D0E0E4736-00F067AA0BA902B7-00", t,
                                  s, f), 0);
    KT_STREQ(t, "4bf92f3577b34da6a3ce929d0e0e4736");
    KT_INTEQ(ks_trace_parse("00-00000000000000000000000000000000-00f067aa0ba902b7-01", t,
                                  s, f), -1);
    KT_INTEQ(ks_trace_parse("00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01", t,
                                  s, f), -1);
    KT_INTEQ(ks_trace_parse("ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", t,
                                  s, f), -1);
    KT_INTEQ(ks_trace_parse("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-x",
                                  t, s, f), -1);
    KT_INTEQ(ks_trace_parse("01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-x",
                                  t, s, f), 0); /* a later version may append fields */
    KT_INTEQ(ks_trace_parse("00-4bf92f3577b34da6a3ce929d0e0e473g-00f067aa0ba902b7-01", t,
                                  s, f), -1);
    KT_INTEQ(ks_trace_parse("", t, s, f), -1);
    KT_INTEQ(ks_trace_parse(NULL, t, s, f), -1);
    ks_trace_format("4bf92f3577b34da6a3ce929d0e0e4736", "1111111111111111", "01", out);
    KT_STREQ(out, "00-4bf92f3577b34da6a3ce929d0e0e4736-1111111111111111-01");
    /* formatted by hand now: longer inputs are cut to their field width, and what it
     * writes parses back */
    ks_trace_format("4bf92f3577b34da6a3ce929d0e0e4736ffff", "00f067aa0ba902b7aa", "01x",
                          out);
    KT_STREQ(out, "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01");
    KT_INTEQ(ks_trace_parse(out, t, s, f), 0);
    KT_STREQ(t, "4bf92f3577b34da6a3ce929d0e0e4736");
    KT_STREQ(s, "00f067aa0ba902b7");
    KT_STREQ(f, "01");
}

KT_MAIN(test_traceparent)
