"""330: fault injection (per request by X-Sandbox-Fault, and by seeded rates), the ledger
that proves nothing is charged twice under retries with one key, and latency that does
not cost a thread: a thousand delayed calls in flight at once."""
import asyncio
import base64
import concurrent.futures
import time
import uuid

from sandbox_util import sandbox  # noqa: F401


def oid():
    return "ord_" + uuid.uuid4().hex[:16]


def pi_params(o, pm="pm_card_visa"):
    return {"amount": 1000, "currency": "usd", "payment_method": pm, "confirm": True,
            "metadata": {"order_id": o}}


def charges(sb, psp, ref):
    return [e for e in sb.ledger(psp, "charge")["entries"] if e["reference"] == ref]


def test_5xx_runs_nothing(sandbox):
    o, key = oid(), "k-" + uuid.uuid4().hex
    r = sandbox.stripe("POST", "/v1/payment_intents", pi_params(o), idem=key, fault="5xx")
    assert r.status == 500 and r.json()["error"]["type"] == "api_error"
    assert charges(sandbox, "stripe", o) == []
    # not kept for the key either: the retry runs
    r = sandbox.stripe("POST", "/v1/payment_intents", pi_params(o), idem=key)
    assert r.status == 200 and "idempotent-replayed" not in r.headers
    assert len(charges(sandbox, "stripe", o)) == 1
    r = sandbox.xendit("POST", "/disbursements", {}, fault="5xx")
    assert r.status == 500 and r.json()["error_code"] == "SERVER_ERROR"
    r = sandbox.midtrans("GET", "/v2/x/status", fault="5xx")
    assert r.status == 500 and r.json()["status_code"] == "500"


def test_timeout_after_charge(sandbox):
    # Stripe: charged, answer lost; the retry with the same key gets the first answer
    o, key = oid(), "k-" + uuid.uuid4().hex
    r = sandbox.stripe("POST", "/v1/payment_intents", pi_params(o), idem=key,
                       fault="timeout_after_charge")
    assert r.dropped, r
    assert len(charges(sandbox, "stripe", o)) == 1
    r = sandbox.stripe("POST", "/v1/payment_intents", pi_params(o), idem=key)
    assert r.status == 200 and r.headers.get("idempotent-replayed") == "true"
    assert r.json()["status"] == "succeeded"
    assert len(charges(sandbox, "stripe", o)) == 1
    # Midtrans: the order id guards it; the retry is 406 and the status call finds the charge
    o = "C" + uuid.uuid4().hex[:12]
    body = {"payment_type": "qris", "transaction_details": {"order_id": o, "gross_amount": 9000}}
    assert sandbox.midtrans("POST", "/v2/charge", body, fault="timeout").dropped
    assert sandbox.midtrans("POST", "/v2/charge", body).status == 406
    assert sandbox.midtrans("GET", "/v2/%s/status" % o).json()["transaction_status"] == "pending"
    # Xendit disbursement: the key is spent, the external_id finds the one transfer
    e, key = "d-" + uuid.uuid4().hex[:10], "k-" + uuid.uuid4().hex
    body = {"external_id": e, "amount": 20000, "bank_code": "BCA", "account_holder_name": "A",
            "account_number": "123", "description": "x"}
    assert sandbox.xendit("POST", "/disbursements", body, idem=key, fault="timeout").dropped
    assert sandbox.xendit("POST", "/disbursements", body, idem=key).status == 409
    assert len(sandbox.xendit("GET", "/disbursements?external_id=" + e).json()) == 1
    assert len([x for x in sandbox.ledger("xendit", "payout")["entries"] if x["reference"] == e]) == 1
    # a held timeout keeps the connection open, then drops it
    t0 = time.time()
    r = sandbox.stripe("GET", "/v1/payment_intents/pi_x", fault="timeout,hold=400")
    assert r.dropped and time.time() - t0 >= 0.4


def test_latency_and_decline_headers(sandbox):
    t0 = time.time()
    r = sandbox.stripe("POST", "/v1/payment_intents", pi_params(oid()), fault="latency=300")
    assert r.status == 200 and time.time() - t0 >= 0.3
    o = oid()
    r = sandbox.stripe("POST", "/v1/payment_intents", pi_params(o), fault="decline")
    assert r.status == 402 and r.json()["error"]["decline_code"] == "generic_decline"
    assert charges(sandbox, "stripe", o) == []
    r = sandbox.stripe("GET", "/v1/payment_intents/pi_x", fault="explode")
    assert r.status == 400 and "explode" in r.json()["error"]
    r = sandbox.control("POST", "/_sandbox/faults", {"error_pct": 90, "timeout_pct": 20})
    assert r.status == 400


