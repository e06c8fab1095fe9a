-- teosd storage on PostgreSQL (issue 12): the tables of the SQLite schema (migrations/sqlite/V1..V4)
-- in PostgreSQL types, with the same meaning, plus the `chain_tip` ordering row. Queries:
-- teosd/src/storage/postgres/.
--
-- Conventions, as in SQLite: ids, locators, hashes and keys are BYTEA of fixed length (checked); txids
-- and block hashes are 32 bytes in internal (not RPC-display) byte order; raw transactions are
-- consensus-encoded; heights, slot counts and delays are in the u32 range, so they are BIGINT with a
-- CHECK (PostgreSQL's INTEGER is signed 32-bit and would not hold 4294967295).

-- Tower signing keys: ONE key for the whole fleet (every instance signs with the newest key, so all of
-- them have the same tower id). The newest key is the row with the highest id; older keys are kept so
-- receipts signed with them can still be explained. created_at: unix seconds. An identity column, like
-- SQLite's AUTOINCREMENT, never hands out an id twice.
CREATE TABLE keys (
    id          BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    secret_key  BYTEA  NOT NULL CHECK (octet_length(secret_key) = 32),
    created_at  BIGINT NOT NULL
);

-- Registered users (Gatekeeper). user_id: 33-byte compressed secp256k1 public key. Heights in blocks.
-- available_slots is spent with a conditional UPDATE (`... WHERE available_slots >= n`), never by a
-- read-then-write, so concurrent requests on different instances cannot spend a slot twice; the CHECK
-- is the last line of defence against a negative balance.
CREATE TABLE users (
    user_id              BYTEA  PRIMARY KEY CHECK (octet_length(user_id) = 33),
    available_slots      BIGINT NOT NULL CHECK (available_slots BETWEEN 0 AND 4294967295),
    subscription_start   BIGINT NOT NULL CHECK (subscription_start BETWEEN 0 AND 4294967295),
    subscription_expiry  BIGINT NOT NULL CHECK (subscription_expiry BETWEEN 0 AND 4294967295)
);
CREATE INDEX users_expiry ON users (subscription_expiry);

-- Appointments (Watcher). uuid: 20-byte appointment id; locator: 16 bytes.
-- seq: insertion order, the cursor of the admin API's paged listing of a user's appointments (SQLite
-- uses its rowid). An update (ON CONFLICT DO UPDATE) keeps it.
CREATE TABLE appointments (
    uuid            BYTEA  PRIMARY KEY CHECK (octet_length(uuid) = 20),
    seq             BIGINT GENERATED ALWAYS AS IDENTITY UNIQUE,
    locator         BYTEA  NOT NULL CHECK (octet_length(locator) = 16),
    user_id         BYTEA  NOT NULL REFERENCES users (user_id) ON DELETE CASCADE,
    encrypted_blob  BYTEA  NOT NULL,
    to_self_delay   BIGINT NOT NULL CHECK (to_self_delay BETWEEN 0 AND 4294967295),
    user_signature  TEXT   NOT NULL,
    start_block     BIGINT NOT NULL CHECK (start_block BETWEEN 0 AND 4294967295),
    slots           BIGINT NOT NULL CHECK (slots BETWEEN 0 AND 4294967295)
);
CREATE INDEX appointments_locator ON appointments (locator);
CREATE INDEX appointments_user ON appointments (user_id, seq);

-- Trackers (Responder): one per appointment whose breach was answered.
-- status: 0 = penalty in mempool since status_height (broadcast or rebroadcast at that height),
--         1 = penalty confirmed at status_height,
--         2 = reorged: dispute or penalty left the chain at status_height, must be sent again,
--         3 = rejected: bitcoind refused the penalty for a reason that may pass at status_height; sent
--             again at every block until dispute_height + to_self_delay.
-- dispute_height: height where the dispute confirmed on the tower's chain, NULL if unknown.
-- to_self_delay: copied from the appointment (blocks).
CREATE TABLE trackers (
    uuid            BYTEA    PRIMARY KEY REFERENCES appointments (uuid) ON DELETE CASCADE,
    dispute_txid    BYTEA    NOT NULL CHECK (octet_length(dispute_txid) = 32),
    dispute_tx      BYTEA    NOT NULL,
    penalty_txid    BYTEA    NOT NULL CHECK (octet_length(penalty_txid) = 32),
    penalty_tx      BYTEA    NOT NULL,
    dispute_height  BIGINT   NULL CHECK (dispute_height BETWEEN 0 AND 4294967295),
    status          SMALLINT NOT NULL CHECK (status IN (0, 1, 2, 3)),
    status_height   BIGINT   NOT NULL CHECK (status_height BETWEEN 0 AND 4294967295),
    to_self_delay   BIGINT   NOT NULL CHECK (to_self_delay BETWEEN 0 AND 4294967295)
);
CREATE INDEX trackers_penalty_txid ON trackers (penalty_txid);
CREATE INDEX trackers_dispute_txid ON trackers (dispute_txid);
CREATE INDEX trackers_status ON trackers (status, status_height);
CREATE INDEX trackers_dispute_height ON trackers (dispute_height) WHERE dispute_height IS NOT NULL;

-- Late appointments whose dispute was already on chain when they arrived, waiting for the Responder.
-- block_height: height of the block holding the dispute (NULL only in rows copied from a SQLite
-- database written before its V4).
CREATE TABLE pending_breaches (
    uuid          BYTEA  PRIMARY KEY REFERENCES appointments (uuid) ON DELETE CASCADE,
    dispute_txid  BYTEA  NOT NULL CHECK (octet_length(dispute_txid) = 32),
    block_hash    BYTEA  NOT NULL CHECK (octet_length(block_hash) = 32),
    block_height  BIGINT NULL CHECK (block_height BETWEEN 0 AND 4294967295)
);
CREATE INDEX pending_breaches_block_hash ON pending_breaches (block_hash);
CREATE INDEX pending_breaches_block_height ON pending_breaches (block_height);

-- The tower's last processed blocks; the row with the highest height is the tip. Pruned to the last N.
-- txids: the block's txids in block order, 32 bytes each, concatenated (the locator cache of late
--   appointments), NULL once the block left the cache window.
-- chainwork: total work of the chain ending at this block (32 bytes, big-endian), NULL if unknown.
CREATE TABLE chain (
    height     BIGINT PRIMARY KEY CHECK (height BETWEEN 0 AND 4294967295),
    hash       BYTEA  NOT NULL CHECK (octet_length(hash) = 32),
    txids      BYTEA  NULL CHECK (txids IS NULL OR octet_length(txids) % 32 = 0),
    chainwork  BYTEA  NULL CHECK (chainwork IS NULL OR octet_length(chainwork) = 32)
);

