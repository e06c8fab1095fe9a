-- teosd schema, version 3: the txids of the last few processed blocks.
--
-- At startup the locator cache (late appointments, PROTOCOL.md "Triggered appointments") needs the
-- txids of the last `locator_cache_size` blocks. Keeping them with the block's row lets a restart
-- fill the cache without downloading those blocks from bitcoind. txids: the block's txids in block
-- order, 32 bytes each in internal byte order, concatenated; NULL for older blocks (the block
-- processor clears them once a block leaves the cache window) and for blocks processed before V3.
ALTER TABLE chain ADD COLUMN txids BLOB CHECK (txids IS NULL OR length(txids) % 32 = 0);
