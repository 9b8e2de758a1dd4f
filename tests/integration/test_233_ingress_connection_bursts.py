"""233: bursts of hundreds of requests at once are all answered: on new connections (PSPs'
webhook senders, clients without keep-alive) and on kept-alive ones (a partner's checkout
backend behind a pool).

Under libmicrohttpd 0.9.75's epoll workers some were left unread in the ingress's sockets
for good: the client waited out its timeout with the request sent and nothing read (the
PSP sandbox showed it first, on kept-alive connections: test 333). Bursts of 400 requests
the ingress answers at once, a 404 for an unknown path (answered at its headers, on which
libmicrohttpd closes the connection, so each wave opens 400 new ones), stalled in 7 to 17
waves of 600-1,500, up to 128 requests at a time; this sends 600 waves. Bursts of
payments, which wait for PostgreSQL and Kafka (suspended, then resumed), did not stall in
2,000 waves of 400; a short burst of them checks the suspended path under the same
polling. The servers now poll() (lib/httpd.h)."""
import uuid

import pytest

from conftest import burst_connections_kept, httpburst, psql_one
from ingress_util import Partner, start_ingress


def burst(ing, path, conns, waves, *args):
    return httpburst("http://127.0.0.1:%d%s" % (ing.daemon.port, path), conns, waves, *args)


@pytest.fixture(scope="module")
def ing():
    # 400 connections from one address: above http.per_ip_connections' default (256)
    i = start_ingress({"KASIR_HTTP_PER_IP_CONNECTIONS": "1000", "KASIR_LOG_LEVEL": "warn"})
    yield i
    assert i.daemon.term() == 0


def test_burst_of_new_connections_all_answered(ing):
    r = burst(ing, "/v1/nothing-here", 400, 600)
    # a stall: requests sent and never read, answered by no one
    assert r.returncode == 0, r.stdout + r.stderr[-2000:] + ing.daemon.log_tail()
    assert r.stdout.startswith("requests=240000 2xx=0 3xx=0 4xx=240000 "), r.stdout


def test_burst_of_keepalive_payments_all_answered(ing):
    p = Partner("burst-" + uuid.uuid4().hex[:6])
    tag = uuid.uuid4().hex[:8]
    body = ('{"buyer":{"id":"buyer-b"},"checkout_id":"co-%s-{n}","payment_orders":'
            '[{"seller_id":"seller-1","amount":"150000.00","currency":"IDR","method":"qris"}]}'
            % tag)
    r = burst(ing, "/v1/payments", 400, 20, "-H", "Authorization: " + p.basic(),
              "-H", "Content-Type: application/json",
              "-H", "Idempotency-Key: burst-%s-{n}" % tag, "-d", body)
    assert r.returncode == 0, r.stdout + r.stderr[-2000:] + ing.daemon.log_tail()
    assert r.stdout.startswith("requests=8000 2xx=8000 "), r.stdout
    assert burst_connections_kept(r.stdout, 400), r.stdout
    # each answered payment was claimed once: its idempotency record is there
    got = psql_one("SELECT count(*) FROM idempotency_keys WHERE partner_id = '%s'"
                   % p.partner_id)
    assert int(got) == 8000
