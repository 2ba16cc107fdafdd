-- Online garbage collection: review queues written in the same transaction as the change that
-- may orphan something, and a queue of storage objects to delete once their metadata is gone.
-- See docs/gc.md for the rules.

-- A blob (digest) to look at once review_after has passed: its unreferenced repository links
-- go, then the blob itself if nothing references or links it any more.
create table gc_blob_reviews (
  digest        text collate "C" primary key,
  review_after  timestamptz not null,
  review_count  integer not null default 0,
  event         text not null,
  created_at    timestamptz not null default now()
);
create index gc_blob_reviews_due on gc_blob_reviews (review_after);

-- A manifest of a repository to look at once review_after has passed (untagged, unreferenced).
create table gc_manifest_reviews (
  repository_id  bigint not null references repositories (id) on delete cascade,
  digest         text collate "C" not null,
  review_after   timestamptz not null,
  review_count   integer not null default 0,
  event          text not null,
  created_at     timestamptz not null default now(),
  primary key (repository_id, digest)
);
create index gc_manifest_reviews_due on gc_manifest_reviews (review_after);

-- Storage objects whose metadata is already gone (a collected blob, an abandoned upload).
-- Deleting an object is idempotent; a failure is retried with backoff, never forgotten.
create table gc_storage_deletions (
  id             bigserial primary key,
  storage_key    text not null,
  storage_state  jsonb not null default '{}'::jsonb,
  size           bigint not null default 0,
  reason         text not null,
  review_after   timestamptz not null default now(),
  review_count   integer not null default 0,
  created_at     timestamptz not null default now()
);
create index gc_storage_deletions_due on gc_storage_deletions (review_after);
create index gc_storage_deletions_key on gc_storage_deletions (storage_key);
