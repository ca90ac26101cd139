-- Pending references: an upload pins its blob before it checks whether the
-- blob exists, and unpins it once the row referencing it is committed.
-- Garbage collection never deletes a pinned blob (see the store's docs).
CREATE TABLE blob_pins (
    sha256 TEXT NOT NULL,
    pin_id TEXT NOT NULL,
    expires_at BIGINT NOT NULL,
    PRIMARY KEY (sha256, pin_id)
);
CREATE INDEX blob_pins_expires ON blob_pins(expires_at);
