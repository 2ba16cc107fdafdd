import { gc, type Executor } from '../metadata/index.js';
import { untaggedDelay, type GcPolicy } from './gc-policy.js';

/**
 * A step of deleting a manifest, in its transaction, after locking the row and before the
 * delete (its references go with it): whatever it kept alive is scheduled for review. Its blobs after the grace period,
 * its child manifests under the untagged policy, and its referrers, which lose their subject.
 */
export async function reviewWhatManifestKept(trx: Executor, policy: GcPolicy, repositoryId: number, manifest: { id: number; digest: string }): Promise<void> {
  const references = await gc.referencesOf(trx, manifest.id);
  const children = references.filter((r) => r.kind === 'manifest').map((r) => r.child_digest);
  await gc.enqueueManifestReviews(trx, repositoryId, children, untaggedDelay(policy), 'index-deleted');
  await gc.enqueueManifestReviews(trx, repositoryId, await gc.referrerDigests(trx, repositoryId, manifest.digest), policy.graceSeconds, 'subject-deleted');
  const blobDigests = references.filter((r) => r.kind !== 'manifest').map((r) => r.child_digest);
  await gc.enqueueBlobReviews(trx, blobDigests, policy.graceSeconds, 'manifest-deleted');
}
