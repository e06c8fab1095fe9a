-- teosd schema, version 1.
--
-- Conventions: ids, locators, hashes and keys are BLOBs of fixed length (checked); txids and block hashes
-- are 32 bytes in internal (not RPC-display) byte order; raw transactions are consensus-encoded; heights
-- and slot counts are INTEGERs in the u32 range. Tables are STRICT so a wrongly typed value is an error,
-- not a silent affinity conversion (rust-teos stored BLOBs in INT columns).

-- Tower signing keys. The newest key is the row with the highest id; older keys are kept so receipts
-- signed with them can still be explained. created_at: unix seconds.
CREATE TABLE keys (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    secret_key  BLOB    NOT NULL CHECK (length(secret_key) = 32),
    created_at  INTEGER NOT NULL
) STRICT;

-- Registered users (Gatekeeper). user_id: 33-byte compressed secp256k1 public key. Heights in blocks.
CREATE TABLE users (
    user_id              BLOB    PRIMARY KEY CHECK (length(user_id) = 33),
    available_slots      INTEGER NOT NULL CHECK (available_slots BETWEEN 0 AND 4294967295),
    subscription_start   INTEGER NOT NULL CHECK (subscription_start BETWEEN 0 AND 4294967295),
    subscription_expiry  INTEGER NOT NULL CHECK (subscription_expiry BETWEEN 0 AND 4294967295)
) STRICT, WITHOUT ROWID;
CREATE INDEX users_expiry ON users (subscription_expiry);

-- Appointments (Watcher). uuid: 20-byte appointment id; locator: 16 bytes.
CREATE TABLE appointments (
    uuid            BLOB    PRIMARY KEY CHECK (length(uuid) = 20),
    locator         BLOB    NOT NULL CHECK (length(locator) = 16),
    user_id         BLOB    NOT NULL REFERENCES users (user_id) ON DELETE CASCADE,
    encrypted_blob  BLOB    NOT NULL,
    to_self_delay   INTEGER NOT NULL CHECK (to_self_delay BETWEEN 0 AND 4294967295),
    user_signature  TEXT    NOT NULL,
    start_block     INTEGER NOT NULL CHECK (start_block BETWEEN 0 AND 4294967295),
    slots           INTEGER NOT NULL CHECK (slots BETWEEN 0 AND 4294967295)
) STRICT;
CREATE INDEX appointments_locator ON appointments (locator);
CREATE INDEX appointments_user ON appointments (user_id);

-- Trackers (Responder): one per appointment whose breach was answered.
-- status: 0 = penalty in mempool since status_height (broadcast or rebroadcast at that height),
--         1 = penalty confirmed at status_height,
--         2 = reorged: dispute or penalty left the chain at status_height, must be sent again.
-- dispute_height: height where the dispute confirmed on the tower's chain, NULL if unknown.
CREATE TABLE trackers (
    uuid            BLOB    PRIMARY KEY REFERENCES appointments (uuid) ON DELETE CASCADE,
    dispute_txid    BLOB    NOT NULL CHECK (length(dispute_txid) = 32),
    dispute_tx      BLOB    NOT NULL,
    penalty_txid    BLOB    NOT NULL CHECK (length(penalty_txid) = 32),
    penalty_tx      BLOB    NOT NULL,
    dispute_height  INTEGER NULL CHECK (dispute_height BETWEEN 0 AND 4294967295),
    status          INTEGER NOT NULL CHECK (status IN (0, 1, 2)),
    status_height   INTEGER NOT NULL CHECK (status_height BETWEEN 0 AND 4294967295)
) STRICT;
CREATE INDEX trackers_penalty_txid ON trackers (penalty_txid);
CREATE INDEX trackers_dispute_txid ON trackers (dispute_txid);
CREATE INDEX trackers_status ON trackers (status, status_height);
CREATE INDEX trackers_dispute_height ON trackers (dispute_height) WHERE dispute_height IS NOT NULL;

-- Late appointments whose dispute was already on chain when they arrived, waiting for the Responder.
CREATE TABLE pending_breaches (
    uuid          BLOB PRIMARY KEY REFERENCES appointments (uuid) ON DELETE CASCADE,
    dispute_txid  BLOB NOT NULL CHECK (length(dispute_txid) = 32),
    block_hash    BLOB NOT NULL CHECK (length(block_hash) = 32)
) STRICT;

-- The tower's last processed blocks; the row with the highest height is the tip. Pruned by the writer
-- to the last N rows.
CREATE TABLE chain (
    height  INTEGER PRIMARY KEY CHECK (height BETWEEN 0 AND 4294967295),
    hash    BLOB    NOT NULL CHECK (length(hash) = 32)
) STRICT;
