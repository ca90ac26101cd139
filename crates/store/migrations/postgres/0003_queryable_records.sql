-- Records become queryable: typed, indexed keys beside the dialect's JSON,
-- so that every listing, search and filter is answered from an index, and
-- a version for optimistic updates. Existing rows get their keys from
-- their JSON (the dialects that set them: Djinn, Fulcrum, diaspora*).
ALTER TABLE records ADD COLUMN skey TEXT;
ALTER TABLE records ADD COLUMN skey2 TEXT;
ALTER TABLE records ADD COLUMN ref_id BIGINT;
ALTER TABLE records ADD COLUMN sort_at BIGINT;
ALTER TABLE records ADD COLUMN version BIGINT NOT NULL DEFAULT 1;

UPDATE records SET skey = lower(data::jsonb ->> 'name'),
                   ref_id = (data::jsonb ->> 'root_id')::bigint
 WHERE scope = 'djinn.image';
UPDATE records SET ref_id = (data::jsonb ->> 'namespace_id')::bigint
 WHERE scope = 'djinn.collaborator';
UPDATE records SET skey = data::jsonb ->> 'record_id',
                   skey2 = data::jsonb ->> 'form_id'
 WHERE scope = 'fulcrum.photo';
UPDATE records SET sort_at = images.created_at, ref_id = images.seq
  FROM images
 WHERE records.scope = 'diaspora.photo' AND images.id = records.image_id;

CREATE INDEX records_scope_seq ON records(scope, seq);
CREATE INDEX records_owner_skey ON records(scope, owner_id, skey, seq);
CREATE INDEX records_owner_skey2 ON records(scope, owner_id, skey2, seq);
CREATE INDEX records_ref ON records(scope, ref_id, seq);
CREATE INDEX records_owner_sort ON records(scope, owner_id, sort_at, ref_id);
