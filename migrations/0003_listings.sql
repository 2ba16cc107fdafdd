-- Read models for listings (issue 5): the catalog, the namespace tree and the manifest listing,
-- written by the catalog-indexer and manifest-lister workers from the source tables, plus a
-- per-repository change number behind the repository ETag.

-- Bumped when anything of the repository changes (manifests, tags, blob links). Deferred
-- constraint triggers do it at commit time, whichever code path made the change: no write path
-- can forget it, and the repository row is locked only for the last moment of the transaction
-- (after every other lock it takes), so it adds no lock-order deadlock.
alter table repositories add column change_seq bigint not null default 0;

create function wharf_bump_repository() returns trigger language plpgsql as $$
begin
  update repositories set change_seq = change_seq + 1
   where id = (case when tg_op = 'DELETE' then old.repository_id else new.repository_id end);
  return null;
end $$;

create constraint trigger manifests_bump_repository after insert or update or delete on manifests
  deferrable initially deferred for each row execute function wharf_bump_repository();
create constraint trigger tags_bump_repository after insert or update or delete on tags
  deferrable initially deferred for each row execute function wharf_bump_repository();
create constraint trigger repository_blobs_bump_repository after insert or update or delete on repository_blobs
  deferrable initially deferred for each row execute function wharf_bump_repository();

-- What the read models are computed from. The workers refresh one repository's rows from these
-- views and `wharf reindex` rebuilds whole tables from them: one definition, so an incremental
-- build and a rebuild cannot disagree.

-- One row per repository holding at least one manifest. blob_bytes: the configs and layers its
-- manifests reference, each distinct blob counted once. last_push_at: the newest manifest or tag
-- change still present.
create view catalog_entry_source as
select r.id as repository_id,
       r.name,
       m.manifest_count,
       coalesce(t.tag_count, 0) as tag_count,
       coalesce(b.blob_bytes, 0) as blob_bytes,
       greatest(m.last_manifest_at, t.last_tag_at) as last_push_at,
       r.change_seq
  from repositories r
  join lateral (select count(*)::integer as manifest_count, max(created_at) as last_manifest_at
                  from manifests where repository_id = r.id) m on m.manifest_count > 0
  left join lateral (select count(*)::integer as tag_count, max(updated_at) as last_tag_at
                       from tags where repository_id = r.id) t on true
  left join lateral (select sum(bl.size)::bigint as blob_bytes
                       from blobs bl
                      where bl.digest in (select mr.child_digest
                                            from manifests mm
                                            join manifest_references mr on mr.manifest_id = mm.id
                                           where mm.repository_id = r.id and mr.kind <> 'manifest')) b on true;

create view manifest_listing_source as
select m.repository_id,
       m.digest,
       m.media_type,
       m.size,
       m.artifact_type,
       m.annotations,
       coalesce(t.tags, '{}') as tags,
       t.tags is not null as tagged,
       m.created_at as pushed_at
  from manifests m
  left join lateral (select array_agg(name order by name) as tags from tags where manifest_id = m.id) t on true;

-- GET /v2/_catalog: one range scan of the name index, whatever the number of repositories.
create table catalog_entries (
  repository_id   bigint primary key references repositories (id) on delete cascade,
  name            text collate "C" not null unique,
  manifest_count  integer not null,
  tag_count       integer not null,
  blob_bytes      bigint not null,
  last_push_at    timestamptz,
  -- repositories.change_seq the row was computed at: equal means nothing changed since.
  change_seq      bigint not null
);

-- GET /v2/<prefix>/_wharf/repositories: the path segments directly under a namespace ('' is the
-- root), present while at least one catalog entry lies at or below parent/child.
create table namespace_children (
  parent  text collate "C" not null,
  child   text collate "C" not null,
  primary key (parent, child)
);

-- GET /v2/<name>/_wharf/manifests: one row per manifest, its tags inlined, so a page is one range
-- scan with no join. The indexes serve the filters in digest order.
create table manifest_listing (
  repository_id  bigint not null references repositories (id) on delete cascade,
  digest         text collate "C" not null,
  media_type     text not null,
  size           bigint not null,
  artifact_type  text,
  annotations    jsonb,
  tags           text[] collate "C" not null,
  tagged         boolean not null,
  pushed_at      timestamptz not null,
  primary key (repository_id, digest)
);
create index manifest_listing_tagged on manifest_listing (repository_id, tagged, digest);
create index manifest_listing_artifact_type on manifest_listing (repository_id, artifact_type, digest);
create index manifest_listing_annotations on manifest_listing using gin (annotations jsonb_path_ops);

-- The whole tree as the catalog entries imply it (for rebuilds; workers update single paths).
create view namespace_source as
select distinct array_to_string(p.parts[1:i - 1], '/') as parent, p.parts[i] as child
  from catalog_entries c
  cross join lateral (select string_to_array(c.name, '/') as parts) p
  cross join lateral generate_series(1, cardinality(p.parts)) as i;

-- Bumped with every change the manifest-lister applies to a repository's rows: the ETag of the
-- manifest listing, so it changes exactly when (or after) what that listing shows changes.
create table manifest_listing_state (
  repository_id  bigint primary key references repositories (id) on delete cascade,
  version        bigint not null
);

-- A registry upgraded to this schema gets its read models built now.
insert into catalog_entries select * from catalog_entry_source;
insert into manifest_listing select * from manifest_listing_source;
insert into manifest_listing_state (repository_id, version) select id, 1 from repositories;
insert into namespace_children select * from namespace_source;
