/**
 * An S3 endpoint for tests. With WHARF_TEST_S3_ENDPOINT set, that endpoint is used (Ceph RGW from
 * scripts/rgw.sh, as CI runs it; MinIO, AWS…):
 * the bucket is WHARF_TEST_S3_BUCKET, or a uniquely named one created here and removed by close().
 * Otherwise s3rver runs in a child process (services/cli/local-s3.ts).
 */
import { randomBytes } from 'node:crypto';
import {
  AbortMultipartUploadCommand,
  CreateBucketCommand,
  DeleteBucketCommand,
  DeleteObjectCommand,
  ListMultipartUploadsCommand,
  ListObjectsV2Command,
  S3Client,
} from '@aws-sdk/client-s3';
import { startLocalS3, type LocalS3 } from '../../services/cli/local-s3.js';

export type S3Endpoint = LocalS3;

/** Every object key in `bucket`, page by page. */
export async function listObjectKeys(client: S3Client, bucket: string): Promise<string[]> {
  const keys: string[] = [];
  let token: string | undefined;
  do {
    const page = await client.send(new ListObjectsV2Command({ Bucket: bucket, ContinuationToken: token }));
    for (const o of page.Contents ?? []) keys.push(o.Key!);
    token = page.IsTruncated ? page.NextContinuationToken : undefined;
  } while (token);
  return keys;
}

export async function startS3rver(): Promise<S3Endpoint> {
  const external = process.env.WHARF_TEST_S3_ENDPOINT;
  if (external) return externalEndpoint(external);
  return startLocalS3({ bucket: 'wharf-test' });
}

async function externalEndpoint(endpoint: string): Promise<S3Endpoint> {
  const region = process.env.WHARF_TEST_S3_REGION || 'us-east-1';
  const accessKeyId = process.env.WHARF_TEST_S3_ACCESSKEYID || 'S3RVER';
  const secretAccessKey = process.env.WHARF_TEST_S3_SECRETACCESSKEY || 'S3RVER';
  const given = process.env.WHARF_TEST_S3_BUCKET;
  const base = { endpoint, region, accessKeyId, secretAccessKey };
  if (given) return { ...base, bucket: given, close: async () => {} };

  const client = new S3Client({ endpoint, region, forcePathStyle: true, credentials: { accessKeyId, secretAccessKey } });
  const bucket = `wharf-test-${Date.now().toString(36)}-${randomBytes(4).toString('hex')}`;
  await client.send(new CreateBucketCommand({ Bucket: bucket }));
  let closed: Promise<void> | undefined;
  const close = async () => {
    try {
      let token: string | undefined;
      do {
        const page = await client.send(new ListObjectsV2Command({ Bucket: bucket, ContinuationToken: token }));
        await Promise.all((page.Contents ?? []).map((o) => client.send(new DeleteObjectCommand({ Bucket: bucket, Key: o.Key }))));
        token = page.IsTruncated ? page.NextContinuationToken : undefined;
      } while (token);
      // A bucket with multipart uploads in progress cannot be deleted (RGW, AWS).
      let marker: { KeyMarker?: string; UploadIdMarker?: string } = {};
      for (;;) {
        const page = await client.send(new ListMultipartUploadsCommand({ Bucket: bucket, ...marker }));
        await Promise.all((page.Uploads ?? []).map((u) => client.send(new AbortMultipartUploadCommand({ Bucket: bucket, Key: u.Key, UploadId: u.UploadId }))));
        if (!page.IsTruncated) break;
        marker = { KeyMarker: page.NextKeyMarker, UploadIdMarker: page.NextUploadIdMarker };
      }
      await client.send(new DeleteBucketCommand({ Bucket: bucket }));
    } catch {
      // best effort: a bucket left behind has a name that says where it came from
    } finally {
      client.destroy();
    }
  };
  return { ...base, bucket, close: () => (closed ??= close()) };
}
