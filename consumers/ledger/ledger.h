/* ledger.h - what the two halves of kasir-ledger share: the poster (main.c) and
 * `kasir-ledger verify` (verify.c). */
#ifndef KS_LEDGER_H
#define KS_LEDGER_H

#include <string.h>

/* Largest amount an outcome may carry: 10^15 minor units, so that an amount plus its fee
 * and a batch's sums stay far inside int64. */
#define KS_LEDGER_MAX_MINOR 1000000000000000LL

/* 1 when s can be part of an account code: not empty, no '/' (the code's separator). */
static inline int ledger_id_ok(const char *s)
{
    return s && *s && !strchr(s, '/');
}

/* `kasir-ledger verify [-c file]`: argv[0] is "verify". Returns the exit code: 0 all
 * checks hold, 1 a violation (printed), 2 bad settings, 3 PostgreSQL unreachable. */
int ledger_verify_main(int argc, char **argv);

#endif
