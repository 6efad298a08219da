// Shared test helpers: where the repository and ../shared are, temporary directories.
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

function findRoot(start: string): string {
  let d = start;
  for (;;) {
    if (existsSync(join(d, 'package.json')) && existsSync(join(d, 'src'))) return d;
    const up = dirname(d);
    if (up === d) throw new Error(`repository root not found above ${start}`);
    d = up;
  }
}

/** The repository root (works from test/ under tsx and from dist/test/ when compiled). */
export const repoRoot = findRoot(dirname(fileURLToPath(import.meta.url)));
/** `../shared` beside the repository: third-party test data (see its README). */
export const sharedDir = resolve(repoRoot, '..', 'shared');
/** The built CLI launcher. */
export const warrenBin = join(repoRoot, 'bin', 'warren.js');

/** A fresh temporary directory, removed by the returned cleanup. */
export function tempDir(prefix = 'warren-test-', base?: string): { dir: string; cleanup: () => void } {
  const dir = mkdtempSync(join(base ?? tmpdir(), prefix));
  return { dir, cleanup: () => rmSync(dir, { recursive: true, force: true }) };
}

/** A TCP port free on 127.0.0.1 right now (the system picks it; closed again before it is returned). */
export async function freePort(): Promise<number> {
  const { createServer } = await import('node:net');
  const s = createServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  const port = (s.address() as import('node:net').AddressInfo).port;
  await new Promise<void>((r) => s.close(() => r()));
  return port;
}

/** GET `url` on a fresh connection: its status and body as text. */
export async function httpGet(url: string): Promise<{ status: number; body: string }> {
  const { get } = await import('node:http');
  return new Promise((resolve, reject) => {
    get(url, { agent: false }, (res) => {
      let body = '';
      res.on('data', (c) => (body += c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
    }).on('error', reject);
  });
}
