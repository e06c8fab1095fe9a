-- Fleet leadership (docs/fleet.md): one row, the fencing epoch and the current lease.
-- epoch: incremented by each new leader (the fencing token checked inside every block commit).
-- holder: the instance name of the last leader (diagnostics only).
-- backend_pid: pg_backend_pid() of the leader's leadership connection, which holds the advisory
--   lock; a standby terminates it once the lease has expired (a paused holder keeps its session).
-- lease_until: renewed every second by the leader to now() + leader_takeover_seconds.
CREATE TABLE fleet_leader (
    id int PRIMARY KEY CHECK (id = 1),
    epoch bigint NOT NULL,
    holder text,
    backend_pid int,
    lease_until timestamptz
);
INSERT INTO fleet_leader (id, epoch) VALUES (1, 0);
