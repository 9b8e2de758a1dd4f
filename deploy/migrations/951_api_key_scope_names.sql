-- 951: every element of api_keys.scopes is one scope name (lower-case letters, digits and _,
-- one optional ":" part), no NULL. The ingress reads a key's scopes as one string
-- (array_to_string) split on spaces, commas, braces and quotes, and since it lets a name it
-- does not know grant nothing while the others stand (a scope added by a newer ingress), an
-- element such as 'admin readonly' or 'x,ledger:global' would have granted the known part of
-- it. The CLI only ever writes such names; this keeps any other writer to them. The
-- separator below is in neither the names nor the ingress's split, so an element holding
-- one is refused.
ALTER TABLE api_keys ADD CONSTRAINT api_keys_scope_names CHECK (
    array_position(scopes, NULL) IS NULL
    AND array_to_string(scopes, '|')
        ~ '^([a-z][a-z0-9_]*(:[a-z][a-z0-9_]*)?(\|[a-z][a-z0-9_]*(:[a-z][a-z0-9_]*)?)*)?$');
