-- ingress_auth_changed(): trigger on api_keys and partners. A statement that changes or
-- deletes keys or partners (kasir-ingress key revoke / rotate, partner disable, or an
-- operator's own UPDATE) sends NOTIFY kasir_ingress_auth on commit; every ingress listens
-- and empties its credential caches, so a revoked key and a disabled partner are refused
-- from the next request on. New keys need no notice (unknown keys are cached 2 s at most).
-- Repeatable: re-applied by the migration runner whenever this file changes.
CREATE OR REPLACE FUNCTION ingress_auth_changed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('kasir_ingress_auth', TG_TABLE_NAME);
    RETURN NULL;
END $$;

CREATE OR REPLACE TRIGGER api_keys_auth_changed AFTER UPDATE OR DELETE ON api_keys
    FOR EACH STATEMENT EXECUTE FUNCTION ingress_auth_changed();
CREATE OR REPLACE TRIGGER partners_auth_changed AFTER UPDATE OR DELETE ON partners
    FOR EACH STATEMENT EXECUTE FUNCTION ingress_auth_changed();
