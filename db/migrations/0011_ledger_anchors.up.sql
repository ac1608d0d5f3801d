-- Reads never write: every organization has its in-app channel from its creation
-- (Bootstrap makes it), so ListChannels no longer makes one on first call. Organizations
-- made before get theirs here. The id is chn_ + 26 characters like any other (hex digits
-- are in the id alphabet), beginning 00 so that it sorts before the organization's other
-- channels, as if it had been made with the organization.
INSERT INTO alert_channels (org_id, id, name, type)
SELECT o.id, 'chn_00' || substr(md5(o.id || '/in_app'), 1, 24), 'In-app notifications', 'in_app'
FROM organizations o
WHERE NOT EXISTS (
    SELECT 1 FROM alert_channels c WHERE c.org_id = o.id AND c.type = 'in_app' AND c.deleted_at IS NULL
);

-- Signed checkpoints of the audit chains: a worker signs each organization's chain head
-- (sequence and hash, at a time) with an Ed25519 key that is not in the database. Copied
-- out of the database (governor admin audit-checkpoint), a checkpoint exposes a rewrite
-- of the whole chain, hashes recomputed, which the chain alone cannot.
CREATE TABLE audit_checkpoints (
    org_id    text NOT NULL REFERENCES organizations (id),
    seq       bigint NOT NULL CHECK (seq > 0),
    hash      bytea NOT NULL CHECK (length(hash) = 32),
    signed_at timestamptz NOT NULL,
    key_id    text NOT NULL CHECK (key_id <> ''),
    signature bytea NOT NULL CHECK (length(signature) = 64),
    PRIMARY KEY (org_id, seq, key_id)
);
CREATE INDEX audit_checkpoints_latest ON audit_checkpoints (org_id, seq DESC);
