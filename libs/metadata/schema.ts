import type { ColumnType, Generated, Insertable, Kysely, Selectable, Transaction } from 'kysely';
import type { ProxyBlobFillsTable, ProxyChecksTable, ProxyPullsTable } from './proxy-cache.js';

type Timestamp = ColumnType<Date, Date | string | undefined, Date | string>;

export interface RepositoriesTable {
  id: Generated<number>;
  name: string;
  created_at: Timestamp;
  /** Bumped by triggers at commit whenever the repository's manifests, tags or blob links change (0003). */
  change_seq: Generated<number>;
}

export interface BlobsTable {
  digest: string;
  size: number;
  storage_key: string;
  created_at: Timestamp;
}

export interface RepositoryBlobsTable {
  repository_id: number;
  digest: string;
  created_at: Timestamp;
}

export interface ManifestsTable {
  id: Generated<number>;
  repository_id: number;
  digest: string;
  media_type: string;
  artifact_type: string | null;
  size: number;
  payload: Buffer;
  config_digest: string | null;
  subject_digest: string | null;
  annotations: ColumnType<Record<string, string> | null, string | null, string | null>;
  created_at: Timestamp;
}

export interface ManifestReferencesTable {
  manifest_id: number;
  child_digest: string;
  kind: 'config' | 'layer' | 'manifest';
}

export interface TagsTable {
  repository_id: number;
  name: string;
  manifest_id: number;
  created_at: Timestamp;
  updated_at: Timestamp;
}

export interface TagHistoryTable {
  id: Generated<number>;
  repository_id: number;
  tag: string;
  digest: string;
  created_at: Timestamp;
}

export interface UploadsTable {
  id: string;
  repository: string;
  byte_offset: ColumnType<number, number | undefined, number>;
  hash_state: Buffer | null;
  storage_key: string;
  storage_state: ColumnType<Record<string, unknown>, string | undefined, string>;
  created_at: Timestamp;
  updated_at: Timestamp;
}

export interface OutboxTable {
  id: Generated<number>;
  event_id: string;
  subject: string;
  payload: ColumnType<unknown, string, string>;
  created_at: Timestamp;
  published_at: Timestamp | null;
  dead_lettered_at: ColumnType<Date | null, Date | null | undefined, Date | null>;
  dead_letter_error: ColumnType<string | null, string | null | undefined, string | null>;
}

export interface GcBlobReviewsTable {
  digest: string;
  review_after: Timestamp;
  review_count: ColumnType<number, number | undefined, number>;
  event: string;
  created_at: Timestamp;
}

export interface GcManifestReviewsTable {
  repository_id: number;
  digest: string;
  review_after: Timestamp;
  review_count: ColumnType<number, number | undefined, number>;
  event: string;
  created_at: Timestamp;
}

export interface GcStorageDeletionsTable {
  id: Generated<number>;
  storage_key: string;
  storage_state: ColumnType<Record<string, unknown>, string | undefined, string>;
  size: ColumnType<number, number | undefined, number>;
  reason: string;
  review_after: Timestamp;
  review_count: ColumnType<number, number | undefined, number>;
  created_at: Timestamp;
}

export interface OutboxPaceTable {
  singleton: Generated<boolean>;
  busy_until: Generated<Timestamp>;
  next_at: Generated<Timestamp>;
}

export interface Schema {
  repositories: RepositoriesTable;
  blobs: BlobsTable;
  repository_blobs: RepositoryBlobsTable;
  manifests: ManifestsTable;
  manifest_references: ManifestReferencesTable;
  tags: TagsTable;
  tag_history: TagHistoryTable;
  uploads: UploadsTable;
  outbox: OutboxTable;
  outbox_pace: OutboxPaceTable;
  gc_blob_reviews: GcBlobReviewsTable;
  gc_manifest_reviews: GcManifestReviewsTable;
  gc_storage_deletions: GcStorageDeletionsTable;
  webhook_deliveries: WebhookDeliveriesTable;
  webhook_attempts: WebhookAttemptsTable;
  webhook_dead_letters: WebhookDeadLettersTable;
  catalog_entries: CatalogEntriesTable;
  namespace_children: NamespaceChildrenTable;
  manifest_listing: ManifestListingTable;
  manifest_listing_state: ManifestListingStateTable;
  proxy_checks: ProxyChecksTable;
  proxy_pulls: ProxyPullsTable;
  proxy_blob_fills: ProxyBlobFillsTable;
}

// Read models (migrations/0003_listings.sql), written by the catalog-indexer and manifest-lister.

export interface CatalogEntriesTable {
  repository_id: number;
  name: string;
  manifest_count: number;
  tag_count: number;
  blob_bytes: number;
  last_push_at: Date | null;
  change_seq: number;
}

export interface NamespaceChildrenTable {
  parent: string;
  child: string;
}

export interface ManifestListingTable {
  repository_id: number;
  digest: string;
  media_type: string;
  size: number;
  artifact_type: string | null;
  annotations: Record<string, string> | null;
  tags: string[];
  tagged: boolean;
  pushed_at: Date;
}

export interface ManifestListingStateTable {
  repository_id: number;
  version: number;
}

/** Either the database or a transaction on it: every store function takes one. */
export type Executor = Kysely<Schema> | Transaction<Schema>;

export type UploadRow = Selectable<UploadsTable>;
export type NewManifest = Insertable<ManifestsTable>;

export interface WebhookDeliveriesTable {
  id: Generated<number>;
  endpoint: string;
  event_id: string;
  subject: string;
  payload: ColumnType<unknown, string, string>;
  state: ColumnType<'pending' | 'delivered', 'pending' | 'delivered' | undefined, 'pending' | 'delivered'>;
  attempts: ColumnType<number, number | undefined, number>;
  next_attempt_at: Timestamp;
  claim_token: string | null;
  last_error: string | null;
  last_status: number | null;
  created_at: Timestamp;
  delivered_at: Timestamp | null;
}

export interface WebhookAttemptsTable {
  id: Generated<number>;
  endpoint: string;
  event_id: string;
  attempt: number;
  status: number | null;
  latency_ms: number;
  error: string | null;
  created_at: Timestamp;
}

export interface WebhookDeadLettersTable {
  id: Generated<number>;
  endpoint: string;
  event_id: string;
  subject: string;
  payload: ColumnType<unknown, string, string>;
  attempts: number;
  last_error: string | null;
  last_status: number | null;
  created_at: Timestamp;
  dead_at: Timestamp;
}
