-- Records become queryable: typed, indexed keys beside the dialect's JSON,
-- so that every listing, search and filter is answered from an index, and
-- a version for optimistic updates. Existing rows get their keys from
-- their JSON (the dialects that set them: Djinn, Fulcrum, diaspora*).
ALTER TABLE records ADD COLUMN skey TEXT;
ALTER TABLE records ADD COLUMN skey2 TEXT;
ALTER TABLE records ADD COLUMN ref_id BIGINT;
ALTER TABLE records ADD COLUMN sort_at BIGINT;
ALTER TABLE records ADD COLUMN version BIGINT NOT NULL DEFAULT 1;

UPDATE records SET skey = lower(json_extract(data, '$.name')),
                   ref_id = json_extract(data, '$.root_id')
 WHERE scope = 'djinn.image' AND json_valid(data);
UPDATE records SET ref_id = json_extract(data, '$.namespace_id')
 WHERE scope = 'djinn.collaborator' AND json_valid(data);
UPDATE records SET skey = json_extract(data, '$.record_id'),
                   skey2 = json_extract(data, '$.form_id')
 WHERE scope = 'fulcrum.photo' AND json_valid(data);
UPDATE records SET sort_at = (SELECT created_at FROM images WHERE images.id = records.image_id),
                   ref_id = (SELECT seq FROM images WHERE images.id = records.image_id)
 WHERE scope = 'diaspora.photo';

CREATE INDEX records_scope_seq ON records(scope, seq);
CREATE INDEX records_owner_skey ON records(scope, owner_id, skey, seq);
CREATE INDEX records_owner_skey2 ON records(scope, owner_id, skey2, seq);
CREATE INDEX records_ref ON records(scope, ref_id, seq);
CREATE INDEX records_owner_sort ON records(scope, owner_id, sort_at, ref_id);
