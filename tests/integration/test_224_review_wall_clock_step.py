"""224 (review): the ingress's writers waited on a condition variable with deadlines on the
wall clock (store.c: the group commit's gather of a few hundred microseconds, the kept
finishes' retry once a second). A wall clock stepped back after a deadline was computed
(NTP, a VM resumed) stretched that wait by the step: a lone request at a quiet hour sat in
the gather until another request came. The process here sees a wall clock an hour ahead of
the kernel's (an LD_PRELOAD shim of clock_gettime), which is the same thing to a deadline;
one payment at a time must still be answered at once. The waits now run on the monotonic
clock."""
import subprocess
import time

import pytest

from ingress_util import Partner, new_key, payment_body, start_ingress

SHIM = r"""
#define _GNU_SOURCE
#include <dlfcn.h>
#include <time.h>
int clock_gettime(clockid_t id, struct timespec *ts)
{
    static int (*real)(clockid_t, struct timespec *);
    int rc;
    if (!real)
        *(void **)&real = dlsym(RTLD_NEXT, "clock_gettime");
    rc = real(id, ts);
    if (rc == 0 && id == CLOCK_REALTIME)
        ts->tv_sec += 3600;
    return rc;
}
"""


@pytest.fixture
def shim(tmp_path):
    src = tmp_path / "wallshift.c"
    src.write_text(SHIM)
    so = tmp_path / "wallshift.so"
    subprocess.run(["cc", "-shared", "-fPIC", "-O2", "-o", str(so), str(src)], check=True)
    return str(so)


def test_lone_requests_answered_with_the_wall_clock_stepped(shim):
    ing = start_ingress({"LD_PRELOAD": shim, "KASIR_STORE_GATHER_US": "500"})
    try:
        p = Partner("t224")
        for _ in range(3):
            t0 = time.time()
            r = ing.pay(p, payment_body(), key=new_key(), timeout=10)
            assert r.status == 202, r
            # a claim and a finish, each through a writer's gather: well under a second
            assert time.time() - t0 < 3, time.time() - t0
            time.sleep(0.5)  # quiet: no other request wakes the writers
    finally:
        assert ing.daemon.term() == 0
