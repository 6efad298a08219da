// The Go values a template works with, in JavaScript. Go's templates are typed (a function
// that takes an int refuses an int64; eq refuses to compare a string with a number), so the
// values keep their Go type:
//
//   Go                         here
//   string, bool               string, boolean
//   float64                    number
//   int, int64, uint64, uint8  GoInt (a bigint and its type)
//   []interface{}, []string    arrays (a []string is marked, for %T and messages)
//   map[string]interface{}     Map<string, GoValue>
//   time.Time                  GoTime
//   nil interface{}            null   (a nil held in a map or list)
//   no value                   undefined (Go's invalid reflect.Value: a missing map key)
//
// Pure.

export type IntType = 'int' | 'int64' | 'int32' | 'uint64' | 'uint8';

/** A Go integer of a given type; `v` is always within the type's range. */
export class GoInt {
  constructor(
    readonly type: IntType,
    readonly v: bigint,
  ) {}
  toString(): string {
    return this.v.toString();
  }
}

/** A time.Time (milliseconds since the epoch; shown in UTC). */
export class GoTime {
  constructor(readonly ms: number) {}
}

export type GoMap = Map<string, GoValue>;
export type GoValue = undefined | null | string | boolean | number | GoInt | GoValue[] | GoMap | GoTime;

const STRING_SLICE = Symbol('[]string');

/** A Go []string (what splitList, keys, sortAlpha... return). */
export function stringSlice(a: string[]): GoValue[] {
  const out: GoValue[] = [...a];
  (out as unknown as Record<symbol, boolean>)[STRING_SLICE] = true;
  return out;
}

export function isStringSlice(v: GoValue[]): boolean {
  return (v as unknown as Record<symbol, boolean>)[STRING_SLICE] === true;
}

export const isGoInt = (v: GoValue): v is GoInt => v instanceof GoInt;
export const isUnsigned = (t: IntType): boolean => t === 'uint64' || t === 'uint8';

/** Wrap to the type's range, as Go's conversions and arithmetic do. */
export function makeInt(type: IntType, v: bigint): GoInt {
  switch (type) {
    case 'int':
    case 'int64':
      return new GoInt(type, BigInt.asIntN(64, v));
    case 'int32':
      return new GoInt(type, BigInt.asIntN(32, v));
    case 'uint64':
      return new GoInt(type, BigInt.asUintN(64, v));
    case 'uint8':
      return new GoInt(type, BigInt.asUintN(8, v));
  }
}

export const goInt = (v: number | bigint): GoInt => makeInt('int', BigInt(v));
export const goInt64 = (v: number | bigint): GoInt => makeInt('int64', BigInt(v));

export type Kind = 'invalid' | 'nil' | 'bool' | 'int' | 'uint' | 'float' | 'string' | 'slice' | 'map' | 'struct';

export function kindOf(v: GoValue): Kind {
  if (v === undefined) return 'invalid';
  if (v === null) return 'nil';
  if (typeof v === 'string') return 'string';
  if (typeof v === 'boolean') return 'bool';
  if (typeof v === 'number') return 'float';
  if (v instanceof GoInt) return isUnsigned(v.type) ? 'uint' : 'int';
  if (Array.isArray(v)) return 'slice';
  if (v instanceof Map) return 'map';
  return 'struct';
}

/** Go's type name (%T; the "got X" of type errors). */
export function typeName(v: GoValue): string {
  if (v === undefined || v === null) return '<nil>';
  if (typeof v === 'string') return 'string';
  if (typeof v === 'boolean') return 'bool';
  if (typeof v === 'number') return 'float64';
  if (v instanceof GoInt) return v.type;
  if (Array.isArray(v)) return isStringSlice(v) ? '[]string' : '[]interface {}';
  if (v instanceof Map) return 'map[string]interface {}';
  return 'time.Time';
}

/** Go's template truth: false, 0, nil, and empty strings, slices and maps are false. */
export function isTrue(v: GoValue): boolean {
  if (v === undefined || v === null) return false;
  if (typeof v === 'string') return v.length > 0;
  if (typeof v === 'boolean') return v;
  if (typeof v === 'number') return v !== 0;
  if (v instanceof GoInt) return v.v !== 0n;
  if (Array.isArray(v)) return v.length > 0;
  if (v instanceof Map) return v.size > 0;
  return true; // structs are always true
}

/** Go's len of a string: its UTF-8 bytes. */
export function byteLength(s: string): number {
  return Buffer.byteLength(s, 'utf8');
}
