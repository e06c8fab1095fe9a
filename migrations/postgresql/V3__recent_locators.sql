-- The locator cache of a fleet (issue 12, docs/fleet.md "Ordering of appointment inserts and block
-- scans"): the transactions of the last few scanned blocks (locator_cache_size), by locator, so an
-- appointment stored on ANY instance after a block's scan finds its dispute there and is answered as
-- a late appointment. On SQLite the same cache lives in the one process's memory, ordered by the
-- single writer. Rows are written by the leader's block scan (ScanBlock) and removed when their block
-- leaves the window or the chain (UnwindBlocks).
CREATE TABLE recent_locators (
    locator    BYTEA  NOT NULL CHECK (octet_length(locator) = 16),
    txid       BYTEA  NOT NULL CHECK (octet_length(txid) = 32),
    block_hash BYTEA  NOT NULL CHECK (octet_length(block_hash) = 32),
    height     BIGINT NOT NULL CHECK (height BETWEEN 0 AND 4294967295),
    PRIMARY KEY (block_hash, locator)
);
CREATE INDEX recent_locators_locator ON recent_locators (locator);
CREATE INDEX recent_locators_height ON recent_locators (height);
