// S3 ingress and egress against a real S3-compatible server (s3rver) on loopback, behind a
// small recording proxy that can drop a response after N bytes.
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, readFileSync, statSync, writeFileSync, existsSync } from 'node:fs';
import { createServer, request as httpRequest, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { GetObjectCommand, PutObjectCommand, S3Client } from '@aws-sdk/client-s3';
import { ingress, egress, DataCache, s3Settings, type DataOptions } from '../../src/data/index.js';
import type { TransferSpec } from '../../src/workflow/types.js';
import { tempDir } from '../helpers.js';
import { bytes, sha256 } from './httpserver.js';

const T = { timeout: 60_000 };
const require = createRequire(import.meta.url);

interface Rec { method: string; url: string; headers: IncomingMessage['headers'] }

describe('S3 transfers (s3rver)', () => {
  let tmp: { dir: string; cleanup: () => void };
  let s3rver: { run: () => Promise<AddressInfo>; close: () => Promise<void> };
  let proxy: Server;
  let endpoint: string;
  let client: S3Client;
  const recs: Rec[] = [];
  const drops: Array<{ path: string; after: number }> = [];
  let n = 0;
  const vol = (): string => {
    const d = join(tmp.dir, `vol${++n}`);
    mkdirSync(d);
    return d;
  };
  const secrets = (ref: string): Record<string, string> | undefined =>
    ref === 'secret://user/s3' ? { accessKeyId: 'S3RVER', secretAccessKey: 'S3RVER' } : ref === 'secret://user/bad' ? { accessKeyId: 'NOPE', secretAccessKey: 'NOPE' } : undefined;
  const opts = (extra: Partial<DataOptions> = {}): DataOptions => ({
    cacheDir: join(tmp.dir, 'cache'), retries: 3, retryBaseMs: 10, secrets,
    s3: { endpoint, region: 'us-east-1', forcePathStyle: true }, ...extra,
  });
  const spec = (src: string, dst: string, secret = 'secret://user/s3', extra: Partial<TransferSpec> = {}): TransferSpec => {
    const s3side = { secret };
    return src.startsWith('s3://')
      ? { source: { uri: src, ...s3side }, destination: { uri: dst }, ...extra }
      : { source: { uri: src }, destination: { uri: dst, ...s3side }, ...extra };
  };
  const put = (key: string, body: Buffer): Promise<unknown> => client.send(new PutObjectCommand({ Bucket: 'bkt', Key: key, Body: body }));
  const getBody = async (key: string): Promise<Buffer> => {
    const r = await client.send(new GetObjectCommand({ Bucket: 'bkt', Key: key }));
    return Buffer.from(await r.Body!.transformToByteArray());
  };

  before(async () => {
    tmp = tempDir('warren-data-s3-');
    const S3rver = require('s3rver');
    s3rver = new S3rver({
      address: '127.0.0.1', port: 0, silent: true, directory: join(tmp.dir, 's3rver'),
      configureBuckets: [{ name: 'bkt', configs: [] }],
    });
    const addr = await s3rver.run();
    // Recording proxy with fault injection.
    proxy = createServer((req, res) => {
      recs.push({ method: req.method ?? '', url: req.url ?? '', headers: req.headers });
      const path = (req.url ?? '').split('?')[0]!;
      const di = drops.findIndex((d) => d.path === path && req.method === 'GET');
      const drop = di >= 0 ? drops.splice(di, 1)[0] : undefined;
      const up = httpRequest({ host: '127.0.0.1', port: addr.port, method: req.method, path: req.url, headers: req.headers }, (ur) => {
        res.writeHead(ur.statusCode ?? 502, ur.headers);
        if (!drop) {
          ur.pipe(res);
          return;
        }
        let sent = 0;
        ur.on('data', (c: Buffer) => {
          if (sent >= drop.after) return;
          const part = c.subarray(0, drop.after - sent);
          sent += part.length;
          res.write(part);
          if (sent >= drop.after) {
            ur.destroy();
            setTimeout(() => res.socket?.destroy(), 20);
          }
        });
      });
      up.on('error', () => res.destroy());
      req.pipe(up);
    });
    await new Promise<void>((r) => proxy.listen(0, '127.0.0.1', r));
    endpoint = `http://127.0.0.1:${(proxy.address() as AddressInfo).port}`;
    client = new S3Client({
      endpoint: `http://127.0.0.1:${addr.port}`, region: 'us-east-1', forcePathStyle: true,
      credentials: { accessKeyId: 'S3RVER', secretAccessKey: 'S3RVER' },
      requestChecksumCalculation: 'WHEN_REQUIRED', responseChecksumValidation: 'WHEN_REQUIRED',
    });
  });

  after(async () => {
    client?.destroy();
    if (proxy) {
      proxy.closeAllConnections();
      await new Promise<void>((r) => proxy.close(() => r()));
    }
    await s3rver?.close();
    tmp?.cleanup();
  });

  test('ingress of a multi-MB object, then a cache hit that downloads nothing', T, async () => {
    const data = bytes(6 * 1024 * 1024 + 123, 31);
    await put('data/big.bin', data);
    const v = vol();
    const r = await ingress(spec('s3://bkt/data/big.bin', 'file://in/big.bin'), v, opts());
    assert.equal(r.cached, false);
    assert.equal(r.sha256, sha256(data));
    assert.equal(sha256(readFileSync(join(v, 'in', 'big.bin'))), sha256(data));
    const start = recs.length;
    const v2 = vol();
    const r2 = await ingress(spec('s3://bkt/data/big.bin', 'file://big.bin'), v2, opts());
    assert.equal(r2.cached, true);
    const after = recs.slice(start);
    assert.deepEqual(after.map((x) => x.method), ['HEAD'], 'only a HeadObject, no GetObject');
    assert.equal(statSync(join(v2, 'big.bin')).ino, statSync(join(v, 'in', 'big.bin')).ino);
  });

  test('an interrupted download resumes with a ranged GetObject', T, async () => {
    const data = bytes(3 * 1024 * 1024, 32);
    await put('resume.bin', data);
    drops.push({ path: '/bkt/resume.bin', after: 1024 * 1024 });
    const v = vol();
    await assert.rejects(ingress(spec('s3://bkt/resume.bin', 'file://r.bin'), v, opts({ retries: 1 })), (e: Error & { code: string }) => {
      assert.equal(e.code, 'DATA_TRANSFER_FAILED');
      assert.match(e.message, /s3:\/\/bkt\/resume\.bin/);
      return true;
    });
    assert.equal(existsSync(join(v, 'r.bin')), false);
    const partial = new DataCache(join(tmp.dir, 'cache')).partialPath('s3://bkt/resume.bin');
    assert.equal(statSync(partial).size, 1024 * 1024);
    const start = recs.length;
    const r = await ingress(spec('s3://bkt/resume.bin', 'file://r.bin', 'secret://user/s3', { sha256: sha256(data) }), v, opts());
    const get = recs.slice(start).find((x) => x.method === 'GET')!;
    assert.equal(get.headers.range, `bytes=${1024 * 1024}-`);
    assert.ok(get.headers['if-match'], 'guarded by If-Match');
    assert.equal(r.sha256, sha256(data));
    assert.equal(sha256(readFileSync(join(v, 'r.bin'))), sha256(data));
  });

  test('a partial of an object replaced meanwhile is discarded', T, async () => {
    await put('changing.bin', bytes(2 * 1024 * 1024, 34));
    drops.push({ path: '/bkt/changing.bin', after: 512 * 1024 });
    const v = vol();
    await assert.rejects(ingress(spec('s3://bkt/changing.bin', 'file://c.bin'), v, opts({ retries: 1 })), { code: 'DATA_TRANSFER_FAILED' });
    const fresh = bytes(1024 * 1024 + 7, 35);
    await put('changing.bin', fresh);
    const start = recs.length;
    const r = await ingress(spec('s3://bkt/changing.bin', 'file://c.bin'), v, opts());
    assert.equal(r.sha256, sha256(fresh));
    assert.equal(recs.slice(start).find((x) => x.method === 'GET')!.headers.range, undefined, 'started over');
    assert.equal(sha256(readFileSync(join(v, 'c.bin'))), sha256(fresh));
  });

  test('missing key, missing bucket and bad credentials', T, async () => {
    const errOf = (p: Promise<unknown>): Promise<Error & { code: string; hint: string }> =>
      p.then(() => assert.fail('expected an error'), (e: unknown) => e as Error & { code: string; hint: string });
    const e1 = await errOf(ingress(spec('s3://bkt/nope.bin', 'file://x'), vol(), opts()));
    assert.equal(e1.code, 'DATA_NOT_FOUND');
    assert.match(e1.message, /s3:\/\/bkt\/nope\.bin/);
    const e2 = await errOf(ingress(spec('s3://nobucket/x.bin', 'file://x'), vol(), opts()));
    assert.equal(e2.code, 'DATA_NOT_FOUND');
    await put('private.bin', bytes(100, 3));
    const e3 = await errOf(ingress(spec('s3://bkt/private.bin', 'file://x', 'secret://user/bad'), vol(), opts()));
    assert.equal(e3.code, 'DATA_ACCESS_DENIED');
    assert.match(e3.hint, /secret/);
  });

  test('egress: multipart upload of a large file, and a key prefix', T, async () => {
    const v = vol();
    const data = bytes(17 * 1024 * 1024, 33);
    writeFileSync(join(v, 'result.bin'), data);
    const start = recs.length;
    const r = await egress(spec('file://result.bin', 's3://bkt/out/result.bin'), v, opts());
    assert.equal(r.target, 's3://bkt/out/result.bin');
    assert.equal(r.sha256, sha256(data));
    assert.ok(recs.slice(start).some((x) => /uploadId=/.test(x.url)), 'multipart upload used');
    assert.equal(sha256(await getBody('out/result.bin')), sha256(data));
    writeFileSync(join(v, 'small.txt'), 'hello\n');
    const r2 = await egress(spec('file://small.txt', 's3://bkt/prefix/'), v, opts());
    assert.equal(r2.target, 's3://bkt/prefix/small.txt');
    assert.equal((await getBody('prefix/small.txt')).toString(), 'hello\n');
  });

  test('S3 settings come from options, then the environment', () => {
    assert.deepEqual(s3Settings(undefined, {}), { region: 'us-east-1', forcePathStyle: false });
    assert.deepEqual(s3Settings(undefined, { WARREN_S3_ENDPOINT: 'http://127.0.0.1:9000', AWS_REGION: 'eu-west-1' }),
      { region: 'eu-west-1', forcePathStyle: true, endpoint: 'http://127.0.0.1:9000' });
    assert.deepEqual(s3Settings({ forcePathStyle: false }, { WARREN_S3_ENDPOINT: 'http://h', WARREN_S3_FORCE_PATH_STYLE: 'true' }),
      { region: 'us-east-1', forcePathStyle: false, endpoint: 'http://h' });
  });
});
