#!/usr/bin/env python3
"""Writes producers/ingress/openapi.json, the OpenAPI 3.1 document that kasir-ingress serves
at /openapi.json (embedded at build time by openapi.c). Run it after changing an endpoint,
then `touch producers/ingress/openapi.c`. tests/integration/test_207_ingress_openapi.py
keeps it honest: every route and problem code of the server must be here, and every
request example must be accepted by the server."""
import json
import os
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
TOP = os.path.dirname(os.path.dirname(HERE))


def codes():
    out = subprocess.run([os.path.join(TOP, "build/bin/kasir-ingress"), "codes"],
                         capture_output=True, text=True, check=True).stdout
    return [line.split()[0] for line in out.splitlines()]


def ref(name):
    return {"$ref": "#/components/schemas/" + name}


def problem(*statuses):
    # listed for every operation: 400 (a query argument that is not UTF-8 text), 405
    # (another method on a known path), 414 and 431 (request target or headers too large),
    # 500 (a bug) and 503 (a dependency down, or shutting down); an operation whose path
    # holds an id lists 404 itself (an unknown id, or a path that is not UTF-8 text)
    return {str(s): {"$ref": "#/components/responses/Problem"}
            for s in sorted(set(statuses + (400, 405, 414, 431, 500, 503)), key=str)}


def ok(status, schema, desc):
    return {str(status): {"description": desc, "headers": {"X-Trace-Id": {"$ref": "#/components/headers/TraceId"}},
                          "content": {"application/json": {"schema": ref(schema)}}}}


def body(schema, example, ctype="application/json"):
    return {"required": True, "content": {ctype: {"schema": ref(schema) if schema else {"type": "string"},
                                                  "examples": {"default": {"value": example}}}}}


IDEM = {"name": "Idempotency-Key", "in": "header", "required": False,
        "description": "1-255 printable characters, bare or as a structured-field string (\"abc\"); "
                       "required here or as idempotency_key in the body "
                       "(both present must agree). Same key + same request: the stored response "
                       "byte for byte; same key + another request: 422; still in flight: 409.",
        "schema": {"type": "string", "minLength": 1, "maxLength": 255}}
ID = {"name": "id", "in": "path", "required": True, "schema": {"type": "string", "maxLength": 72}}
PSP = {"name": "psp", "in": "path", "required": True,
       "schema": {"type": "string", "enum": ["stripe", "xendit", "midtrans", "iris", "sandbox"]}}
SEC = [{"basic": []}, {"bearer": []}]
STR = {"type": "string"}
ID_S = {"type": "string", "minLength": 1, "maxLength": 64, "pattern": "^[A-Za-z0-9_.:-]+$"}
AMOUNT = {"type": "string", "pattern": "^[0-9]{1,18}(\\.[0-9]+)?$",
          "description": "decimal string in the currency's minor-unit precision; IDR 0.01 to 1000000000.00 per order"}
CUR = {"type": "string", "pattern": "^[A-Z]{3}$", "description": "ISO 4217"}

