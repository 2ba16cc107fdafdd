import { sql } from 'kysely';
import { batches } from './batches.js';
import type { Executor, NewManifest } from './schema.js';

export interface ManifestContent {
  id: number;
  digest: string;
  media_type: string;
  size: number;
}

export interface ManifestWithPayload extends ManifestContent {
  payload: Buffer;
}

export type ManifestLookup = { tag: string } | { digest: string };

function lookup(db: Executor, repository: string, ref: ManifestLookup) {
  const base = db.selectFrom('manifests as m').innerJoin('repositories as r', 'r.id', 'm.repository_id').where('r.name', '=', repository);
  if ('tag' in ref) {
    // repository_id too, so the lookup is one probe of tags_pkey (repository_id, name), not a scan of every tag.
    return base.innerJoin('tags as t', (j) => j.onRef('t.manifest_id', '=', 'm.id').onRef('t.repository_id', '=', 'r.id')).where('t.name', '=', ref.tag);
  }
  return base.where('m.digest', '=', ref.digest);
}

export async function findManifest(db: Executor, repository: string, ref: ManifestLookup): Promise<ManifestContent | undefined> {
  return lookup(db, repository, ref).select(['m.id', 'm.digest', 'm.media_type', 'm.size']).executeTakeFirst();
}

export async function findManifestWithPayload(db: Executor, repository: string, ref: ManifestLookup): Promise<ManifestWithPayload | undefined> {
  return lookup(db, repository, ref).select(['m.id', 'm.digest', 'm.media_type', 'm.size', 'm.payload']).executeTakeFirst();
}

/**
 * Inserts the manifest unless the repository already has these exact bytes; returns its id and
 * whether it is new. One round trip either way: an existing row is share-locked (garbage
 * collection cannot delete it under the tag about to point at it) and returned, else the row is
 * inserted.
 */
export async function insertManifest(db: Executor, manifest: NewManifest): Promise<{ id: number; created: boolean }> {
  const m = manifest;
  const result = await sql<{ id: number; created: boolean }>`
    with existing as (
      select id from manifests where repository_id = ${m.repository_id} and digest = ${m.digest} for share),
    inserted as (
      insert into manifests (repository_id, digest, media_type, artifact_type, size, payload, config_digest, subject_digest, annotations)
      select ${m.repository_id}, ${m.digest}, ${m.media_type}, ${m.artifact_type ?? null}, ${m.size}, ${m.payload}, ${m.config_digest ?? null},
             ${m.subject_digest ?? null}, ${m.annotations ?? null}::jsonb
       where not exists (select 1 from existing)
      on conflict (repository_id, digest) do nothing
      returning id)
    select id, true as created from inserted
    union all
    select id, false as created from existing`.execute(db);
  const row = result.rows[0];
  if (row) return { id: row.id, created: row.created };
  // Inserted by another transaction between the two, or collected: look again.
  return insertManifest(db, manifest);
}

export async function insertReferences(db: Executor, manifestId: number, references: Array<{ kind: 'config' | 'layer' | 'manifest'; digest: string }>): Promise<void> {
  for (const batch of batches(references, 3)) {
    await db
      .insertInto('manifest_references')
      .values(batch.map((r) => ({ manifest_id: manifestId, kind: r.kind, child_digest: r.digest })))
      .onConflict((oc) => oc.doNothing())
      .execute();
  }
}

/** Which of `digests` are manifests of the repository; share-locked against a concurrent delete. */
export async function lockManifestDigests(db: Executor, repositoryId: number, digests: string[]): Promise<Set<string>> {
  const found = new Set<string>();
  for (const batch of batches(digests, 1)) {
    const rows = await db.selectFrom('manifests').select('digest').where('repository_id', '=', repositoryId).where('digest', 'in', batch).forShare().execute();
    for (const r of rows) found.add(r.digest);
  }
  return found;
}

/** The manifest locked FOR UPDATE, the first step of deleting it (docs/gc.md: the lock order). */
export async function lockManifestForDelete(db: Executor, repositoryId: number, digest: string): Promise<ManifestContent | undefined> {
  return db
    .selectFrom('manifests')
    .select(['id', 'digest', 'media_type', 'size'])
    .where('repository_id', '=', repositoryId)
    .where('digest', '=', digest)
    .forUpdate()
    .executeTakeFirst();
}

/** Deletes a manifest locked by lockManifestForDelete and, by cascade, its tags and references; returns the tags it had. */
export async function deleteLockedManifest(db: Executor, manifestId: number): Promise<string[]> {
  const tags = (await db.selectFrom('tags').select('name').where('manifest_id', '=', manifestId).execute()).map((t) => t.name);
  await db.deleteFrom('manifests').where('id', '=', manifestId).execute();
  return tags;
}

export interface ReferrerRow {
  digest: string;
  media_type: string;
  size: number;
  artifact_type: string | null;
  annotations: Record<string, string> | null;
}

export async function listReferrers(db: Executor, repository: string, subjectDigest: string, artifactType?: string): Promise<ReferrerRow[]> {
  let query = db
    .selectFrom('manifests as m')
    .innerJoin('repositories as r', 'r.id', 'm.repository_id')
    .select(['m.digest', 'm.media_type', 'm.size', 'm.artifact_type', 'm.annotations'])
    .where('r.name', '=', repository)
    .where('m.subject_digest', '=', subjectDigest)
    .orderBy('m.id');
  if (artifactType !== undefined) query = query.where('m.artifact_type', '=', artifactType);
  return query.execute();
}
