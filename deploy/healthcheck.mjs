// The image's HEALTHCHECK: exit 0 when GET /healthz answers 200. With no argument it asks the
// API on the port of WHARF_HTTP_ADDR; a worker's check passes its worker.httpaddr URL, e.g.
// `node /app/deploy/healthcheck.mjs http://127.0.0.1:9090/healthz`. Node only: the image has no curl.
const addr = process.env.WHARF_HTTP_ADDR ?? '127.0.0.1:5000';
const port = addr.slice(addr.lastIndexOf(':') + 1);
const url = process.argv[2] ?? `http://127.0.0.1:${port}${process.env.WHARF_HTTP_PREFIX ?? ''}/healthz`;
try {
  const res = await fetch(url, { signal: AbortSignal.timeout(4000) });
  process.exit(res.status === 200 ? 0 : 1);
} catch (err) {
  console.error(`healthcheck: ${url}: ${err.cause?.code ?? err.message}`);
  process.exit(1);
}
