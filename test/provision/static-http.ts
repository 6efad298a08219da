// A small static HTTP server for the boot-path test (run in the test's network namespace):
//   node static-http.js ROOT ADDRESS PORT
// GET and HEAD of the files under ROOT (the query string is ignored); every request is logged
// on stdout as `GET /path?query STATUS`, and `listening` once it listens.
import { createReadStream, statSync } from 'node:fs';
import { createServer } from 'node:http';
import { join, normalize } from 'node:path';

const [root, address, port] = process.argv.slice(2);
if (!root || !address || !port) {
  process.stderr.write('usage: static-http ROOT ADDRESS PORT\n');
  process.exit(2);
}
const server = createServer((req, res) => {
  const url = new URL(req.url ?? '/', 'http://x');
  const path = normalize(decodeURIComponent(url.pathname)).replace(/^(\.\.[/\\])+/, '');
  const file = join(root, path);
  let size = -1;
  try {
    const st = statSync(file);
    if (st.isFile()) size = st.size;
  } catch {
    /* missing */
  }
  const status = size < 0 || (req.method !== 'GET' && req.method !== 'HEAD') ? 404 : 200;
  process.stdout.write(`${req.method} ${req.url} ${status}\n`);
  if (status !== 200) {
    res.writeHead(status, { 'content-type': 'text/plain' }).end('not found\n');
    return;
  }
  res.writeHead(200, { 'content-length': size, 'content-type': 'application/octet-stream' });
  if (req.method === 'HEAD') res.end();
  else createReadStream(file).pipe(res);
});
server.listen(Number(port), address, () => process.stdout.write('listening\n'));
for (const sig of ['SIGTERM', 'SIGINT'] as const) process.on(sig, () => server.close(() => process.exit(0)));
