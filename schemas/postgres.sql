-- Indexes of the postgresql:// sink's tables, created if absent when the sink starts.
-- The tables themselves are derived from the JSON Schema files (transforms/io/postgres.py,
-- LAYOUTS): their columns are typed fields of the document, and `record` keeps the whole
-- document so nothing is lost when the JSON Schema gains a field before the table does.
-- {table} is the table named in the sink URL; {PURPOSE_index} is named TABLE_PURPOSE.

-- kind: events
-- "stories about UA": tags -> 'countries' ? 'UA'
CREATE INDEX IF NOT EXISTS {countries_index} ON {table} USING gin ((tags -> 'countries'));
-- any containment query on tags: tags @> '{{"people": ["Ronald Reagan"]}}'
CREATE INDEX IF NOT EXISTS {tags_index} ON {table} USING gin (tags jsonb_path_ops);
CREATE INDEX IF NOT EXISTS {published_at_index} ON {table} (published_at);
CREATE INDEX IF NOT EXISTS {cluster_index} ON {table} (cluster_id, published_at);

-- kind: dead_letters
CREATE INDEX IF NOT EXISTS {stage_index} ON {table} (stage, ingested_at);
