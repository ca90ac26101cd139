-- A claim walks the due jobs in (run_at, id) order and stops at the first:
-- with id in the index, no backend sorts the queue to find it.
CREATE INDEX jobs_claim ON jobs(state, run_at, id);
DROP INDEX jobs_due;
