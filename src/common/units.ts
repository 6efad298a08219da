// Parsing of human sizes ("4GiB", "512MB", "1.5G") and durations ("2h30m", "90s", "1d").
// Pure functions; they return undefined on bad input so callers can report a positioned error.

const SIZE_UNITS: Record<string, number> = {
  '': 1,
  b: 1,
  k: 1000, kb: 1000, ki: 1024, kib: 1024,
  m: 1000 ** 2, mb: 1000 ** 2, mi: 1024 ** 2, mib: 1024 ** 2,
  g: 1000 ** 3, gb: 1000 ** 3, gi: 1024 ** 3, gib: 1024 ** 3,
  t: 1000 ** 4, tb: 1000 ** 4, ti: 1024 ** 4, tib: 1024 ** 4,
  p: 1000 ** 5, pb: 1000 ** 5, pi: 1024 ** 5, pib: 1024 ** 5,
};

/** Bytes from "4GiB", "512MB", "1.5 G", 1024 (a number is bytes). */
export function parseSize(v: unknown): number | undefined {
  if (typeof v === 'number') return Number.isFinite(v) && v >= 0 ? Math.round(v) : undefined;
  if (typeof v !== 'string') return undefined;
  const m = /^\s*(\d+(?:\.\d+)?)\s*([a-zA-Z]*)\s*$/.exec(v);
  if (!m) return undefined;
  const mult = SIZE_UNITS[m[2]!.toLowerCase()];
  if (mult === undefined) return undefined;
  return Math.round(parseFloat(m[1]!) * mult);
}

const DURATION_UNITS: Record<string, number> = { ms: 0.001, s: 1, m: 60, h: 3600, d: 86400, w: 604800 };

/** Seconds from "2h30m", "90s", "1.5h", "500ms", or a number of seconds. */
export function parseDuration(v: unknown): number | undefined {
  if (typeof v === 'number') return Number.isFinite(v) && v >= 0 ? v : undefined;
  if (typeof v !== 'string') return undefined;
  const s = v.trim();
  if (s === '') return undefined;
  if (/^\d+(\.\d+)?$/.test(s)) return parseFloat(s);
  const re = /(\d+(?:\.\d+)?)(ms|s|m|h|d|w)/gy;
  let total = 0;
  let pos = 0;
  let m: RegExpExecArray | null;
  while ((m = re.exec(s)) !== null) {
    total += parseFloat(m[1]!) * DURATION_UNITS[m[2]!]!;
    pos = re.lastIndex;
  }
  return pos === s.length && pos > 0 ? total : undefined;
}

/** Bandwidth in bytes per second from "10Gbps", "100MB/s", "1Gbit/s". */
export function parseBandwidth(v: unknown): number | undefined {
  if (typeof v === 'number') return Number.isFinite(v) && v > 0 ? v : undefined;
  if (typeof v !== 'string') return undefined;
  const m = /^\s*(\d+(?:\.\d+)?)\s*([kKmMgGtT]?)(bps|bit\/s|b\/s|B\/s|Bps)\s*$/.exec(v);
  if (!m) return undefined;
  const mult = { '': 1, k: 1e3, m: 1e6, g: 1e9, t: 1e12 }[m[2]!.toLowerCase()]!;
  const bits = m[3] === 'bps' || m[3] === 'bit/s' || m[3] === 'b/s';
  return (parseFloat(m[1]!) * mult) / (bits ? 8 : 1);
}

export function formatBytes(n: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) {
    n /= 1024;
    i++;
  }
  return `${i === 0 ? n : n.toFixed(1)}${units[i]}`;
}

export function formatDuration(sec: number): string {
  if (sec < 60) return `${sec.toFixed(sec < 10 ? 1 : 0)}s`;
  const h = Math.floor(sec / 3600);
  const m = Math.floor((sec % 3600) / 60);
  const s = Math.floor(sec % 60);
  return h > 0 ? `${h}h${String(m).padStart(2, '0')}m` : `${m}m${String(s).padStart(2, '0')}s`;
}
