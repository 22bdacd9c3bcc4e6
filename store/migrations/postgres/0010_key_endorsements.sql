-- A key's endorsement by the key current before it: the old key's
-- signature over the server's id and the new key, so that peers that know
-- the old key trust the new one. NULL for a server's first key and for keys
-- made before endorsements.
ALTER TABLE server_keys ADD COLUMN endorsement BYTEA;
