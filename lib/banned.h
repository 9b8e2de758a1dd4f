/* banned.h - turns unsafe libc calls into compile errors.
 *
 * Include it LAST in a .c file, after every system header: the macros below would
 * otherwise rewrite the prototypes in <string.h> and <stdio.h>. A banned call expands to an
 * undeclared identifier named after the function, so -Werror reports
 * "sorry_strcpy_is_a_banned_function" at the call site.
 *
 * Why each is banned, and what to use instead:
 *   strcpy, strcat, strncpy  no bound, or a bound that leaves the string unterminated:
 *                            snprintf(dst, size, "%s", src), memcpy with a known length
 *   sprintf, vsprintf        no bound: snprintf, vsnprintf
 *   gets                     no bound at all: fgets, getline
 *   atoi, atol               no error report, undefined on overflow: strtoll with endptr
 *                            and errno, or a strict parser of our own
 *   atof, strtod             doubles have no place near money; they also follow the locale
 *   strtok                   hidden global state, not thread-safe: strtok_r, strcspn */
#ifndef KS_BANNED_H
#define KS_BANNED_H

#define KS_BANNED(func) sorry_##func##_is_a_banned_function

#undef strcpy
#define strcpy(...) KS_BANNED(strcpy)
#undef strcat
#define strcat(...) KS_BANNED(strcat)
#undef strncpy
#define strncpy(...) KS_BANNED(strncpy)
#undef sprintf
#define sprintf(...) KS_BANNED(sprintf)
#undef vsprintf
#define vsprintf(...) KS_BANNED(vsprintf)
#undef gets
#define gets(...) KS_BANNED(gets)
#undef atoi
#define atoi(...) KS_BANNED(atoi)
#undef atol
#define atol(...) KS_BANNED(atol)
#undef atof
#define atof(...) KS_BANNED(atof)
#undef strtod
#define strtod(...) KS_BANNED(strtod)
#undef strtok
#define strtok(...) KS_BANNED(strtok)

#endif
