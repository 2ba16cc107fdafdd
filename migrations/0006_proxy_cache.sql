-- Pull-through cache (docs/proxy.md). Cached manifests, tags and blobs are ordinary rows of the
-- core tables; these tables only say how fresh a cached tag is, when cached content was last
-- pulled (retention), and which node is fetching a blob from its upstream right now.

-- When the upstream was last asked about a tag (or, ref 'referrers/<digest>', a referrers list).
create table proxy_checks (
  repository_id  bigint not null references repositories (id) on delete cascade,
  ref            text collate "C" not null,
  checked_at     timestamptz not null default now(),
  primary key (repository_id, ref)
);

-- Last pull of each cached manifest or blob link: what retention collects.
create table proxy_pulls (
  repository_id   bigint not null references repositories (id) on delete cascade,
  kind            text not null check (kind in ('manifest', 'blob')),
  digest          text collate "C" not null,
  upstream        text not null,
  last_pulled_at  timestamptz not null default now(),
  primary key (repository_id, kind, digest)
);
create index proxy_pulls_due on proxy_pulls (upstream, last_pulled_at);

-- One row per blob being fetched from an upstream: its owner streams it into the store and
-- renews heartbeat_at; every other request for the digest, on any node, waits for the row to
-- go. A row whose heartbeat is stale (its node died) is taken over.
create table proxy_blob_fills (
  digest        text collate "C" primary key,
  owner         text not null,
  started_at    timestamptz not null default now(),
  heartbeat_at  timestamptz not null default now()
);
