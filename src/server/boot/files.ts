// Serving one immutable file over HTTP from disk, streamed (never read whole): a single byte
// range (206; 416 for a range outside the file; several ranges are answered with the whole
// file, which RFC 9110 allows), HEAD, an ETag that is the content's digest and If-None-Match
// (304), and the cache headers of content that never changes under its URL.
import { promises as fsp } from 'node:fs';
import type { IncomingMessage, ServerResponse } from 'node:http';

/** A parsed Range header: the bytes to send, 'unsatisfiable' (416), or null (send it all). */
export function parseRange(header: string | undefined, size: number): { start: number; end: number } | 'unsatisfiable' | null {
  if (header === undefined) return null;
  const m = /^\s*bytes\s*=\s*(\d*)\s*-\s*(\d*)\s*$/i.exec(header);
  if (!m) {
    // Several ranges, or another unit: ignored (the whole file), as RFC 9110 lets a server do.
    return /^\s*bytes\s*=.*,/i.test(header) || !/^\s*bytes\s*=/i.test(header) ? null : 'unsatisfiable';
  }
  const [, a, b] = m;
  if (a === '' && b === '') return 'unsatisfiable';
  if (a === '') {
    // The last N bytes.
    const n = Number(b);
    if (n === 0 || size === 0) return 'unsatisfiable';
    return { start: Math.max(0, size - n), end: size - 1 };
  }
  const start = Number(a);
  const end = b === '' ? size - 1 : Math.min(Number(b), size - 1);
  if (start >= size || (b !== '' && Number(b) < start)) return 'unsatisfiable';
  return { start, end };
}

/** Does an If-None-Match header name this ETag (or `*`)? */
export function etagMatches(header: string | undefined, etag: string): boolean {
  if (!header) return false;
  return header.split(',').some((t) => {
    const v = t.trim().replace(/^W\//, '');
    return v === '*' || v === etag;
  });
}

export interface ServeFileOptions {
  /** The ETag, quoted ("sha256-HEX"). */
  etag?: string;
  /** Cache-Control (default: public, a year, immutable). */
  cacheControl?: string;
  contentType?: string;
  /** Remove the file as soon as it is open (a one-off file with a secret: it is never left on disk). */
  removeWhenOpen?: boolean;
}

/**
 * Answer GET or HEAD of `path` on `res`. Resolves when the answer is sent (or the client went
 * away). The file is opened once and the stream reads from that descriptor, so a file renamed
 * over meanwhile is sent whole as it was.
 */
export async function serveFile(req: IncomingMessage, res: ServerResponse, path: string, o: ServeFileOptions = {}): Promise<number> {
  const fh = await fsp.open(path, 'r');
  if (o.removeWhenOpen) await fsp.rm(path, { force: true });
  let handedOff = false;
  try {
    const st = await fh.stat();
    const size = st.size;
    res.setHeader('Accept-Ranges', 'bytes');
    res.setHeader('Cache-Control', o.cacheControl ?? 'public, max-age=31536000, immutable');
    res.setHeader('Content-Type', o.contentType ?? 'application/octet-stream');
    res.setHeader('Last-Modified', st.mtime.toUTCString());
    if (o.etag) res.setHeader('ETag', o.etag);
    if (o.etag && etagMatches(req.headers['if-none-match'], o.etag)) {
      res.statusCode = 304;
      res.end();
      return 304;
    }
    // If-Range with another validator: the file changed, send it whole.
    const ifRange = req.headers['if-range'];
    const range = ifRange !== undefined && ifRange !== o.etag ? null : parseRange(req.headers.range, size);
    if (range === 'unsatisfiable') {
      res.statusCode = 416;
      res.setHeader('Content-Range', `bytes */${size}`);
      res.setHeader('Content-Length', 0);
      res.end();
      return 416;
    }
    const start = range ? range.start : 0;
    const end = range ? range.end : size - 1;
    res.statusCode = range ? 206 : 200;
    if (range) res.setHeader('Content-Range', `bytes ${start}-${end}/${size}`);
    res.setHeader('Content-Length', Math.max(0, end - start + 1));
    if (req.method === 'HEAD' || size === 0) {
      res.end();
      return res.statusCode;
    }
    const status = res.statusCode;
    handedOff = true;
    // The stream closes the file handle when it ends or is destroyed.
    const stream = fh.createReadStream({ start, end, highWaterMark: 1 << 20 });
    await new Promise<void>((resolve) => {
      const done = (): void => resolve();
      stream.on('error', () => {
        res.destroy();
        done();
      });
      res.on('close', () => {
        stream.destroy();
        done();
      });
      stream.pipe(res);
    });
    return status;
  } finally {
    if (!handedOff) await fh.close();
  }
}
