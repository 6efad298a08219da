// Paths into a document, as shown in diagnostics. Pure.

const IDENT_RE = /^[A-Za-z_][A-Za-z0-9_-]*$/;

/** `jobs.align.requires[1]`; keys that are not plain identifiers are quoted: `resource.devices["nvidia.com/gpu"]`. */
export function formatPath(path: readonly (string | number)[]): string {
  let s = '';
  for (const seg of path) {
    if (typeof seg === 'number') s += `[${seg}]`;
    else if (IDENT_RE.test(seg)) s += s === '' ? seg : `.${seg}`;
    else s += `[${JSON.stringify(seg)}]`;
  }
  return s;
}


/** `o[k] = v` that also works for the key "__proto__" (an own property, never the prototype). */
export function setOwn<T>(o: Record<string, T>, k: string, v: T): void {
  if (k === '__proto__') Object.defineProperty(o, k, { value: v, enumerable: true, writable: true, configurable: true });
  else o[k] = v;
}
