-- teosd schema, version 4: what the chain walker and the Responder need to never lose a breach.
--
-- chain.chainwork: total work of the chain ending at each remembered block (32 bytes, big-endian, as
--   bitcoind's `chainwork`). The tower follows bitcoind only to a tip with MORE work than its own
--   (a node restarted with -reindex or restored from an older snapshot is waited for, not followed).
--   NULL for rows written before V4; the walker asks bitcoind (getblockheader) when it needs one.
ALTER TABLE chain ADD COLUMN chainwork BLOB CHECK (chainwork IS NULL OR length(chainwork) = 32);

-- pending_breaches.block_height: height of the block holding the dispute, so a late appointment is
--   answered even when that block has left the 288 remembered `chain` rows (a long catch-up), and so a
--   reorg can drop the pending rows of every disconnected height. NULL for rows written before V4.
ALTER TABLE pending_breaches ADD COLUMN block_height INTEGER
    CHECK (block_height IS NULL OR block_height BETWEEN 0 AND 4294967295);

-- trackers: a fourth status and the appointment's to_self_delay.
--   status 3 = rejected: bitcoind refused the penalty for a reason that may pass (fee too low, a losing
--              replacement) at status_height; it is sent again at every block until
--              dispute_height + to_self_delay, when the cheater can spend the output and the appointment
--              is dropped.
--   to_self_delay: copied from the appointment (blocks), so that deadline needs no join.
-- SQLite cannot change a CHECK constraint in place: the table is rebuilt (nothing references it).
CREATE TABLE trackers_v4 (
    uuid            BLOB    PRIMARY KEY REFERENCES appointments (uuid) ON DELETE CASCADE,
    dispute_txid    BLOB    NOT NULL CHECK (length(dispute_txid) = 32),
    dispute_tx      BLOB    NOT NULL,
    penalty_txid    BLOB    NOT NULL CHECK (length(penalty_txid) = 32),
    penalty_tx      BLOB    NOT NULL,
    dispute_height  INTEGER NULL CHECK (dispute_height BETWEEN 0 AND 4294967295),
    status          INTEGER NOT NULL CHECK (status IN (0, 1, 2, 3)),
    status_height   INTEGER NOT NULL CHECK (status_height BETWEEN 0 AND 4294967295),
    to_self_delay   INTEGER NOT NULL CHECK (to_self_delay BETWEEN 0 AND 4294967295)
) STRICT;
INSERT INTO trackers_v4 (uuid, dispute_txid, dispute_tx, penalty_txid, penalty_tx, dispute_height,
                         status, status_height, to_self_delay)
    SELECT t.uuid, t.dispute_txid, t.dispute_tx, t.penalty_txid, t.penalty_tx, t.dispute_height,
           t.status, t.status_height, a.to_self_delay
    FROM trackers t JOIN appointments a ON a.uuid = t.uuid;
DROP TABLE trackers;
ALTER TABLE trackers_v4 RENAME TO trackers;
CREATE INDEX trackers_penalty_txid ON trackers (penalty_txid);
CREATE INDEX trackers_dispute_txid ON trackers (dispute_txid);
CREATE INDEX trackers_status ON trackers (status, status_height);
CREATE INDEX trackers_dispute_height ON trackers (dispute_height) WHERE dispute_height IS NOT NULL;
