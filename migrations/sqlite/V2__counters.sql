-- teosd schema, version 2: row counts of users and appointments, kept by triggers.
--
-- The caps max_users and max_appointments (RELIABILITY.md, "Limits") are checked on every new
-- registration and every new appointment; COUNT(*) would scan a million-row table each time, a counter
-- row is one lookup. Triggers keep the counts exact whatever deletes the rows: the Gatekeeper's outdated
-- users, the Responder's completed trackers, or a foreign-key cascade (SQLite fires DELETE triggers for
-- cascaded deletes). An upsert that updates an existing row fires no INSERT trigger.

CREATE TABLE counters (
    name   TEXT    PRIMARY KEY,
    value  INTEGER NOT NULL CHECK (value >= 0)
) STRICT, WITHOUT ROWID;

INSERT INTO counters (name, value) SELECT 'users', COUNT(*) FROM users;
INSERT INTO counters (name, value) SELECT 'appointments', COUNT(*) FROM appointments;

CREATE TRIGGER counters_users_insert AFTER INSERT ON users
BEGIN
    UPDATE counters SET value = value + 1 WHERE name = 'users';
END;
CREATE TRIGGER counters_users_delete AFTER DELETE ON users
BEGIN
    UPDATE counters SET value = value - 1 WHERE name = 'users';
END;
CREATE TRIGGER counters_appointments_insert AFTER INSERT ON appointments
BEGIN
    UPDATE counters SET value = value + 1 WHERE name = 'appointments';
END;
CREATE TRIGGER counters_appointments_delete AFTER DELETE ON appointments
BEGIN
    UPDATE counters SET value = value - 1 WHERE name = 'appointments';
END;
