/* trace.c - W3C trace context. See trace.h. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "trace.h"
#include "banned.h"

static int hex_lower(const char *s, size_t n, char *out)
{
    int nonzero = 0;

    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (c >= 'A' && c <= 'F')
            c = (char)(c - 'A' + 'a');
        if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f')))
            return -1;
        if (c != '0')
            nonzero = 1;
        out[i] = c;
    }
    out[n] = '\0';
    return nonzero;
}

int ks_trace_parse(const char *s, char trace_id[33], char span_id[17], char flags[3])
{
    char ver[3], t[33], sp[17], fl[3];

    /* version 00 is exactly 55 characters; later versions may append fields after '-' */
    if (!s || strlen(s) < 55 || s[2] != '-' || s[35] != '-' || s[52] != '-')
        return -1;
    if (s[55] != '\0' && s[55] != '-')
        return -1;
    if (hex_lower(s, 2, ver) < 0 || strcmp(ver, "ff") == 0)
        return -1;
    if (strcmp(ver, "00") == 0 && s[55] != '\0')
        return -1;
    if (hex_lower(s + 3, 32, t) != 1 || hex_lower(s + 36, 16, sp) != 1 ||
        hex_lower(s + 53, 2, fl) < 0)
        return -1;
    memcpy(trace_id, t, 33);
    memcpy(span_id, sp, 17);
    memcpy(flags, fl, 3);
    return 0;
}

void ks_trace_format(const char *trace_id, const char *span_id, const char *flags,
                           char out[56])
{
    /* by hand: it runs for every output, and snprintf was a visible share of emitting */
    size_t o = 0, l;

    memcpy(out, "00-", 3);
    o = 3;
    l = strnlen(trace_id, 32);
    memcpy(out + o, trace_id, l);
    o += l;
    out[o++] = '-';
    l = strnlen(span_id, 16);
    memcpy(out + o, span_id, l);
    o += l;
    out[o++] = '-';
    l = strnlen(flags, 2);
    memcpy(out + o, flags, l);
    o += l;
    out[o] = '\0';
}
