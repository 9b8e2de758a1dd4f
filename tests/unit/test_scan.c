/* test_scan.c - lib/scan.h's pure part: points in time for --since/--until/--from. The
 * reading of topics is tested against the real broker (tests/integration/test_5xx). */
#include <stdint.h>

#include "ktest.h"
#include "lib/scan.h"

static const int64_t NOW = 1796165000000LL; /* 2026-12-01T22:43:20Z */

static void check(const char *s, int want_rc, int64_t want)
{
    int64_t ms = -7;
    int rc = ks_scan_parse_time(s, NOW, &ms);
    KT_CHECK_MSG(rc == want_rc, "%s: rc %d", s, rc);
    if (want_rc == 0)
        KT_CHECK_MSG(ms == want, "%s: %lld != %lld", s, (long long)ms, (long long)want);
}

KT_TEST(epoch_and_relative)
{
    check("0", 0, 0);
    check("1700000000000", 0, 1700000000000LL);
    check("90s", 0, NOW - 90000);
    check("30m", 0, NOW - 1800000);
    check("2h", 0, NOW - 7200000);
    check("7d", 0, NOW - 7 * 86400000LL);
    check("0s", 0, NOW);
}

KT_TEST(rfc3339)
{
    check("1970-01-01T00:00:00Z", 0, 0);
    check("2023-11-14T22:13:20Z", 0, 1700000000000LL);
    check("2023-11-14T22:13:20.250Z", 0, 1700000000250LL);
    check("2023-11-14T22:13:20.2Z", 0, 1700000000200LL);
    check("2023-11-15T05:13:20+07:00", 0, 1700000000000LL);
    check("2023-11-14T20:13:20.000-02:00", 0, 1700000000000LL);
    check("2023-11-14 22:13:20Z", 0, 1700000000000LL);
    check("2024-02-29", 0, 1709164800000LL);
    check("2000-03-01T00:00:00Z", 0, 951868800000LL);
    check("2000-02-29", 0, 951782400000LL);
}

KT_TEST(refused)
{
    const char *bad[] = {"", "yesterday", "5x", "m", "-5m", "2023-13-01", "2023-11-14T25:00:00Z",
                         "2023-11-14T22:13:20", "2023-11-14T22:13Z", "2023-11-14T22:13:20+7",
                         "2023-11-14Z", "12a", "99999999999999999999", "1.5h", " 5m",
                         /* days the month does not have, offsets past 23:59 */
                         "2023-11-31", "2023-02-29", "1900-02-29", "2023-04-31T00:00:00Z",
                         "2023-11-14T22:13:20+24:00", "2023-11-14T22:13:20-05:60",
                         /* before 1970 (negative ms are "none" and librdkafka's codes); a
                          * fraction without digits */
                         "1969-12-31T23:59:59Z", "1969-12-31T23:59:59.999Z", "1900-01-01",
                         "1970-01-01T07:00:00+07:01", "2023-11-14T22:13:20.Z", "30000d",
                         "99999999h"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        check(bad[i], -1, 0);
}

KT_MAIN(epoch_and_relative, rfc3339, refused)
