import { checkEndpoints } from './notifications.js';
import { checkUpstreams } from './proxy.js';
import { checkGroups, checkPolicy } from '../auth/policy.js';
import { checkTrustedProxies } from './trusted-proxies.js';

/** Every configuration key: its type, default, environment variable and meaning. docs/configuration.md mirrors this table. */
export type KeyType = 'string' | 'integer' | 'boolean' | 'strings' | 'json';

export interface KeySpec {
  type: KeyType;
  default: string | number | boolean | string[];
  env?: string;
  doc: string;
  min?: number;
  /**
   * For 'json' keys (structured values: lists of objects, maps) and 'strings' keys: returns what
   * is wrong with a value, or undefined when it is acceptable. The YAML file gives the structure as it is; an
   * environment variable gives it as JSON text.
   */
  check?: (value: unknown) => string | undefined;
}

export const KEYS = {
  'http.addr': { type: 'string', default: '127.0.0.1:5000', env: 'WHARF_HTTP_ADDR', doc: 'host:port the API listens on' },
  'http.prefix': {
    type: 'string',
    default: '',
    env: 'WHARF_HTTP_PREFIX',
    doc: 'path prefix the whole API answers under, e.g. /registry (then /registry/v2/...); Location and Link headers carry it',
  },
  'ui.enabled': {
    type: 'boolean',
    default: true,
    env: 'WHARF_UI_ENABLED',
    doc: 'serve the browser UI at <http.prefix>/ui (static files; it calls only the public HTTP API); false: /ui is 404',
  },
  'http.trustedproxies': {
    type: 'strings',
    default: [],
    env: 'WHARF_HTTP_TRUSTEDPROXIES',
    check: checkTrustedProxies,
    doc: 'addresses, CIDR blocks or loopback/linklocal/uniquelocal of reverse proxies whose X-Forwarded-Proto, X-Forwarded-Host and X-Forwarded-For count (token realm, event URLs, client address for rate limits); empty: none',
  },
  'http.bodytimeout': { type: 'integer', default: 300, env: 'WHARF_HTTP_BODYTIMEOUT', min: 1, doc: 'seconds a request body may stall before the request is dropped' },
  'http.shutdowntimeout': {
    type: 'integer',
    default: 30,
    env: 'WHARF_HTTP_SHUTDOWNTIMEOUT',
    min: 0,
    doc: 'seconds in-flight requests may run after SIGTERM before their connections are cut (an upload cut short resumes on another node)',
  },
  'health.timeout': {
    type: 'integer',
    default: 2,
    env: 'WHARF_HEALTH_TIMEOUT',
    min: 1,
    doc: 'seconds each /readyz check (PostgreSQL, blob store) may take before it counts as down',
  },
  'data.dir': { type: 'string', default: './data', env: 'WHARF_DATA_DIR', doc: 'embedded mode: where blobs (blobs/) and the embedded PostgreSQL (postgres/) live' },
  'database.url': {
    type: 'string',
    default: '',
    env: 'WHARF_DATABASE_URL',
    doc: 'PostgreSQL connection URL; empty starts an embedded PostgreSQL under data.dir/postgres',
  },
  'database.poolsize': {
    type: 'integer',
    default: 0,
    env: 'WHARF_DATABASE_POOLSIZE',
    min: 0,
    doc: 'connections for queries; 0: 10 with the embedded PostgreSQL (each connection is a backend process of ~5 MB), 20 with database.url',
  },
  'database.uploadpoolsize': {
    type: 'integer',
    default: 50,
    env: 'WHARF_DATABASE_UPLOADPOOLSIZE',
    min: 1,
    doc: 'connections for upload bodies in flight (each holds its session row lock); caps concurrent PATCH/PUT bodies per node',
  },
  'database.statementtimeout': {
    type: 'integer',
    default: 30,
    env: 'WHARF_DATABASE_STATEMENTTIMEOUT',
    min: 0,
    doc: "seconds one SQL statement may run (PostgreSQL's statement_timeout); a statement with no answer 5 s past it (a stalled connection) fails too and its connection is dropped; the request gets 503; 0: no limit",
  },
  'database.locktimeout': {
    type: 'integer',
    default: 10,
    env: 'WHARF_DATABASE_LOCKTIMEOUT',
    min: 0,
    doc: "seconds a statement may wait for a lock (PostgreSQL's lock_timeout); the request gets 503; 0: no limit",
  },
  'database.idletransactiontimeout': {
    type: 'integer',
    default: 60,
    env: 'WHARF_DATABASE_IDLETRANSACTIONTIMEOUT',
    min: 0,
    doc: 'seconds a connection may sit idle inside a transaction before PostgreSQL ends it (idle_in_transaction_session_timeout): a backstop, so no bug can hold a lock forever; upload connections get http.bodytimeout more, since their transaction waits on the body between statements; 0: no limit',
  },
  'storage.driver': { type: 'string', default: 'filesystem', env: 'WHARF_STORAGE_DRIVER', doc: 'where blob bytes go: filesystem (under data.dir/blobs) or s3' },
  'storage.s3.endpoint': { type: 'string', default: '', env: 'WHARF_S3_ENDPOINT', doc: 'S3 endpoint URL (MinIO, s3rver); empty: AWS for the region' },
  'storage.s3.region': { type: 'string', default: 'us-east-1', env: 'WHARF_S3_REGION', doc: 'S3 region' },
  'storage.s3.bucket': { type: 'string', default: 'wharf', env: 'WHARF_S3_BUCKET', doc: 'S3 bucket holding the blobs' },
  'storage.s3.prefix': { type: 'string', default: '', env: 'WHARF_S3_PREFIX', doc: 'key prefix inside the bucket, e.g. registry/' },
  'storage.s3.forcepathstyle': { type: 'boolean', default: false, env: 'WHARF_S3_FORCEPATHSTYLE', doc: 'path-style URLs (MinIO, s3rver)' },
  'storage.s3.accesskeyid': { type: 'string', default: '', env: 'WHARF_S3_ACCESSKEYID', doc: "access key; empty: the AWS SDK's default credential chain" },
  'storage.s3.secretaccesskey': { type: 'string', default: '', env: 'WHARF_S3_SECRETACCESSKEY', doc: 'secret key, with accesskeyid' },
  'storage.s3.redirect': {
    type: 'boolean',
    default: false,
    env: 'WHARF_S3_REDIRECT',
    doc: 'answer blob GETs with a 307 to a presigned S3 URL instead of streaming through the node',
  },
  'storage.s3.redirectexpiry': { type: 'integer', default: 900, env: 'WHARF_S3_REDIRECTEXPIRY', min: 1, doc: 'seconds a presigned blob URL stays valid' },
  'storage.s3.publicendpoint': {
    type: 'string',
    default: '',
    env: 'WHARF_S3_PUBLICENDPOINT',
    doc: 'endpoint URL presigned redirect URLs are made for, when clients reach S3 at another address than the nodes do; empty: storage.s3.endpoint',
  },
  'storage.s3.checksum': {
    type: 'string',
    default: 'auto',
    env: 'WHARF_S3_CHECKSUM',
    doc: 'request checksums: when_required (Ceph RGW 16, s3rver, older MinIO), when_supported (AWS), or auto: when_supported on AWS (no endpoint), else when_required',
  },
  'storage.s3.timeout': {
    type: 'integer',
    default: 30,
    env: 'WHARF_S3_TIMEOUT',
    min: 1,
    doc: 'seconds one S3 call may wait for its answer (after sending its body) before it is retried or the request fails with 503; also how long a GetObject body may stall mid-way (while its reader wants bytes) before the blob GET is cut off',
  },
  'storage.s3.maxattempts': {
    type: 'integer',
    default: 4,
    env: 'WHARF_S3_MAXATTEMPTS',
    min: 1,
    doc: "attempts per S3 call on 500/503/SlowDown, timeouts and connection resets, with exponential backoff and full jitter (the AWS SDK's standard retry mode)",
  },
  'storage.s3.partsize': {
    type: 'integer',
    default: 8_388_608,
    env: 'WHARF_S3_PARTSIZE',
    min: 5_242_880,
    doc: 'bytes of each multipart part but the last; a PATCH holds up to partconcurrency + 1 parts in memory',
  },
  'storage.s3.partconcurrency': {
    type: 'integer',
    default: 2,
    env: 'WHARF_S3_PARTCONCURRENCY',
    min: 1,
    doc: 'parts of one upload request sent to S3 at once while the next one fills',
  },
  'nats.url': { type: 'string', default: '', env: 'WHARF_NATS_URL', doc: 'NATS server(s), comma-separated; empty: the in-process bus (embedded mode)' },
  'nats.stream': { type: 'string', default: 'WHARF_EVENTS', env: 'WHARF_NATS_STREAM', doc: 'JetStream stream holding the events' },
  'nats.subjectprefix': {
    type: 'string',
    default: 'wharf.events',
    env: 'WHARF_NATS_SUBJECTPREFIX',
    doc: 'subject prefix on NATS; the public contract is wharf.events, change it only to share a NATS account between registries or test runs',
  },
  'events.pull': { type: 'boolean', default: true, env: 'WHARF_EVENTS_PULL', doc: 'publish manifest/blob pull events (best effort, not through the outbox)' },
  'events.pullwindow': {
    type: 'integer',
    default: 1000,
    env: 'WHARF_EVENTS_PULLWINDOW',
    min: 0,
    doc: 'milliseconds identical pulls (same object, tag, actor and client) are gathered into one pull event whose count says how many (client: IP address, any port); 0: one event per pull',
  },
  'events.outboxretention': {
    type: 'integer',
    default: 3600,
    env: 'WHARF_EVENTS_OUTBOXRETENTION',
    min: 0,
    doc: 'seconds a published outbox row is kept before it is pruned',
  },
  'events.busyrate': {
    type: 'integer',
    default: 1000,
    env: 'WHARF_EVENTS_BUSYRATE',
    min: 0,
    doc: 'outbox events a second the relays of the whole cluster publish at most while any API node serves requests: a backlog drains at this pace instead of taking the CPU reads need; 0: no limit',
  },
  'events.instanceid': { type: 'string', default: '', env: 'WHARF_EVENTS_INSTANCEID', doc: 'source.instanceID in events; empty: a random id per process' },
  'worker.roles': {
    type: 'strings',
    default: [],
    env: 'WHARF_WORKER_ROLES',
    doc: 'worker roles this process runs (wharf worker and wharf all); empty: every role',
  },
  'worker.httpaddr': {
    type: 'string',
    default: '',
    env: 'WHARF_WORKER_HTTPADDR',
    doc: 'host:port where wharf worker answers /healthz, /readyz and /metrics (for probes and Prometheus); empty: no listener',
  },
  'gc.grace': {
    type: 'integer',
    default: 86_400,
    env: 'WHARF_GC_GRACE',
    min: 0,
    doc: 'seconds between a deletion (tag deleted or moved, manifest deleted, blob unlinked) and the garbage collection review of what it may have orphaned',
  },
  'gc.uploadgrace': {
    type: 'integer',
    default: 86_400,
    env: 'WHARF_GC_UPLOADGRACE',
    min: 0,
    doc: 'seconds a blob is kept after an upload, mount or HEAD, before a manifest references it: the longest a client may take between its layers and its manifest',
  },
  'gc.untagged': {
    type: 'string',
    default: 'keep',
    env: 'WHARF_GC_UNTAGGED',
    doc: 'untagged manifests no index references: keep, or "delete-after <duration>" (e.g. delete-after 7d; units ms, s, m, h, d, combined as in 1d12h) counted from when they lost their last tag',
  },
  'gc.sweepinterval': {
    type: 'integer',
    default: 3600,
    env: 'WHARF_GC_SWEEPINTERVAL',
    min: 1,
    doc: 'seconds between sweeps for S3 multipart uploads no upload session owns; those older than gc.uploadgrace are aborted',
  },
  'gc.workers': { type: 'integer', default: 2, env: 'WHARF_GC_WORKERS', min: 1, doc: 'concurrent review loops per gc worker process (replicas share the queues)' },
  'gc.pollinterval': { type: 'integer', default: 1000, env: 'WHARF_GC_POLLINTERVAL', min: 10, doc: 'milliseconds an idle gc loop waits before looking for due reviews again' },
  'uploads.maxidle': {
    type: 'integer',
    default: 86_400,
    env: 'WHARF_UPLOADS_MAXIDLE',
    min: 1,
    doc: 'seconds an upload session may go without a request before the gc worker cancels it and frees its storage',
  },
  'uploads.automount': {
    type: 'boolean',
    default: true,
    env: 'WHARF_UPLOADS_AUTOMOUNT',
    doc: 'a cross-repository mount without from (POST ?mount=<digest>) links the blob from any repository the caller may pull that holds it; false: a mount needs from, and one without it starts an ordinary upload (202)',
  },
  'notifications.endpoints': {
    type: 'json',
    default: [],
    env: 'WHARF_NOTIFICATIONS_ENDPOINTS',
    doc: "webhook endpoints (list), with Distribution's keys name, url, headers, timeout, threshold, backoff, disabled, ignoredmediatypes, ignore.mediatypes, ignore.actions, plus maxattempts, maxbackoff, concurrency, secret; see docs/events.md",
    check: checkEndpoints,
  },
  'notifications.retention': {
    type: 'integer',
    default: 86400,
    env: 'WHARF_NOTIFICATIONS_RETENTION',
    min: 60,
    doc: 'seconds delivered webhook deliveries and recorded attempts are kept (the window in which a re-delivered event is recognised) before they are pruned',
  },
  'proxy.upstreams': {
    type: 'json',
    default: [],
    env: 'WHARF_PROXY_UPSTREAMS',
    doc: 'pull-through cache: registries served under local prefixes (list of name, url, mirrors, prefix, path, library, username, passwordfile or passwordenv, ttl, retention, onnotfound, timeout, retries); see docs/proxy.md',
    check: (value) => checkUpstreams(value),
  },
  'proxy.filllease': {
    type: 'integer',
    default: 15,
    env: 'WHARF_PROXY_FILLLEASE',
    min: 1,
    doc: 'seconds a pull-through blob fill lives without a heartbeat (its node died) before another request takes it over; the gc worker deletes what such a fill wrote',
  },
  'log.level': { type: 'string', default: 'info', env: 'WHARF_LOG_LEVEL', doc: 'pino level: fatal, error, warn, info, debug, trace, silent' },
  'limits.manifestbytes': { type: 'integer', default: 4 * 1024 * 1024, env: 'WHARF_LIMITS_MANIFESTBYTES', min: 1024, doc: 'largest manifest accepted (413 above)' },
  'cache.manifests.entries': {
    type: 'integer',
    default: 10000,
    env: 'WHARF_CACHE_MANIFESTS_ENTRIES',
    min: 0,
    doc: 'tags and manifests an API node keeps in memory for manifest GET/HEAD, kept coherent by the events (nats.url, or the embedded database); 0: off',
  },
  'cache.manifests.bytes': {
    type: 'integer',
    default: 32 * 1024 * 1024,
    env: 'WHARF_CACHE_MANIFESTS_BYTES',
    min: 0,
    doc: 'bytes of manifests that cache keeps at most (a manifest over an eighth of it is not kept)',
  },
  'limits.pagesize': {
    type: 'integer',
    default: 1000,
    env: 'WHARF_LIMITS_PAGESIZE',
    min: 1,
    doc: 'largest page of tags/list and _catalog; a larger n is clamped to it, and it is the page size when n is absent',
  },
  'http.tls.certificate': { type: 'string', default: '', env: 'WHARF_HTTP_TLS_CERTIFICATE', doc: 'PEM certificate (chain) file; with http.tls.key, the API speaks HTTPS' },
  'http.tls.key': { type: 'string', default: '', env: 'WHARF_HTTP_TLS_KEY', doc: 'PEM private key file of http.tls.certificate' },
  'auth.mode': {
    type: 'string',
    default: 'none',
    env: 'WHARF_AUTH_MODE',
    doc: 'none (no access control: keep it on loopback), htpasswd (Basic) or token (Bearer, Docker token specification)',
  },
  'auth.htpasswd.path': {
    type: 'string',
    default: '',
    env: 'WHARF_AUTH_HTPASSWD_PATH',
    doc: 'Apache htpasswd file with bcrypt entries (htpasswd -B); re-read when it changes; also what the built-in token issuer checks',
  },
  'auth.htpasswd.realm': { type: 'string', default: 'wharf', env: 'WHARF_AUTH_HTPASSWD_REALM', doc: 'realm of the Basic challenge' },
  'auth.token.realm': { type: 'string', default: '', env: 'WHARF_AUTH_TOKEN_REALM', doc: "token service URL in the Bearer challenge; empty: this registry's own GET /auth/token" },
  'auth.token.service': { type: 'string', default: 'wharf', env: 'WHARF_AUTH_TOKEN_SERVICE', doc: 'service name in the challenge; a token must carry it in aud' },
  'auth.token.issuer': { type: 'string', default: 'wharf', env: 'WHARF_AUTH_TOKEN_ISSUER', doc: 'iss a token must carry (and the one the built-in issuer writes)' },
  'auth.token.rootcertbundle': {
    type: 'string',
    default: '',
    env: 'WHARF_AUTH_TOKEN_ROOTCERTBUNDLE',
    doc: 'PEM certificates: their keys sign tokens (kid = RFC 7638 thumbprint or libtrust id), and they root x5c chains',
  },
  'auth.token.jwks': { type: 'string', default: '', env: 'WHARF_AUTH_TOKEN_JWKS', doc: 'JWKS file of keys that sign tokens, looked up by kid' },
  'auth.token.signingkey': {
    type: 'string',
    default: '',
    env: 'WHARF_AUTH_TOKEN_SIGNINGKEY',
    doc: 'PEM private key (RSA, EC P-256/384/521 or Ed25519) of the built-in issuer; set, GET /auth/token issues tokens and its key is trusted',
  },
  'auth.token.expiry': { type: 'integer', default: 300, env: 'WHARF_AUTH_TOKEN_EXPIRY', min: 60, doc: 'seconds a token from the built-in issuer stays valid' },
  'auth.token.refreshexpiry': {
    type: 'integer',
    default: 28800,
    env: 'WHARF_AUTH_TOKEN_REFRESHEXPIRY',
    min: 60,
    doc: 'seconds a refresh token from the built-in issuer (GET /auth/token?offline_token=true) can be exchanged for access tokens; what the UI keeps instead of the password',
  },
  'auth.policy': {
    type: 'json',
    default: [],
    env: 'WHARF_AUTH_POLICY',
    check: checkPolicy,
    doc: 'access rules (see docs/auth.md): who (users, groups, authenticated, anonymous) may do what (repositories + actions, catalog, admin); empty: every authenticated user may do everything but admin',
  },
  'auth.groups': { type: 'json', default: [], env: 'WHARF_AUTH_GROUPS', check: checkGroups, doc: 'groups the policy names: a list of {name, users}' },
  'limits.blobbytes': {
    type: 'integer',
    default: 0,
    env: 'WHARF_LIMITS_BLOBBYTES',
    min: 0,
    doc: 'largest blob accepted, counted while the body streams (413 SIZE_INVALID past it, nothing kept); 0: no limit',
  },
  'limits.headerbytes': { type: 'integer', default: 16384, env: 'WHARF_LIMITS_HEADERBYTES', min: 1024, doc: 'largest request head (request line and headers); 431 above' },
  'limits.ratelimit.rate': {
    type: 'integer',
    default: 0,
    env: 'WHARF_LIMITS_RATELIMIT_RATE',
    min: 0,
    doc: 'requests per second each client address may make on one node (a token bucket); 429 TOOMANYREQUESTS beyond; 0: no limit',
  },
  'limits.ratelimit.burst': {
    type: 'integer',
    default: 200,
    env: 'WHARF_LIMITS_RATELIMIT_BURST',
    min: 1,
    doc: 'requests a client address may make at once before limits.ratelimit.rate applies',
  },
  'validation.manifests.urls.allow': {
    type: 'strings',
    default: ['^https?://'],
    doc: 'regular expressions; a foreign (non-distributable) layer with urls is accepted without its blob only if every url matches one',
  },
  'validation.manifests.urls.deny': { type: 'strings', default: [], doc: 'regular expressions; a url matching any of them is refused' },
} as const satisfies Record<string, KeySpec>;

export type ConfigKey = keyof typeof KEYS;

/** Variables under WHARF_ that are not configuration keys. */
/** WHARF_SKIP_NATIVE and WHARF_BUILD_QUIET are read by the build scripts (scripts/), not by Wharf. */
export const NON_KEY_ENV = new Set(['WHARF_CONFIG', 'WHARF_SKIP_NATIVE', 'WHARF_BUILD_QUIET']);
export const NON_KEY_ENV_PREFIXES = ['WHARF_TEST_', 'WHARF_BENCH_'];
