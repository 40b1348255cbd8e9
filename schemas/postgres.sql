-- PostgreSQL tables of the postgresql:// sink, created if absent when the sink starts.
-- {table} is the table named in the sink URL; {PURPOSE_index} is named TABLE_PURPOSE.
-- Columns mirror event_record.v1.schema.json; `record` keeps the whole document
-- so nothing is lost when the JSON Schema gains a field before this table does.

-- kind: events
CREATE TABLE IF NOT EXISTS {table} (
    event_id            uuid PRIMARY KEY,
    story_id            text NOT NULL,
    version             integer,
    source              text,
    headline            text NOT NULL,
    body                text NOT NULL,
    url                 text,
    section             text,
    dateline            text,
    format              text NOT NULL,
    published_at        timestamptz,
    updated_at          timestamptz,
    language            text NOT NULL,
    language_confidence double precision,
    cluster_id          text,
    is_duplicate        boolean NOT NULL,
    duplicate_of        uuid,
    similarity          double precision,
    update_of           uuid,
    cluster_revision    integer NOT NULL DEFAULT 0,
    tags                jsonb NOT NULL,
    ingested_at         timestamptz NOT NULL,
    schema_version      text NOT NULL,
    record              jsonb NOT NULL
);
-- Tables created before the column existed.
ALTER TABLE {table} ADD COLUMN IF NOT EXISTS cluster_revision integer NOT NULL DEFAULT 0;
-- "stories about UA": tags -> 'countries' ? 'UA'
CREATE INDEX IF NOT EXISTS {countries_index} ON {table} USING gin ((tags -> 'countries'));
-- any containment query on tags: tags @> '{{"people": ["Ronald Reagan"]}}'
CREATE INDEX IF NOT EXISTS {tags_index} ON {table} USING gin (tags jsonb_path_ops);
CREATE INDEX IF NOT EXISTS {published_at_index} ON {table} (published_at);
CREATE INDEX IF NOT EXISTS {cluster_index} ON {table} (cluster_id, published_at);

-- kind: dead_letters
CREATE TABLE IF NOT EXISTS {table} (
    dead_letter_id  text PRIMARY KEY,
    stage           text NOT NULL,
    error           text NOT NULL,
    raw             bytea NOT NULL,  -- the payload byte for byte (text cannot hold every byte)
    origin          jsonb NOT NULL,
    ingested_at     timestamptz NOT NULL,
    schema_version  text NOT NULL
);
-- Added in 1.x: tables created before gain the columns.
ALTER TABLE {table} ADD COLUMN IF NOT EXISTS error_kind text NOT NULL DEFAULT 'data',
                    ADD COLUMN IF NOT EXISTS traceback text;
CREATE INDEX IF NOT EXISTS {stage_index} ON {table} (stage, ingested_at);
