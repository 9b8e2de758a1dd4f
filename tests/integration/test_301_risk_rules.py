"""301: every rule type decides as the rules file says: amount limits per method and
currency (payments and payouts), velocity by count and by sum, blocklists of buyers,
sellers, cards and accounts, new-buyer caps; the reason codes and rule ids are recorded;
approvals (only they) become PspCommands; rejections and holds reach the read model."""
from risk_util import T0, Risk, produce, psql, psql_one, risk_daemons, status  # noqa: F401

H = 3600 * 1000000
DAY = 24 * H

RULES = [
    {"id": "card-idr", "type": "amount_limit", "method": "CARD", "currency": "IDR",
     "min": "100.00", "max": "1000.00"},
    {"id": "usd-review", "type": "amount_limit", "currency": "USD", "max": "50.00",
     "action": "REVIEW"},
    {"id": "po-max", "type": "amount_limit", "flow": "payout", "currency": "IDR", "max": "500.00"},
    {"id": "vel-n", "type": "velocity", "window": "1h", "max_count": 2},
    {"id": "vel-sum", "type": "velocity", "window": "1h", "currency": "IDR",
     "max_amount": "3000.00", "action": "REJECT"},
    {"id": "bl-buyer", "type": "blocklist", "list": "buyer", "values": ["evil-buyer"]},
    {"id": "bl-seller", "type": "blocklist", "list": "seller", "values": ["evil-seller"]},
    {"id": "bl-card", "type": "blocklist", "list": "card", "values": ["fp_stolen", "tok_stolen"]},
    {"id": "bl-account", "type": "blocklist", "list": "account", "values": ["BCA:9999999999"]},
    {"id": "new-buyer", "type": "new_buyer_cap", "age": "7d", "currency": "IDR", "max": "2000.00"},
]


