-- The change log becomes the audit log: where each change came from, the entity before and
-- after it, and a hash chain (each row's hash covers its content and the previous row's
-- hash), so an edited or removed row is detected by `tollgate audit verify`. Rows written
-- before this migration are sealed into the chain when the store opens.
ALTER TABLE change_log ADD COLUMN source TEXT NOT NULL DEFAULT '';
ALTER TABLE change_log ADD COLUMN before_body TEXT;
ALTER TABLE change_log ADD COLUMN after_body TEXT;
ALTER TABLE change_log ADD COLUMN prev_hash TEXT NOT NULL DEFAULT '';
ALTER TABLE change_log ADD COLUMN hash TEXT NOT NULL DEFAULT '';

-- Append-only: a sealed row is never updated or deleted by Tollgate.
CREATE TRIGGER change_log_no_update BEFORE UPDATE ON change_log WHEN OLD.hash <> ''
BEGIN
    SELECT RAISE(ABORT, 'the change log is append-only');
END;
CREATE TRIGGER change_log_no_delete BEFORE DELETE ON change_log
BEGIN
    SELECT RAISE(ABORT, 'the change log is append-only');
END;

-- Rows written before this migration are sealed once, when the store next opens; after
-- that an entry without a hash is reported, never sealed again.
INSERT INTO tollgate_meta (key, value) VALUES ('audit_sealed', 0);
