// The least any proxy in Node does for a cold pull: each request forwarded to the upstream and its
// answer piped back, with no cache, no digest check and no store. bench/proxy.ts times pulls through
// it beside Wharf's, as the ceiling a Node process in the byte path reaches on this machine.
// Usage: node bench/pass-through-proxy.mjs <port> <upstream base URL>
import http from 'node:http';

const [port, upstream] = process.argv.slice(2);
const target = new URL(upstream);
const agent = new http.Agent({ keepAlive: true, maxSockets: 64 });
http
  .createServer((req, res) => {
    const forwarded = http.request({ agent, host: target.hostname, port: target.port, method: req.method, path: req.url, headers: req.headers }, (answer) => {
      res.writeHead(answer.statusCode ?? 502, answer.headers);
      answer.pipe(res);
    });
    forwarded.on('error', () => res.destroy());
    req.pipe(forwarded);
  })
  .listen(Number(port), '127.0.0.1');
