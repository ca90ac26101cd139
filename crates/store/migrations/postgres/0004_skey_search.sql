-- Substring search over records' secondary keys (a Djinn image name)
-- from an index: pg_trgm's GIN index over records.skey answers
-- `skey LIKE '%term%'` for terms of three characters or more. pg_trgm is
-- a trusted extension (PostgreSQL 13 and later): the database's owner may
-- create it.
CREATE EXTENSION IF NOT EXISTS pg_trgm;
CREATE INDEX records_skey_trgm ON records USING gin (skey gin_trgm_ops);
