// Node constraints of a job, matched against node labels (Kubernetes' label selector forms):
//   k=v  (also k==v)   the label k is v
//   k!=v               the label k is not v (a node without k matches)
//   k in (a, b)        the label k is one of the values
//   k notin (a, b)     the label k is none of them (a node without k matches)
//   k                  the node has the label k
//   !k                 the node does not have the label k
import { WarrenError, EXIT } from '../../common/index.js';

export type Constraint =
  | { text: string; key: string; op: 'eq' | 'ne'; value: string }
  | { text: string; key: string; op: 'in' | 'notin'; values: readonly string[] }
  | { text: string; key: string; op: 'exists' | 'absent' };

const KEY = /^[A-Za-z0-9_][A-Za-z0-9_./-]*$/;
const VALUE = /^[A-Za-z0-9_.:/+-]*$/;

function bad(text: string, why: string): WarrenError {
  return new WarrenError('PLAN_BAD_CONSTRAINT', `constraint "${text}": ${why}`, {
    hint: 'write k=v, k!=v, "k in (a, b)", "k notin (a, b)", k (label present) or !k (label absent); keys and values are letters, digits and . _ - / (values also : +)',
  });
}

/** Parse one constraint; throws PLAN_BAD_CONSTRAINT when it cannot be read. */
export function parseConstraint(text: string): Constraint {
  const t = text.trim();
  const set = /^(\S+)\s+(in|notin)\s*\((.*)\)$/.exec(t);
  if (set) {
    const key = set[1]!;
    if (!KEY.test(key)) throw bad(text, `"${key}" is not a label key`);
    const values = set[3]!.split(',').map((v) => v.trim());
    if (values.length === 0 || values.some((v) => v === '' || !VALUE.test(v))) throw bad(text, 'the list needs one or more values separated by commas');
    return { text: t, key, op: set[2] === 'in' ? 'in' : 'notin', values: [...new Set(values)].sort() };
  }
  const eq = /^([^!=\s]+)\s*(==|=|!=)\s*(.*)$/.exec(t);
  if (eq) {
    const key = eq[1]!;
    const value = eq[3]!.trim();
    if (!KEY.test(key)) throw bad(text, `"${key}" is not a label key`);
    if (!VALUE.test(value)) throw bad(text, `"${value}" is not a label value`);
    return { text: t, key, op: eq[2] === '!=' ? 'ne' : 'eq', value };
  }
  if (t.startsWith('!') && KEY.test(t.slice(1))) return { text: t, key: t.slice(1), op: 'absent' };
  if (KEY.test(t)) return { text: t, key: t, op: 'exists' };
  throw bad(text, t === '' ? 'it is empty' : 'it is not of a known form');
}

/** Does a node with these labels satisfy the constraint? */
export function constraintHolds(c: Constraint, labels: Readonly<Record<string, string>>): boolean {
  const has = Object.prototype.hasOwnProperty.call(labels, c.key);
  const v = has ? labels[c.key] : undefined;
  switch (c.op) {
    case 'eq':
      return v === c.value;
    case 'ne':
      return v !== c.value;
    case 'in':
      return v !== undefined && c.values.includes(v);
    case 'notin':
      return v === undefined || !c.values.includes(v);
    case 'exists':
      return has;
    case 'absent':
      return !has;
  }
}
