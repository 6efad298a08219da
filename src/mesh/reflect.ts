// @peculiar/x509 depends on tsyringe, which refuses to load without a Reflect metadata API
// (the `reflect-metadata` polyfill). It only stores and reads its own injection tokens with
// it, so this module gives it the three functions it calls, kept per target and property in
// a WeakMap, when no polyfill is loaded. Imported before @peculiar/x509 (src/mesh/crypto.ts).
// If `reflect-metadata` becomes a dependency, import it here instead.
type Key = string | symbol | undefined;
const store = new WeakMap<object, Map<Key, Map<unknown, unknown>>>();

function own(target: object, prop: Key, create: boolean): Map<unknown, unknown> | undefined {
  let byProp = store.get(target);
  if (!byProp) {
    if (!create) return undefined;
    byProp = new Map();
    store.set(target, byProp);
  }
  let m = byProp.get(prop);
  if (!m && create) {
    m = new Map();
    byProp.set(prop, m);
  }
  return m;
}

const R = Reflect as unknown as Record<string, unknown>;
if (typeof R.getMetadata !== 'function') {
  R.defineMetadata = (key: unknown, value: unknown, target: object, prop?: Key): void => {
    own(target, prop, true)!.set(key, value);
  };
  R.getOwnMetadata = (key: unknown, target: object, prop?: Key): unknown => own(target, prop, false)?.get(key);
  R.getMetadata = (key: unknown, target: object, prop?: Key): unknown => {
    for (let t: object | null = target; t; t = Object.getPrototypeOf(t) as object | null) {
      const m = own(t, prop, false);
      if (m?.has(key)) return m.get(key);
    }
    return undefined;
  };
}
export {};