def test_rates_and_retries_never_charge_twice(sandbox):
    """30 % 5xx, 10 % timeout-after-charge, 5 % declines: every order, retried with its one
    key until it gets an answer, is charged at most once."""
    before = sandbox.control("GET", "/_sandbox/faults").json()["injected"]
    sandbox.faults(error_pct=30, timeout_pct=10, decline_pct=5, seed=42)
    orders = [oid() for _ in range(300)]

    def run(o):
        key = "order-" + o
        for attempt in range(30):
            r = sandbox.stripe("POST", "/v1/payment_intents", pi_params(o), idem=key)
            if r.dropped or r.status >= 500:
                continue
            return r.status, r.json(), attempt
        return None, None, 30

    try:
        with concurrent.futures.ThreadPoolExecutor(16) as ex:
            results = list(ex.map(run, orders))
    finally:
        sandbox.faults(error_pct=0, timeout_pct=0, decline_pct=0)
    assert all(st in (200, 402) for st, _, _ in results), [r for r in results if r[0] not in (200, 402)][:3]
    succeeded = {o for o, (st, _, _) in zip(orders, results) if st == 200}
    assert 0 < len(succeeded) < len(orders)  # some declines
    assert max(a for _, _, a in results) >= 1  # retries happened
    led = sandbox.ledger("stripe", "charge")
    mine = [e for e in led["entries"] if e["reference"] in set(orders)]
    assert sorted(e["reference"] for e in mine) == sorted(succeeded)
    assert not [k for k in led["duplicates"] if k.split("|")[2] in set(orders)]
    after = sandbox.control("GET", "/_sandbox/faults").json()["injected"]
    n = after["requests"] - before["requests"]
    errors, timeouts = after["errors"] - before["errors"], after["timeouts"] - before["timeouts"]
    assert 0.2 * n < errors < 0.4 * n and 0.04 * n < timeouts < 0.17 * n, (n, errors, timeouts)


async def _one(port, path, auth):
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(("GET %s HTTP/1.1\r\nHost: x\r\nAuthorization: %s\r\nConnection: close\r\n"
                  "X-Sandbox-Fault: latency=500\r\n\r\n" % (path, auth)).encode())
    await writer.drain()
    data = await reader.read()
    writer.close()
    return data.split(b" ", 2)[1]


async def _many(port, path, auth, n):
    return await asyncio.gather(*[_one(port, path, auth) for _ in range(n)])


def test_thousand_delayed_calls_in_flight(sandbox):
    pi = sandbox.stripe("POST", "/v1/payment_intents", {"amount": 1, "currency": "usd"}).json()
    auth = "Basic " + base64.b64encode((sandbox.keys["stripe"] + ":").encode()).decode()
    t0 = time.time()
    codes = asyncio.run(_many(sandbox.port, "/v1/payment_intents/" + pi["id"], auth, 1000))
    elapsed = time.time() - t0
    assert codes == [b"200"] * 1000
    # 1000 x 500 ms: parked on threads this would take minutes; suspended, about 0.5 s
    assert elapsed < 5, elapsed


def test_fifty_concurrent_calls_with_one_key(sandbox):
    """50 calls at once with one key: one charge (Stripe replays it to the others); one
    disbursement (Xendit refuses the key's reuse with 409)."""
    o, key = oid(), "k-" + uuid.uuid4().hex
    with concurrent.futures.ThreadPoolExecutor(50) as ex:
        rs = list(ex.map(lambda _: sandbox.stripe("POST", "/v1/payment_intents", pi_params(o),
                                                   idem=key), range(50)))
    assert {r.status for r in rs} == {200} and len({r.body for r in rs}) == 1
    assert sum(1 for r in rs if r.headers.get("idempotent-replayed") == "true") == 49
    assert len(charges(sandbox, "stripe", o)) == 1
    e, key = "d-" + uuid.uuid4().hex[:10], "k-" + uuid.uuid4().hex
    body = {"external_id": e, "amount": 20000, "bank_code": "BCA", "account_holder_name": "A",
            "account_number": "123", "description": "x"}
    with concurrent.futures.ThreadPoolExecutor(50) as ex:
        rs = list(ex.map(lambda _: sandbox.xendit("POST", "/disbursements", body, idem=key),
                         range(50)))
    assert sorted(r.status for r in rs) == [200] + [409] * 49
    assert len([x for x in sandbox.ledger("xendit", "payout")["entries"] if x["reference"] == e]) == 1
