CREATE TABLE users (
    id BIGSERIAL PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    email TEXT,
    created_at BIGINT NOT NULL,
    images_per_day BIGINT NOT NULL DEFAULT 0,
    profile_image_id TEXT,
    webhook_secret TEXT NOT NULL
);

CREATE TABLE tokens (
    id TEXT PRIMARY KEY,
    user_id BIGINT NOT NULL REFERENCES users(id),
    secret_hash TEXT NOT NULL UNIQUE,
    scopes TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    revoked BIGINT NOT NULL DEFAULT 0
);

CREATE TABLE images (
    seq BIGSERIAL PRIMARY KEY,
    id TEXT NOT NULL UNIQUE,
    owner_id BIGINT NOT NULL REFERENCES users(id),
    name TEXT,
    sha256 TEXT NOT NULL,
    size BIGINT NOT NULL,
    kind TEXT NOT NULL,
    format TEXT NOT NULL,
    content_type TEXT NOT NULL,
    width BIGINT,
    height BIGINT,
    orientation BIGINT,
    exif TEXT,
    latitude DOUBLE PRECISION,
    longitude DOUBLE PRECISION,
    metadata TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    processed_at BIGINT
);
CREATE INDEX images_owner_created ON images(owner_id, created_at DESC, seq DESC);
CREATE INDEX images_sha256 ON images(sha256);

CREATE TABLE variants (
    image_id TEXT NOT NULL REFERENCES images(id) ON DELETE CASCADE,
    preset TEXT NOT NULL,
    sha256 TEXT NOT NULL,
    content_type TEXT NOT NULL,
    width BIGINT NOT NULL,
    height BIGINT NOT NULL,
    size BIGINT NOT NULL,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (image_id, preset)
);
CREATE INDEX variants_sha256 ON variants(sha256);

CREATE TABLE records (
    seq BIGSERIAL PRIMARY KEY,
    scope TEXT NOT NULL,
    key TEXT NOT NULL,
    owner_id BIGINT,
    image_id TEXT,
    data TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    UNIQUE (scope, key)
);
CREATE INDEX records_scope_owner ON records(scope, owner_id, seq);
CREATE INDEX records_image ON records(image_id);

CREATE TABLE jobs (
    id BIGSERIAL PRIMARY KEY,
    kind TEXT NOT NULL,
    payload TEXT NOT NULL,
    state TEXT NOT NULL,
    attempts BIGINT NOT NULL DEFAULT 0,
    max_attempts BIGINT NOT NULL,
    run_at BIGINT NOT NULL,
    lease_until BIGINT,
    locked_by TEXT,
    last_error TEXT,
    dedup_key TEXT,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);
CREATE INDEX jobs_due ON jobs(state, run_at);
CREATE UNIQUE INDEX jobs_dedup ON jobs(dedup_key) WHERE dedup_key IS NOT NULL AND state = 'queued';
