-- 210: changes to keys and partners reach every running ingress at once.
--
-- The ingress caches credentials (auth.cache_ttl, 30 s). A statement that changes or deletes
-- API keys or partners - `kasir-ingress key revoke`, `key rotate`, `partner disable`, or an
-- operator's own UPDATE - now sends NOTIFY kasir_ingress_auth on commit; every ingress
-- listens and empties its caches, so a revoked key, the tokens of its key id and a disabled
-- partner are refused from the next request on, not 30 s (or, for a token, 15 min) later.
-- New keys need no notice: an unknown key is never cached for more than 2 s.

CREATE OR REPLACE FUNCTION ingress_auth_changed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('kasir_ingress_auth', TG_TABLE_NAME);
    RETURN NULL;
END $$;

DROP TRIGGER IF EXISTS api_keys_auth_changed ON api_keys;
CREATE TRIGGER api_keys_auth_changed AFTER UPDATE OR DELETE ON api_keys
    FOR EACH STATEMENT EXECUTE FUNCTION ingress_auth_changed();
DROP TRIGGER IF EXISTS partners_auth_changed ON partners;
CREATE TRIGGER partners_auth_changed AFTER UPDATE OR DELETE ON partners
    FOR EACH STATEMENT EXECUTE FUNCTION ingress_auth_changed();

-- Settlement files are PSP data: uploading them is an operator's scope (settlements:write)
-- that a partner's key no longer gets by default. Keys that hold exactly the old default set
-- (every scope but admin) were given it by default, not on purpose: they lose it. A key
-- created with an explicit --scopes list keeps what it was given.
UPDATE api_keys SET scopes = array_remove(scopes, 'settlements:write')
 WHERE scopes @> ARRAY['payments:write', 'payments:read', 'refunds:write', 'refunds:read',
                       'payouts:write', 'payouts:read', 'settlements:write',
                       'reconciliations:read']::text[]
   AND scopes <@ ARRAY['payments:write', 'payments:read', 'refunds:write', 'refunds:read',
                       'payouts:write', 'payouts:read', 'settlements:write',
                       'reconciliations:read']::text[];
