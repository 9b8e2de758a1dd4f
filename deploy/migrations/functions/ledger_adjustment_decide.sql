-- ledger_adjustment_decide(): approves or rejects a requested adjustment of the partner.
-- The two-person rule: the approving API key must differ from the requesting one (the
-- same key is "same_key": nothing changes); another partner's adjustment is "not_found".
-- fee_revenue and psp_clearing are Kasir's own accounts, shared by every partner: deciding
-- an adjustment of them needs p_global, the deciding key's scope ledger:global (without it
-- "global_scope": nothing changes, the request stays REQUESTED), but for the requesting key
-- withdrawing its own request (a reject); and an approval needs the requesting key to hold
-- ledger:global too, read from api_keys now ("global_scope_requester": a request made
-- without it, by an ingress that did not check, can only be rejected). Two operators, never
-- one operator and a partner's admin.
-- suspense/<partner>/<CUR> is the partner's: a credit of the seller from it needs its
-- balance (late captures, debits of sellers), locked and read like a wallet's
-- ("insufficient_suspense", "available_minor": n); the partner cannot create money there.
-- An approval posts the entry now, through ledger_post (balanced, hash-chained on chain
-- 'sql:adjustments', published by kasir-ledger), in this transaction:
--   seller_wallet  -amount (a credit of the seller when amount > 0)
--   counter        +amount (suspense/<partner>/<CUR>, fee_revenue/<CUR> or
--                           psp_clearing/<psp>/<CUR>)
-- A debit of the wallet needs the funds: its stripes are locked and its available balance
-- read first (as for a payout hold): "insufficient_funds" leaves the request REQUESTED.
-- A request past expires_at becomes EXPIRED ("expired"); rejected and expired requests post
-- nothing. Deciding a decided request again: "unchanged" (same decision) or "conflict".
-- Returns {"outcome": ..., "adjustment": {...}, "available_minor": n (insufficient_funds,
-- insufficient_suspense)}.
-- The six-argument form at the end of this file is an ingress's that passes no scope (one
-- not yet upgraded in a rolling deploy): it decides no adjustment of a global account and
-- raises insufficient_privilege (42501) instead of an outcome that ingress does not know.
-- Deploy order: this file before the ingress that calls the seven-argument form (it fails
-- to prepare its statement without it). Rolling back to a file without it leaves this form
-- unused and replaces the six-argument one.
-- Locks: the adjustment's row; an approval then the chain row 'sql:adjustments' (first, as
-- ledger_post would later: two approvals, one holding an account's stripes and waiting for
-- the chain, the other holding the chain and waiting for those stripes, deadlocked), the
-- seller wallet's balance stripes (a debit) or the suspense account's (a credit from it),
-- and what ledger_post locks.
-- Runs as its owner (SECURITY DEFINER): the one way a daemon's role (the ingress's) posts
-- into the ledger from SQL; callers: kasir_ingress and the owner.
-- Repeatable: re-applied by the migration runner whenever this file changes.
CREATE OR REPLACE FUNCTION ledger_adjustment_decide(p_partner text, p_id text,
                                                    p_approve boolean, p_key text,
                                                    p_actor text, p_note text,
                                                    p_global boolean)
RETURNS jsonb LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $$
DECLARE
    a ledger_adjustments%ROWTYPE;
    target text := CASE WHEN p_approve THEN 'APPROVED' ELSE 'REJECTED' END;
    wallet text;
    counter text;
    source text;
    avail bigint;
    entry bigint;
