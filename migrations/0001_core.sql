-- Core data model: the source of truth for everything but blob bytes.
-- Names and digests use the "C" collation so ordering is bytewise, whatever the cluster locale.

create table repositories (
  id          bigserial primary key,
  name        text collate "C" not null unique,
  created_at  timestamptz not null default now()
);

-- Global, content-addressed, deduplicated. storage_key says where the bytes are, so finishing an
-- upload records the upload's object instead of copying it.
create table blobs (
  digest       text collate "C" primary key,
  size         bigint not null,
  storage_key  text not null,
  created_at   timestamptz not null default now()
);

-- A blob is readable in a repository only while it is linked there.
create table repository_blobs (
  repository_id  bigint not null references repositories (id) on delete cascade,
  digest         text collate "C" not null references blobs (digest),
  created_at     timestamptz not null default now(),
  primary key (repository_id, digest)
);
create index repository_blobs_digest on repository_blobs (digest);

create table manifests (
  id              bigserial primary key,
  repository_id   bigint not null references repositories (id) on delete cascade,
  digest          text collate "C" not null,
  media_type      text not null,
  artifact_type   text,
  size            bigint not null,
  payload         bytea not null,
  config_digest   text collate "C",
  subject_digest  text collate "C",
  annotations     jsonb,
  created_at      timestamptz not null default now(),
  unique (repository_id, digest)
);
create index manifests_subject on manifests (repository_id, subject_digest) where subject_digest is not null;

-- What a manifest points at: its config, its layers, or (for an index) its child manifests.
create table manifest_references (
  manifest_id   bigint not null references manifests (id) on delete cascade,
  child_digest  text collate "C" not null,
  kind          text not null check (kind in ('config', 'layer', 'manifest')),
  primary key (manifest_id, kind, child_digest)
);
create index manifest_references_child on manifest_references (child_digest);

create table tags (
  repository_id  bigint not null references repositories (id) on delete cascade,
  name           text collate "C" not null,
  manifest_id    bigint not null references manifests (id) on delete cascade,
  created_at     timestamptz not null default now(),
  updated_at     timestamptz not null default now(),
  primary key (repository_id, name)
);
create index tags_manifest on tags (manifest_id);

-- Every digest a tag has pointed to, newest last.
create table tag_history (
  id             bigserial primary key,
  repository_id  bigint not null references repositories (id) on delete cascade,
  tag            text collate "C" not null,
  digest         text collate "C" not null,
  created_at     timestamptz not null default now()
);
create index tag_history_tag on tag_history (repository_id, tag, id);

-- Upload sessions live here, not on a node, so any node continues any upload.
-- The repository row is created only when a blob is linked, so an abandoned upload leaves none.
create table uploads (
  id             uuid primary key,
  repository     text collate "C" not null,
  byte_offset    bigint not null default 0,
  hash_state     bytea,
  storage_key    text not null,
  storage_state  jsonb not null default '{}'::jsonb,
  created_at     timestamptz not null default now(),
  updated_at     timestamptz not null default now()
);
create index uploads_updated on uploads (updated_at);

-- Transactional outbox: written with the change it describes, relayed to the event bus.
create table outbox (
  id            bigserial primary key,
  event_id      uuid not null unique,
  subject       text not null,
  payload       jsonb not null,
  created_at    timestamptz not null default now(),
  published_at  timestamptz
);
create index outbox_unpublished on outbox (id) where published_at is null;