def test_each_rule_type(risk_daemons):
    r = Risk("t301", RULES)
    va = lambda amt, seller="s1": (seller, amt, "IDR", "VIRTUAL_ACCOUNT")  # noqa: E731
    cases = {}  # payment/payout id -> (decision, [(reason, rule)])

    def add(line, decision, *fired):
        pid = line["value"].get("payment_id") or line["value"]["payout_id"]
        cases[pid] = (decision, sorted(fired))
        return line

    lines = [
        add(r.payment(buyer="ok", orders=[va(50000)], metadata={"ref": "inv-1"}), "APPROVE"),
        # amount limits: method and currency scope them
        add(r.payment(buyer="c1", orders=[("s1", 9999, "IDR", "CARD", "tok_1")]), "REJECT",
            ("AMOUNT_BELOW_MIN", "card-idr")),
        add(r.payment(buyer="c2", orders=[("s1", 100001, "IDR", "CARD", "tok_2")]), "REJECT",
            ("AMOUNT_ABOVE_MAX", "card-idr")),
        add(r.payment(buyer="c3", orders=[("s1", 150000, "IDR", "QRIS")]), "APPROVE"),
        add(r.payment(buyer="u1", orders=[("s1", 6000, "USD", "QRIS")]), "REVIEW",
            ("AMOUNT_ABOVE_MAX", "usd-review")),
        add(r.payment(buyer="u2", orders=[("s1", 5000, "USD", "QRIS")]), "APPROVE"),
        # blocklists
        add(r.payment(buyer="evil-buyer", orders=[va(1000)]), "REJECT",
            ("BLOCKED_BUYER", "bl-buyer")),
        add(r.payment(buyer="b2", orders=[va(1000), va(1000, "evil-seller")]), "REJECT",
            ("BLOCKED_SELLER", "bl-seller")),
        add(r.payment(buyer="b3", orders=[("s1", 20000, "IDR", "CARD", "tok_stolen")]), "REJECT",
            ("BLOCKED_CARD", "bl-card")),
        add(r.payment(buyer="b4", orders=[("s1", 20000, "IDR", "CARD", "tok_fine")],
                      metadata={"card_fingerprint": "fp_stolen"}), "REJECT",
            ("BLOCKED_CARD", "bl-card")),
        # velocity by count: the third payment of the hour is one too many
        add(r.payment(buyer="fast", orders=[va(10000)], at=T0 + 1), "APPROVE"),
        add(r.payment(buyer="fast", orders=[va(10000)], at=T0 + 2), "APPROVE"),
        add(r.payment(buyer="fast", orders=[va(10000)], at=T0 + 3), "REVIEW",
            ("VELOCITY_COUNT", "vel-n")),
        # velocity by sum (the buyer is not new: seen 8 days ago)
        add(r.payment(buyer="big", orders=[va(1000)], at=T0 - 8 * DAY), "APPROVE"),
        add(r.payment(buyer="big", orders=[va(150000)], at=T0 + 10), "APPROVE"),
        add(r.payment(buyer="big", orders=[va(150001)], at=T0 + 20), "REJECT",
            ("VELOCITY_AMOUNT", "vel-sum")),
        # new-buyer cap: the same amount passes for a buyer first seen 8 days ago
        add(r.payment(buyer="newbie", orders=[va(250000)]), "REVIEW",
            ("NEW_BUYER_CAP", "new-buyer")),
        add(r.payment(buyer="veteran", orders=[va(1000)], at=T0 - 8 * DAY), "APPROVE"),
        add(r.payment(buyer="veteran", orders=[va(250000)], at=T0 + 30), "APPROVE"),
        # several rules at once: the strongest action wins, every reason is kept
        add(r.payment(buyer="evil-buyer", orders=[("s1", 6000, "USD", "QRIS")]), "REJECT",
            ("AMOUNT_ABOVE_MAX", "usd-review"), ("BLOCKED_BUYER", "bl-buyer")),
        # payouts: their own amount limit, seller and account blocklists
        add(r.payout(amount=50000), "APPROVE"),
        add(r.payout(amount=50001), "REJECT", ("AMOUNT_ABOVE_MAX", "po-max")),
        add(r.payout(amount=100, account="9999999999"), "REJECT",
            ("BLOCKED_ACCOUNT", "bl-account")),
        add(r.payout(amount=100, account="9999999999", bank="MANDIRI"), "APPROVE"),
        add(r.payout(seller="evil-seller", amount=100), "REJECT", ("BLOCKED_SELLER", "bl-seller")),
    ]
    # the ingress's row for one rejected payment exists already: risk moves it
    pre = lines[6]["value"]
    # and one approved payment's rows, EXECUTING already (an executor ahead of this check):
    # risk leaves them as they are
    done = lines[3]["value"]
    psql("INSERT INTO payments (payment_id, partner_id, checkout_id, buyer_id, status) VALUES "
         "('%s', '%s', '%s', 'c3', 'EXECUTING')"
         % (done["payment_id"], r.partner, done["checkout_id"]))
    psql("INSERT INTO payment_orders (order_id, payment_id, partner_id, seq, seller_id, "
         "amount_minor, currency, method, status) VALUES ('%s', '%s', '%s', 0, 's1', 150000, "
         "'IDR', 'QRIS', 'EXECUTING')" % (done["orders"][0]["order_id"], done["payment_id"],
                                          r.partner))
    psql("INSERT INTO payments (payment_id, partner_id, checkout_id, buyer_id, status) VALUES "
         "('%s', '%s', '%s', 'evil-buyer', 'NOT_STARTED')"
         % (pre["payment_id"], r.partner, pre["checkout_id"]))
    psql("INSERT INTO payment_orders (order_id, payment_id, partner_id, seq, seller_id, "
         "amount_minor, currency, method) VALUES ('%s', '%s', '%s', 0, 's1', 1000, 'IDR', "
         "'VIRTUAL_ACCOUNT')" % (pre["orders"][0]["order_id"], pre["payment_id"], r.partner))
    produce(lines)
    d = r.start(risk_daemons)
    got = r.wait_decided(len(cases))
    for pid, (decision, fired) in cases.items():
        dec, reasons, rules = got[pid]
        assert (dec, sorted(zip(reasons, rules))) == (decision, fired), (pid, got[pid])

    # only approvals are commands: one per order (one per payout), as the schema says
    want = {}
    for line in lines:
        v = line["value"]
        if cases[v.get("payment_id") or v["payout_id"]][0] != "APPROVE":
            continue
        if "orders" in v:
            for o in v["orders"]:
                want[o["order_id"]] = ("CHARGE", v["payment_id"], o["amount_minor"], o["currency"],
                                       o["method"])
        else:
            want[v["payout_id"]] = ("PAYOUT", None, v["amount_minor"], v["currency"],
                                    "BANK_TRANSFER")
    cmds = r.commands(len(want))
    have = {}
    for m in cmds:
        c = m["value"]
        key = c["order_id"] or c["payout_id"]
        assert m["key"] == key
        assert c["message_id"] == m["headers"]["kasir.message_id"]
        assert m["headers"]["kasir.producer"] == "risk"
        assert c["partner_id"] == r.partner and c["attempt"] == 1 and c["psp"] == "sandbox"
        assert c["psp_idempotency_key"] and c["command_id"]
        have[key] = (c["kind"], c["payment_id"], c["amount_minor"], c["currency"], c["method"])
    assert have == want
    assert len({m["headers"]["kasir.message_id"] for m in cmds}) == len(want)

    # the read model: a rejected payment FAILED (the ingress's row moved, a missing one
    # inserted), a held one NOT_STARTED, an approved one NOT_STARTED when its rows were
    # missing (an ingress that answered and died before writing them), as they were when
    # they existed
    assert status("payments", "payment_id", pre["payment_id"]) == "FAILED"
    assert status("payment_orders", "order_id", pre["orders"][0]["order_id"]) == "FAILED"
    v = lines[1]["value"]
    assert status("payments", "payment_id", v["payment_id"]) == "FAILED"
    assert status("payment_orders", "order_id", v["orders"][0]["order_id"]) == "FAILED"
    v = lines[4]["value"]
    assert status("payments", "payment_id", v["payment_id"]) == "NOT_STARTED"
    assert psql_one("SELECT status || ' ' || array_to_string(reasons, ',') FROM risk_holds "
                    "WHERE hold_id = '%s'" % v["payment_id"]) == "HELD AMOUNT_ABOVE_MAX"
    v = lines[0]["value"]
    assert psql("SELECT partner_id, checkout_id, buyer_id, status, metadata->>'ref' "
                "FROM payments WHERE payment_id = '%s'" % v["payment_id"]) == [
        [r.partner, v["checkout_id"], "ok", "NOT_STARTED", "inv-1"]]
    assert psql("SELECT order_id, seq, seller_id, amount_minor, currency, method, status "
                "FROM payment_orders WHERE payment_id = '%s'" % v["payment_id"]) == [
        [v["orders"][0]["order_id"], "0", "s1", "50000", "IDR", "VIRTUAL_ACCOUNT",
         "NOT_STARTED"]]
    v = lines[5]["value"]  # another currency
    assert status("payments", "payment_id", v["payment_id"]) == "NOT_STARTED"
    assert psql("SELECT amount_minor, currency FROM payment_orders WHERE payment_id = '%s'"
                % v["payment_id"]) == [["5000", "USD"]]
    assert status("payments", "payment_id", done["payment_id"]) == "EXECUTING"
    assert status("payment_orders", "order_id", done["orders"][0]["order_id"]) == "EXECUTING"
    assert psql_one("SELECT buyer_id FROM payments WHERE payment_id = '%s'"
                    % done["payment_id"]) == "c3"
    assert status("payouts", "payout_id", lines[21]["value"]["payout_id"]) == "FAILED"
    assert d.term() == 0