BEGIN
    IF coalesce(p_actor, '') = '' OR coalesce(p_note, '') = '' OR coalesce(p_key, '') = '' THEN
        RAISE EXCEPTION 'an adjustment decision needs who (key, actor) and why (note)'
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    SELECT * INTO a FROM ledger_adjustments
     WHERE adjustment_id = p_id AND partner_id = p_partner FOR UPDATE;
    IF NOT FOUND THEN
        RETURN jsonb_build_object('outcome', 'not_found');
    END IF;
    IF a.status = 'REQUESTED' AND a.expires_at <= now() THEN
        UPDATE ledger_adjustments SET status = 'EXPIRED' WHERE adjustment_id = a.adjustment_id
        RETURNING * INTO a;
    END IF;
    IF a.status <> 'REQUESTED' THEN
        RETURN jsonb_build_object('outcome', CASE WHEN a.status = target THEN 'unchanged'
                                                  WHEN a.status = 'EXPIRED' THEN 'expired'
                                                  ELSE 'conflict' END,
                                  'adjustment', ledger_adjustment_json(a));
    END IF;
    IF p_approve AND p_key = a.requested_key THEN
        RETURN jsonb_build_object('outcome', 'same_key', 'adjustment', ledger_adjustment_json(a));
    END IF;
    IF a.counter <> 'suspense' AND p_global IS NOT TRUE
       AND (p_approve OR p_key <> a.requested_key) THEN
        RETURN jsonb_build_object('outcome', 'global_scope',
                                  'adjustment', ledger_adjustment_json(a));
    END IF;
    IF p_approve AND a.counter <> 'suspense'
       AND NOT EXISTS (SELECT 1 FROM api_keys k
                        WHERE k.key_id = a.requested_key AND k.partner_id = a.partner_id
                          AND (k.revoked_at IS NULL OR k.revoked_at > now())
                          AND 'ledger:global' = ANY (k.scopes)) THEN
        RETURN jsonb_build_object('outcome', 'global_scope_requester',
                                  'adjustment', ledger_adjustment_json(a));
    END IF;
    IF p_approve THEN
        INSERT INTO ledger_chains (chain) VALUES ('sql:adjustments') ON CONFLICT DO NOTHING;
        PERFORM 1 FROM ledger_chains WHERE chain = 'sql:adjustments' FOR UPDATE;
        wallet := ledger_account('seller_wallet', a.partner_id, a.seller_id, NULL, a.currency);
        counter := CASE a.counter
            WHEN 'suspense' THEN ledger_account('suspense', a.partner_id, NULL, NULL, a.currency)
            WHEN 'fee_revenue' THEN ledger_account('fee_revenue', NULL, NULL, NULL, a.currency)
            ELSE ledger_account('psp_clearing', NULL, NULL, a.psp, a.currency) END;
        -- the account the money leaves, where it must be there: the wallet for a debit, the
        -- partner's suspense for a credit of the seller from it (not Kasir's own accounts)
        source := CASE WHEN a.amount_minor < 0 THEN wallet
                       WHEN a.counter = 'suspense' THEN counter END;
        IF source IS NOT NULL THEN
            PERFORM 1 FROM ledger_balances WHERE account = source ORDER BY chain FOR UPDATE;
            SELECT -coalesce(sum(balance_minor), 0) INTO avail FROM ledger_balances
             WHERE account = source;
            IF avail < abs(a.amount_minor) THEN
                RETURN jsonb_build_object('outcome', CASE WHEN source = wallet
                                                          THEN 'insufficient_funds'
                                                          ELSE 'insufficient_suspense' END,
                                          'available_minor', avail,
                                          'adjustment', ledger_adjustment_json(a));
            END IF;
        END IF;
        entry := ledger_post('sql:adjustments', 'adjustment:' || a.adjustment_id, 'adjustment',
                             a.adjustment_id, a.partner_id, 'adjustment:' || a.adjustment_id,
                             ARRAY[counter, wallet], ARRAY[a.amount_minor, -a.amount_minor],
                             a.currency);
    END IF;
    UPDATE ledger_adjustments
       SET status = target, decided_key = p_key, decided_by = p_actor, decided_at = now(),
           decision_note = p_note, entry_id = entry
     WHERE adjustment_id = a.adjustment_id RETURNING * INTO a;
    RETURN jsonb_build_object('outcome', 'decided', 'adjustment', ledger_adjustment_json(a));
END $$;

-- The six-argument form: a caller without ledger:global, which knows none of the scope
-- outcomes (an older ingress answered one as "unchanged", 200): an error instead (such an
-- ingress answers it 503); a credit above what suspense holds is the "insufficient_funds"
-- it knows (409). Not a DEFAULT on p_global: a rollback that re-creates a six-argument
-- function would make every call ambiguous (a function and a second one with a defaulted
-- last argument).
CREATE OR REPLACE FUNCTION ledger_adjustment_decide(p_partner text, p_id text,
                                                    p_approve boolean, p_key text,
                                                    p_actor text, p_note text)
RETURNS jsonb LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $$
DECLARE
    r jsonb := ledger_adjustment_decide(p_partner, p_id, p_approve, p_key, p_actor, p_note,
                                        false);
BEGIN
    IF r->>'outcome' = 'insufficient_suspense' THEN
        RETURN jsonb_set(r, '{outcome}', '"insufficient_funds"');
    END IF;
    IF r->>'outcome' IN ('global_scope', 'global_scope_requester') THEN
        RAISE EXCEPTION 'adjustment %: %', p_id, r->>'outcome'
            USING ERRCODE = 'insufficient_privilege',
                  HINT = 'decide it through an ingress that passes the ledger:global scope';
    END IF;
    RETURN r;
END $$;
-- the ledger's door for adjustments: runs as its owner, so a daemon's role needs neither
-- ledger_post nor a lock on the ledger's rows; only the ingress's role may call it
REVOKE EXECUTE ON FUNCTION ledger_adjustment_decide(text, text, boolean, text, text, text, boolean) FROM PUBLIC;
REVOKE EXECUTE ON FUNCTION ledger_adjustment_decide(text, text, boolean, text, text, text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION ledger_adjustment_decide(text, text, boolean, text, text, text, boolean) TO kasir_ingress;
GRANT EXECUTE ON FUNCTION ledger_adjustment_decide(text, text, boolean, text, text, text) TO kasir_ingress;
-- owned by kasir_definer (migration 953; the CREATE: deploy/migrations/README.md)
GRANT CREATE ON SCHEMA public TO kasir_definer;
ALTER FUNCTION ledger_adjustment_decide(text, text, boolean, text, text, text, boolean) OWNER TO kasir_definer;
ALTER FUNCTION ledger_adjustment_decide(text, text, boolean, text, text, text) OWNER TO kasir_definer;
REVOKE CREATE ON SCHEMA public FROM kasir_definer;
