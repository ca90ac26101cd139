-- Substring search over records' secondary keys (a Djinn image name)
-- from an index: an FTS5 table with the trigram tokenizer over
-- records.skey, kept by triggers. A search of three characters or more
-- reads the rows that contain the term, not every record of the owner.
CREATE VIRTUAL TABLE records_skey_search USING fts5(
    skey,
    content = 'records',
    content_rowid = 'seq',
    tokenize = 'trigram'
);
INSERT INTO records_skey_search(records_skey_search) VALUES ('rebuild');

CREATE TRIGGER records_skey_search_insert AFTER INSERT ON records
WHEN new.skey IS NOT NULL BEGIN
    INSERT INTO records_skey_search(rowid, skey) VALUES (new.seq, new.skey);
END;
CREATE TRIGGER records_skey_search_delete AFTER DELETE ON records
WHEN old.skey IS NOT NULL BEGIN
    INSERT INTO records_skey_search(records_skey_search, rowid, skey)
    VALUES ('delete', old.seq, old.skey);
END;
CREATE TRIGGER records_skey_search_update AFTER UPDATE OF skey ON records BEGIN
    INSERT INTO records_skey_search(records_skey_search, rowid, skey)
    SELECT 'delete', old.seq, old.skey WHERE old.skey IS NOT NULL;
    INSERT INTO records_skey_search(rowid, skey)
    SELECT new.seq, new.skey WHERE new.skey IS NOT NULL;
END;