pay_example = {
    "buyer": {"id": "buyer-123"}, "checkout_id": "checkout-2026-0001",
    "payment_orders": [
        {"seller_id": "seller-7", "amount": "150000.00", "currency": "IDR", "method": "virtual_account", "bank_code": "BCA"},
        {"seller_id": "seller-9", "amount": "25000.00", "currency": "IDR", "method": "card", "payment_token": "tok_sandbox_visa"},
    ],
    "metadata": {"order_ref": "INV-0001"},
}
schemas = {
    "Problem": {"type": "object", "description": "RFC 9457 problem details",
                "required": ["type", "title", "status", "detail", "code", "trace_id"],
                "properties": {"type": STR, "title": STR, "status": {"type": "integer"}, "detail": STR,
                               "code": {"type": "string", "enum": codes()},
                               "field": {"type": "string", "description": "the input at fault (JSON path, header or line/column)"},
                               "trace_id": STR,
                               "payment_id": {"type": "string", "description": "duplicate_checkout: the existing payment"}}},
    "TokenRequest": {"type": "object", "additionalProperties": False,
                     "required": ["key_id", "timestamp", "nonce", "signature"],
                     "description": "signature = hex HMAC-SHA256(sign_key, \"<key_id>.<timestamp>.<nonce>\"), with a "
                                    "scope over \"<key_id>.<timestamp>.<nonce> <scope>\", and "
                                    "sign_key = HMAC-SHA256(api_key, \"kasir-token-v1\"); timestamp within 60 s; nonce used once",
                     "properties": {"key_id": ID_S, "timestamp": {"type": "integer"},
                                    "nonce": {"type": "string", "minLength": 16, "maxLength": 64},
                                    "signature": {"type": "string", "pattern": "^[0-9a-f]{64}$"},
                                    "scope": {"type": "string", "description": "space-separated subset of the key's scopes"}}},
    "Token": {"type": "object", "properties": {"access_token": STR, "token_type": {"const": "Bearer"},
                                               "expires_in": {"type": "integer"}, "scope": STR}},
    "PaymentOrderRequest": {"type": "object", "additionalProperties": False,
                            "required": ["seller_id", "amount", "currency", "method"],
                            "properties": {"seller_id": ID_S, "amount": AMOUNT, "currency": CUR,
                                           "method": {"enum": ["card", "virtual_account", "qris", "ewallet", "bank_transfer"]},
                                           "psp_preference": {"enum": ["sandbox", "stripe", "xendit", "midtrans"],
                                                              "description": "sandbox only where the deployment enables it (psp.sandbox)"},
                                           "payment_token": {"type": "string", "maxLength": 128, "description": "card only: the PSP's token, never a card number"},
                                           "bank_code": {"type": "string", "maxLength": 16, "description": "virtual_account and bank_transfer"},
                                           "ewallet_channel": {"enum": ["OVO", "DANA", "GOPAY", "SHOPEEPAY", "LINKAJA"]}}},
    "PaymentRequest": {"type": "object", "additionalProperties": False,
                       "required": ["buyer", "checkout_id", "payment_orders"],
                       "properties": {"buyer": {"type": "object", "additionalProperties": False, "required": ["id"], "properties": {"id": ID_S}},
                                      "checkout_id": dict(ID_S, description="unique per partner: a second payment for it is a 409"),
                                      "payment_orders": {"type": "array", "minItems": 1, "maxItems": 20, "items": ref("PaymentOrderRequest")},
                                      "idempotency_key": {"type": "string", "maxLength": 255},
                                      "metadata": {"type": "object", "maxProperties": 20, "additionalProperties": {"type": "string", "maxLength": 500}}}},
    "PaymentAccepted": {"type": "object", "properties": {"payment_id": STR, "status": {"const": "NOT_STARTED"}, "checkout_id": STR,
                                                          "payment_orders": {"type": "array", "items": {"type": "object"}}, "trace_id": STR}},
    "Payment": {"type": "object", "properties": {
        "payment_id": STR, "status": {"enum": ["NOT_STARTED", "EXECUTING", "SUCCESS", "FAILED"]}, "checkout_id": STR,
        "buyer": {"type": "object"}, "metadata": {"type": "object"}, "created_at": STR, "updated_at": STR,
        "payment_orders": {"type": "array", "items": {"type": "object", "properties": {
            "payment_order_id": STR, "seller_id": STR, "amount": AMOUNT, "currency": CUR, "method": STR,
            "status": {"enum": ["NOT_STARTED", "EXECUTING", "PENDING_CUSTOMER", "SUCCESS", "FAILED", "EXPIRED"]},
            "next_action": {"type": ["object", "null"], "description": "VA number, QR string, expiry, when the customer must act"},
            "refunded_amount": AMOUNT, "captured_amount": AMOUNT}}}}},
    "PaymentList": {"type": "object", "properties": {"payments": {"type": "array", "items": ref("Payment")},
                                                     "not_found": {"type": "array", "items": STR}}},
    "RefundRequest": {"type": "object", "additionalProperties": False, "required": ["payment_order_id"],
                      "description": "captured orders only (409 refund_not_captured otherwise), up to the captured amount "
                                     "minus the refunds requested so far; without amount: everything left; an amount "
                                     "without currency is in the order's currency",
                      "properties": {"payment_order_id": STR, "amount": AMOUNT, "currency": CUR,
                                     "reason": {"type": "string", "maxLength": 200}, "idempotency_key": {"type": "string", "maxLength": 255}}},
    "Refund": {"type": "object", "properties": {"refund_id": STR, "payment_id": STR, "payment_order_id": STR, "amount": AMOUNT,
                                                "refunded_amount": dict(AMOUNT, description="what the PSP refunded (status SUCCEEDED): less than amount for a partial refund, whose rest is refundable again"),
                                                "currency": CUR, "reason": STR, "status": STR, "created_at": STR, "trace_id": STR}},
    "PayoutRequest": {"type": "object", "additionalProperties": False,
                      "required": ["seller_id", "amount", "currency", "channel", "destination_account"],
                      "properties": {"seller_id": ID_S, "amount": AMOUNT, "currency": CUR, "channel": {"enum": ["bank_account", "ewallet"]},
                                     "bank_code": {"type": "string", "maxLength": 16}, "ewallet_channel": {"enum": ["OVO", "DANA", "GOPAY", "SHOPEEPAY", "LINKAJA"]},
                                     "destination_account": {"type": "string", "pattern": "^\\+?[0-9]{5,34}$"},
                                     "account_holder": {"type": "string", "maxLength": 100}, "description": {"type": "string", "maxLength": 140},
                                     "idempotency_key": {"type": "string", "maxLength": 255}}},
    "Payout": {"type": "object", "properties": {"payout_id": STR, "seller_id": STR, "amount": AMOUNT, "currency": CUR,
                                                "channel": STR, "status": STR, "trace_id": STR,
                                                "failure_code": {"type": ["string", "null"], "description":
                                                    "why a FAILED payout failed: INSUFFICIENT_FUNDS (refused by the ledger "
                                                    "before any PSP) or the PSP's normalized code"},
                                                "failure_message": {"type": ["string", "null"]}}},
    "WebhookAck": {"type": "object", "properties": {"webhook_id": STR, "event_id": STR, "status": {"const": "received"}}},
    "SettlementAccepted": {"type": "object", "properties": {"file_id": STR, "psp": STR, "format": STR, "rows": {"type": "integer"},
                                                            "status": {"const": "published"}, "trace_id": STR}},
    "Reconciliation": {"type": "object", "properties": {"matched": {"type": "integer"}, "mismatches": {"type": "array", "items": {"type": "object"}}}},
    "Hold": {"type": "object", "description": "a payment or payout kasir-risk held for review",
             "properties": {"hold_id": dict(STR, description="the payment_id or payout_id"),
                            "kind": {"enum": ["payment", "payout"]}, "payment_id": STR, "payout_id": STR,
                            "checkout_id": STR, "buyer_id": STR, "seller_id": STR,
                            "amounts": {"type": "array", "items": {"type": "object", "properties": {"amount": AMOUNT, "currency": CUR}}},
                            "reasons": {"type": "array", "items": STR, "description": "reason codes of the rules that fired"},
                            "rules": {"type": "array", "items": STR, "description": "ids of those rules"},
                            "status": {"enum": ["HELD", "APPROVED", "REJECTED"]}, "held_at": STR, "decided_at": STR,
                            "decided_by": dict(STR, description="<partner>/<credential> of the admin who decided"),
                            "decision_note": dict(STR, description="the reason the admin gave")}},
    "HoldList": {"type": "object", "properties": {"holds": {"type": "array", "items": ref("Hold")},
                                                  "next_after": {"type": ["string", "null"], "description": "after= for the next page"}}},
    "HoldDecisionRequest": {"type": "object", "additionalProperties": False, "required": ["reason"],
                            "properties": {"reason": {"type": "string", "minLength": 1, "maxLength": 500,
                                                      "description": "why: recorded with the decision"}}},
    "HoldDecision": {"type": "object", "properties": {"hold": ref("Hold"), "changed": {
        "type": "boolean", "description": "false when the hold had this decision already (nothing happened again)"}}},
    "Balance": {"type": "object", "description": "a seller's wallet in the ledger, per currency",
                "properties": {"seller_id": STR, "balances": {"type": "array", "items": {"type": "object", "properties": {
                    "currency": CUR,
                    "available": dict(ref("Money"), description="the seller_wallet account: what payouts may draw"),
                    "held_for_payouts": dict(ref("Money"), description="the payout_hold account: payouts in flight")}}}}},
    "Money": {"type": "object", "properties": {"amount": AMOUNT, "currency": CUR}},
    "AdjustmentRequest": {"type": "object", "additionalProperties": False,
                          "required": ["seller_id", "direction", "amount", "currency", "counter_account", "reason"],
                          "description": "posted only when another API key of the partner approves it (two-person rule)",
                          "properties": {"seller_id": ID_S, "direction": {"enum": ["credit", "debit"],
                                                                          "description": "to or from the seller's wallet"},
                                         "amount": AMOUNT, "currency": CUR,
                                         "counter_account": {"enum": ["suspense", "fee_revenue", "psp_clearing"],
                                                             "description": "the other side of the entry (docs/LEDGER.md)"},
                                         "psp": dict(STR, description="the PSP, for counter_account psp_clearing only"),
                                         "reason": {"type": "string", "minLength": 1, "maxLength": 500},
                                         "idempotency_key": {"type": "string", "maxLength": 255}}},
    "Adjustment": {"type": "object", "properties": {
        "adjustment_id": STR, "seller_id": STR, "direction": {"enum": ["credit", "debit"]}, "amount": AMOUNT,
        "currency": CUR, "counter_account": STR, "psp": STR, "reason": STR,
        "status": {"enum": ["REQUESTED", "APPROVED", "REJECTED", "EXPIRED"]},
        "requested_by": dict(STR, description="<partner>/<API key id> that asked"), "requested_at": STR, "expires_at": STR,
        "decided_by": dict(STR, description="<partner>/<API key id> that decided"), "decided_at": STR,
        "decision_note": STR, "entry_id": dict(STR, description="the posted journal entry (APPROVED)")}},
    "AdjustmentCreated": {"type": "object", "properties": {"adjustment": ref("Adjustment")}},
    "AdjustmentList": {"type": "object", "properties": {"adjustments": {"type": "array", "items": ref("Adjustment")},
                                                        "next_after": {"type": ["string", "null"]}}},
    "AdjustmentDecision": {"type": "object", "properties": {"adjustment": ref("Adjustment"), "changed": {"type": "boolean"}}},
    "PayoutRetryRequest": {"type": "object", "additionalProperties": False, "required": ["reason"],
                           "properties": {"reason": {"type": "string", "minLength": 1, "maxLength": 500}}},
    "PayoutRetry": {"type": "object", "properties": {
        "payout_id": dict(STR, description="the new attempt, <failed id>_r<n>"), "retry_of": STR,
        "retried_failure_code": STR, "status": STR, "trace_id": STR}},
}
AUTHERR = (401, 403, 429)
paths = {
    "/v1/auth/token": {"post": {"summary": "API key + HMAC-signed timestamp -> 15-minute HS256 JWT with scopes",
                                "security": [], "requestBody": body("TokenRequest", {
                                    "key_id": "key_01900000-0000-7000-8000-000000000000", "timestamp": 1767225600,
                                    "nonce": "c2f1b1d0a9e84f7c", "signature": "0" * 64, "scope": "payments:read payments:write"}),
                                "responses": {**ok(200, "Token", "a bearer token"), **problem(400, 401, 403, 415, 503)}}},
    "/v1/payments": {
        "post": {"summary": "accept a checkout: published to kasir.payments.requested (acks=all) before the 202",
                 "security": SEC, "parameters": [IDEM], "requestBody": body("PaymentRequest", pay_example),
                 "responses": {**ok(202, "PaymentAccepted", "accepted (or the stored answer replayed, header Idempotent-Replayed: true)"),
                               **problem(400, *AUTHERR, 409, 413, 415, 422, 503)}},
        "get": {"summary": "batch status", "security": SEC,
                "parameters": [{"name": "ids", "in": "query", "required": True, "schema": {"type": "string"},
                                "description": "1-100 comma-separated payment ids"}],
                "responses": {**ok(200, "PaymentList", "payments found; others listed in not_found"), **problem(400, *AUTHERR, 503)}}},
    "/v1/payments/{id}": {"get": {"summary": "status of a payment and its orders", "security": SEC, "parameters": [ID],
                                  "responses": {**ok(200, "Payment", "the payment"), **problem(*AUTHERR, 404, 503)}}},
    "/v1/refunds": {"post": {"summary": "refund a captured order, fully or partly, up to what is left", "security": SEC, "parameters": [IDEM],
                             "requestBody": body("RefundRequest", {"payment_order_id": "ord_00000000-0000-8000-8000-000000000000",
                                                                   "amount": "50000.00", "currency": "IDR", "reason": "customer request"}),
                             "responses": {**ok(202, "Refund", "accepted"), **problem(400, *AUTHERR, 404, 409, 413, 415, 422, 503)}}},
    "/v1/refunds/{id}": {"get": {"summary": "a refund", "security": SEC, "parameters": [ID],
                                 "responses": {**ok(200, "Refund", "the refund"), **problem(*AUTHERR, 404, 503)}}},
    "/v1/payouts": {"post": {"summary": "disburse from a seller's wallet", "security": SEC, "parameters": [IDEM],
                             "requestBody": body("PayoutRequest", {"seller_id": "seller-7", "amount": "100000.00", "currency": "IDR",
                                                                   "channel": "bank_account", "bank_code": "BCA",
                                                                   "destination_account": "1234567890", "account_holder": "Budi Santoso"}),
                             "responses": {**ok(202, "Payout", "accepted"), **problem(400, *AUTHERR, 409, 413, 415, 422, 503)}}},
    "/v1/payouts/{id}": {"get": {"summary": "a payout", "security": SEC, "parameters": [ID],
                                 "responses": {**ok(200, "Payout", "the payout"), **problem(*AUTHERR, 404, 503)}}},
    "/v1/webhooks/{psp}": {"post": {
        "summary": "PSP notification, verified over the raw bytes before anything is kept",
        "description": "stripe: Stripe-Signature (t=, v1= HMAC-SHA256 of \"t.body\", 300 s); xendit: x-callback-token "
                       "(event id: the webhook-id header, else the body's SHA-256); "
                       "midtrans: signature_key = SHA-512(order_id+status_code+gross_amount+server_key) in the body "
                       "(event id from those signed fields; the rest is marked untrusted); "
                       "iris: Iris-Signature = hex HMAC-SHA512(merchant key, body); "
                       "sandbox: Standard Webhooks (webhook-id, webhook-timestamp, webhook-signature v1,<base64>). "
                       "Verified notifications go to kasir.webhooks.received with their non-secret headers.",
        "security": [], "parameters": [PSP],
        "requestBody": body(None, {"id": "evt_1", "type": "payment_intent.succeeded"}),
        "responses": {**ok(200, "WebhookAck", "verified and published"), **problem(401, 404, 413, 503)}}},
    "/v1/settlements/{psp}": {"post": {
        "summary": "settlement file upload (CSV, operator scope settlements:write); rows published to "
                   "kasir.settlement.rows with a file id and the uploader (headers uploaded_by_key, uploaded_by_partner)",
        "description": "format sandbox: psp_reference,amount,fee,currency,status,settled_at; format generic: "
                       "reference,gross_amount,fee_amount,currency,transaction_status,settlement_time. Extra columns are kept "
                       "in raw. The whole file is validated first, UTF-8 included: an invalid row (named by line and "
                       "column) publishes nothing.",
        "security": SEC, "parameters": [PSP, {"name": "format", "in": "query", "required": False,
                                              "schema": {"enum": ["sandbox", "generic"]}}],
        "requestBody": body(None, "psp_reference,amount,fee,currency,status,settled_at\n"
                                  "sbx_ch_0001,150000.00,1500.00,IDR,settled,2026-05-01T10:00:00Z\n", "text/csv"),
        "responses": {**ok(202, "SettlementAccepted", "every row confirmed by Kafka"), **problem(400, *AUTHERR, 404, 413, 415, 422, 503)}}},
    "/v1/reconciliations/{id}": {"get": {"summary": "result of a reconciliation run (lands with the recon worker)",
                                         "security": SEC, "parameters": [ID],
                                         "responses": {**ok(200, "Reconciliation", "the run"), **problem(*AUTHERR, 404)}}},
    "/v1/admin/partners": {"get": {"summary": "partners (scope admin)", "security": SEC,
                                   "responses": {"200": {"description": "partners", "content": {"application/json": {"schema": {"type": "object"}}}},
                                                 **problem(*AUTHERR, 503)}}},
    "/v1/admin/holds": {"get": {"summary": "payments and payouts held by kasir-risk for review, oldest first (scope admin)",
                                "security": SEC, "parameters": [
                                    {"name": "status", "in": "query", "required": False,
                                     "schema": {"enum": ["HELD", "APPROVED", "REJECTED", "all"], "default": "HELD"}},
                                    {"name": "limit", "in": "query", "required": False,
                                     "schema": {"type": "integer", "minimum": 1, "maximum": 1000, "default": 100}},
                                    {"name": "after", "in": "query", "required": False, "schema": STR,
                                     "description": "next_after of the previous page"}],
                                "responses": {**ok(200, "HoldList", "the partner's holds"), **problem(400, *AUTHERR, 503)}}},
    "/v1/admin/holds/{id}/approve": {"post": {
        "summary": "release a hold: its PspCommands go to kasir.psp.commands, once (scope admin)",
        "description": "who (partner and credential) and why (reason) are recorded. Approving an approved hold "
                       "again answers 200 with changed false; a rejected one is a 409 hold_decided.",
        "security": SEC, "parameters": [ID],
        "requestBody": body("HoldDecisionRequest", {"reason": "buyer verified by phone"}),
        "responses": {**ok(200, "HoldDecision", "approved"), **problem(400, *AUTHERR, 404, 409, 413, 415, 503)}}},
    "/v1/admin/holds/{id}/reject": {"post": {
        "summary": "refuse a hold: the payment or payout becomes FAILED (scope admin)",
        "description": "who and why are recorded. Rejecting a rejected hold again answers 200 with changed false; "
                       "an approved one is a 409 hold_decided.",
        "security": SEC, "parameters": [ID],
        "requestBody": body("HoldDecisionRequest", {"reason": "card reported stolen"}),
        "responses": {**ok(200, "HoldDecision", "rejected"), **problem(400, *AUTHERR, 404, 409, 413, 415, 503)}}},
    "/v1/balances/{seller_id}": {"get": {
        "summary": "a seller's wallet per currency: available, and held for payouts in flight (scope payouts:read)",
        "description": "the partner's own sellers only: another partner's seller id answers the 404 of an unknown one",
        "security": SEC, "parameters": [{"name": "seller_id", "in": "path", "required": True, "schema": ID_S}],
        "responses": {**ok(200, "Balance", "the balances"), **problem(*AUTHERR, 404, 503)}}},
    "/v1/admin/payouts/{id}/retry": {"post": {
        "summary": "a new attempt of a FAILED payout whose failure a retry may mend (scope admin)",
        "description": "retriable failure codes: the table ledger_payout_retriable (INSUFFICIENT_FUNDS, EXPIRED, "
                       "psp_unavailable, psp_timeout, psp_insufficient_balance, rate_limited, bank_unavailable); "
                       "any other is a 409 payout_not_retriable. The attempt is a new payout <id>_r<n> that risk and "
                       "the ledger's funds check decide like any payout; asking again returns the same attempt.",
        "security": SEC, "parameters": [ID],
        "requestBody": body("PayoutRetryRequest", {"reason": "the bank was down; seller asked again"}),
        "responses": {**ok(202, "PayoutRetry", "the attempt, published"), **problem(400, *AUTHERR, 404, 409, 413, 415, 503)}}},
    "/v1/admin/adjustments": {
        "get": {"summary": "the partner's manual adjustments, oldest first (scope admin)", "security": SEC,
                "parameters": [{"name": "status", "in": "query", "required": False,
                                "schema": {"enum": ["REQUESTED", "APPROVED", "REJECTED", "EXPIRED", "all"], "default": "all"}},
                               {"name": "limit", "in": "query", "required": False,
                                "schema": {"type": "integer", "minimum": 1, "maximum": 1000, "default": 100}},
                               {"name": "after", "in": "query", "required": False, "schema": STR}],
                "responses": {**ok(200, "AdjustmentList", "the adjustments"), **problem(400, *AUTHERR, 503)}},
        "post": {"summary": "ask for a manual adjustment entry; nothing is posted until another key approves it (scope admin)",
                 "description": "counter_account suspense is the partner's own account (a credit from it is approved only "
                                "within what it holds); fee_revenue and psp_clearing are Kasir's, shared by every partner: "
                                "they need scope ledger:global too (an operator's; admin does not imply it), else 403 "
                                "forbidden_scope (field scope), nothing recorded",
                 "security": SEC,
                 "requestBody": body("AdjustmentRequest", {"seller_id": "seller-7", "direction": "credit", "amount": "25000.00",
                                                           "currency": "IDR", "counter_account": "suspense",
                                                           "reason": "late capture released to the seller (ticket 4411)"}),
                 "responses": {**ok(201, "AdjustmentCreated", "requested"), **ok(200, "AdjustmentCreated", "the same request again"),
                               **problem(400, *AUTHERR, 413, 415, 422, 503)}}},
    "/v1/admin/adjustments/{id}/approve": {"post": {
        "summary": "approve and post an adjustment: by another API key of the partner than the one that asked (scope admin)",
        "description": "403 approver_is_requester for the same key, forbidden_scope (field scope) for an adjustment "
                       "of fee_revenue or psp_clearing when the approving key, or the key that asked, lacks scope "
                       "ledger:global; 409 adjustment_expired after 24 h, adjustment_decided when rejected, "
                       "insufficient_funds for a debit the wallet cannot cover or a credit from suspense above what it holds",
        "security": SEC, "parameters": [ID],
        "requestBody": body("PayoutRetryRequest", {"reason": "checked against the PSP report"}),
        "responses": {**ok(200, "AdjustmentDecision", "approved and posted"), **problem(400, *AUTHERR, 404, 409, 413, 415, 503)}}},
    "/v1/admin/adjustments/{id}/reject": {"post": {
        "summary": "reject an adjustment: nothing is posted (scope admin; the requesting key may withdraw its own)",
        "description": "an adjustment of fee_revenue or psp_clearing is rejected by another key only with scope "
                       "ledger:global too, else 403 forbidden_scope (field scope)",
        "security": SEC, "parameters": [ID],
        "requestBody": body("PayoutRetryRequest", {"reason": "duplicate of another request"}),
        "responses": {**ok(200, "AdjustmentDecision", "rejected"), **problem(400, *AUTHERR, 404, 409, 413, 415, 503)}}},
    "/v1/admin/audit-export": {"get": {
        "summary": "the partner's journal entries and admin acts in [from, to), streamed (scope admin)",
        "description": "jsonl: one record per entry (with its postings) or act (hold decisions, adjustment requests and "
                       "decisions, payout retries: who and why); csv: a header line, one row per posting or act. "
                       "A whole export ends with its end record, counting the records (csv: rows) before it: "
                       "jsonl {\"record\": \"end\", \"records\": N}, csv \"end\",,,\"records=N\" and nine empty fields; "
                       "a file without it is incomplete. "
                       "Streamed from a server-side cursor in one snapshot, constant memory for any range; "
                       "a failure midway ends the transfer without its last chunk and without the end record "
                       "(an HTTP/1.0 client, which has no chunking, sees only the record missing). "
                       "An export lasts readers.export_timeout at most (10 minutes by default), however "
                       "slowly it is read: past it, it ends the same way; ask for shorter ranges.",
        "security": SEC, "parameters": [
            {"name": "from", "in": "query", "required": True, "schema": dict(STR, format="date-time")},
            {"name": "to", "in": "query", "required": True, "schema": dict(STR, format="date-time"),
             "description": "excluded"},
            {"name": "format", "in": "query", "required": False, "schema": {"enum": ["jsonl", "csv"], "default": "jsonl"}}],
        "responses": {"200": {"description": "the records", "headers": {"X-Trace-Id": {"$ref": "#/components/headers/TraceId"}},
                              "content": {"application/jsonl": {"schema": STR}, "text/csv": {"schema": STR}}},
                      **problem(400, *AUTHERR, 503)}}},
    "/healthz": {"get": {"summary": "liveness", "security": [], "responses": {"200": {"description": "alive"}, **problem()}}},
    "/readyz": {"get": {"summary": "readiness: Kafka and PostgreSQL reachable (scope ops:read here; without "
                                   "credentials on the admin listener, http.admin_port)", "security": SEC,
                        "responses": {"200": {"description": "ready"}, **problem(*AUTHERR)}}},
    "/metrics": {"get": {"summary": "Prometheus text: requests by route and code, latency histogram (scope ops:read "
                                    "here; without credentials on the admin listener, http.admin_port)", "security": SEC,
                         "responses": {"200": {"description": "metrics", "content": {"text/plain": {"schema": STR}}},
                                       **problem(*AUTHERR)}}},
    "/openapi.json": {"get": {"summary": "this document", "security": [], "responses": {"200": {"description": "OpenAPI 3.1"}, **problem()}}},
}
doc = {
    "openapi": "3.1.0",
    "info": {"title": "Kasir ingress API", "version": "1.0.0",
             "description": "JSON in snake_case; amounts are decimal strings with an ISO 4217 currency. Errors are "
                            "application/problem+json with a stable code and the trace_id; every response carries X-Trace-Id. "
                            "Scopes: " + ", ".join(subprocess.run([os.path.join(TOP, "build/bin/kasir-ingress"), "scopes"],
                                                                 capture_output=True, text=True, check=True).stdout.split())},
    "servers": [{"url": "http://127.0.0.1:8080"}],
    "security": SEC,
    "paths": paths,
    "components": {
        "securitySchemes": {"basic": {"type": "http", "scheme": "basic", "description": "API key as user name, empty password"},
                            "bearer": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"}},
        "headers": {"TraceId": {"schema": STR, "description": "trace id of this request (also in problem bodies)"}},
        "responses": {"Problem": {"description": "problem details (Retry-After on 409 request_in_progress, 429 and 503)",
                                  "headers": {"X-Trace-Id": {"$ref": "#/components/headers/TraceId"},
                                              "Retry-After": {"schema": {"type": "integer"}}},
                                  "content": {"application/problem+json": {"schema": ref("Problem")}}}},
        "schemas": schemas,
    },
}
with open(os.path.join(HERE, "openapi.json"), "w") as f:
    json.dump(doc, f, indent=1, sort_keys=False)
    f.write("\n")
print("wrote producers/ingress/openapi.json", file=sys.stderr)