-- The ordering row of the fleet (docs/fleet.md, "Ordering of appointment inserts and block commits"):
-- exactly one row, holding the committed tip (a copy of chain's highest row; NULLs before the first
-- block). An appointment insert locks it FOR SHARE, a block commit FOR UPDATE, so each insert is
-- entirely before or entirely after each block commit. The trigger below keeps the copy exact: every
-- statement that changes `chain` also updates this row, so even a chain write that forgot its
-- FOR UPDATE waits for the inserts in flight.
CREATE TABLE chain_tip (
    id      INTEGER PRIMARY KEY CHECK (id = 1),
    height  BIGINT NULL CHECK (height BETWEEN 0 AND 4294967295),
    hash    BYTEA  NULL CHECK (hash IS NULL OR octet_length(hash) = 32)
);
INSERT INTO chain_tip (id, height, hash) VALUES (1, NULL, NULL);

CREATE FUNCTION chain_tip_refresh() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE chain_tip
       SET (height, hash) = (SELECT c.height, c.hash FROM chain c ORDER BY c.height DESC LIMIT 1)
     WHERE id = 1;
    RETURN NULL;
END
$$;
CREATE TRIGGER chain_tip_refresh AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON chain
    FOR EACH STATEMENT EXECUTE FUNCTION chain_tip_refresh();

-- Row counts of users and appointments, for the caps max_users and max_appointments (checked on every
-- new registration and every new appointment; COUNT(*) would scan a million rows each time). As in
-- SQLite they are kept exact by triggers, whatever deletes the rows (expiry, completed trackers,
-- foreign-key cascades, which fire the triggers of the child table), and an upsert that updates an
-- existing row counts nothing.
--
-- Unlike SQLite (one writer), many transactions insert at once here: one counter row would be a hot
-- row whose lock every appointment insert of the fleet holds until its COMMIT, serializing them. So
-- each count is split into 16 shards; a transaction bumps the shard of its own session
-- (pg_backend_pid() % 16) and the count is the sum of the shards. A shard alone may go negative
-- (rows inserted by one session, deleted by another); the sum never does.
CREATE TABLE counters (
    name   TEXT     NOT NULL,
    shard  SMALLINT NOT NULL CHECK (shard BETWEEN 0 AND 15),
    value  BIGINT   NOT NULL,
    PRIMARY KEY (name, shard)
);
INSERT INTO counters (name, shard, value)
    SELECT n, s, 0 FROM unnest(ARRAY['users', 'appointments']) AS n, generate_series(0, 15) AS s;

-- Statement-level triggers over transition tables: one counter update per statement (a deletion of a
-- hundred thousand expired appointments is one UPDATE, not a hundred thousand). TG_ARGV[0] names the
-- counter. With INSERT ... ON CONFLICT DO UPDATE, the inserted-rows table holds only the rows really
-- inserted, so an update of an existing row counts nothing.
CREATE FUNCTION counters_inserted() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    n BIGINT;
BEGIN
    SELECT count(*) INTO n FROM inserted_rows;
    IF n > 0 THEN
        UPDATE counters SET value = value + n WHERE name = TG_ARGV[0] AND shard = pg_backend_pid() % 16;
    END IF;
    RETURN NULL;
END
$$;
CREATE FUNCTION counters_deleted() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    n BIGINT;
BEGIN
    SELECT count(*) INTO n FROM deleted_rows;
    IF n > 0 THEN
        UPDATE counters SET value = value - n WHERE name = TG_ARGV[0] AND shard = pg_backend_pid() % 16;
    END IF;
    RETURN NULL;
END
$$;
CREATE TRIGGER counters_users_insert AFTER INSERT ON users
    REFERENCING NEW TABLE AS inserted_rows
    FOR EACH STATEMENT EXECUTE FUNCTION counters_inserted('users');
CREATE TRIGGER counters_users_delete AFTER DELETE ON users
    REFERENCING OLD TABLE AS deleted_rows
    FOR EACH STATEMENT EXECUTE FUNCTION counters_deleted('users');
CREATE TRIGGER counters_appointments_insert AFTER INSERT ON appointments
    REFERENCING NEW TABLE AS inserted_rows
    FOR EACH STATEMENT EXECUTE FUNCTION counters_inserted('appointments');
CREATE TRIGGER counters_appointments_delete AFTER DELETE ON appointments
    REFERENCING OLD TABLE AS deleted_rows
    FOR EACH STATEMENT EXECUTE FUNCTION counters_deleted('appointments');
