// The executor of Go's text/template (text/template/exec.go, Go 1.22) over the values of
// values.ts: pipelines and their final argument, variables ($x := and $x =, scoped to the end
// of their control; range's per-iteration variables), field chains on maps, if/else,
// with/else, range over lists, maps (in key order) and integers with break/continue,
// template/block, and Go's type checks of function arguments (a function taking an int
// refuses an int64; a missing value passed as a string is "invalid value; expected string").
// Pure: no clock, no randomness, no I/O (functions that need them get them from the caller).
import { nodeText, type ChainNode, type CommandNode, type FieldNode, type IdentifierNode, type ListNode, type Node, type NumberNode, type ParsedTemplate, type PipeNode, type VariableNode } from './parse.js';
import { formatV } from './fmt.js';
import { GoInt, GoTime, isTrue, makeInt, typeName, type GoMap, type GoValue } from './values.js';

/** The Go type of a function parameter: what an argument must be. `value` is reflect.Value
 *  (the builtins: anything, even no value); `any` is interface{}. */
export type ParamType = 'string' | 'int' | 'int64' | 'float64' | 'bool' | 'any' | 'value' | 'time' | 'map';

export interface FuncSpec {
  /** Parameter types; when `variadic`, the last one is the type of each extra argument. */
  params: ParamType[];
  variadic?: boolean;
  /** Throw FuncError (or any Error) to fail the call: "error calling NAME: message". */
  fn: (args: GoValue[], call: CallContext) => GoValue;
  /** Go's and/or: arguments evaluated lazily, the deciding one returned. */
  shortCircuit?: 'and' | 'or';
}

export interface CallContext {
  name: string;
  /** Template offset of the call. */
  pos: number;
  /** The source text of each argument as written (the last may be the piped value: "(piped)"). */
  argText: string[];
  /** The names of template values (top-level data keys) the arguments were computed from. */
  refs: string[];
}

/** A function's own failure: becomes "error calling NAME: message". */
export class FuncError extends Error {}

/** `fail` and `required`: the template refusing its values, with the message it gives. */
export class TemplateFail extends Error {}

/** An error while executing, at a template offset. */
export class TemplateExecError extends Error {
  constructor(
    message: string,
    readonly pos: number,
    /** What Go names in "executing ... at <NODE>". */
    readonly at: string,
    readonly kind: 'exec' | 'fail' | 'missing' | 'missingKey',
    /** For `missing`: the value's name; for `fail`: the template values involved; for `missingKey`: the key, then the map's keys. */
    readonly values: string[] = [],
    readonly funcName?: string,
  ) {
    super(message);
    this.name = 'TemplateExecError';
  }
}

/** Where a piece of output came from: output offset -> template offset (text is copied verbatim). */
export interface Segment {
  out: number;
  tpl: number;
  text: boolean;
}

export interface ExecOptions {
  funcs: ReadonlyMap<string, FuncSpec>;
  /**
   * A top-level key the template reads and the data lacks. `novalue` (Go's default): it is
   * "no value" (false in a condition, "<no value>" when printed). `error-on-use`: the same in
   * conditions and for untyped arguments (`if .X`, `default "a" .X`, `empty .X`), but printing
   * it or passing it where a string, number... is needed is an error naming it (kind
   * `missing`).
   */
  missingRoot?: 'novalue' | 'error-on-use';
  /** With `error-on-use`: the functions that may be given a missing value (those that test for one: default, empty...). */
  acceptsMissing?: ReadonlySet<string>;
  /**
   * A field a map lacks (Go's Option "missingkey"): `zero` (default) gives no value; `error`
   * stops with Go's "map has no entry for key" (kind `missingKey`: `values` holds the key, then
   * the keys the map has, for a did-you-mean). The index function is not affected, as in Go.
   */
  missingKey?: 'zero' | 'error';
  /** Stop past this many characters of output (default 64 Mi). */
  maxOutput?: number;
  /** Stop past this many steps (nodes and iterations; default 20 million). */
  maxSteps?: number;
}

const MAX_TEMPLATE_DEPTH = 1000;

/** What a pipeline read: the top-level values (refs), and the ones that were missing (name -> offset). */
interface Reads {
  refs: Set<string>;
  missing: Map<string, number>;
}

const noReads = (): Reads => ({ refs: new Set(), missing: new Map() });

interface Var {
  name: string;
  value: GoValue;
  reads: Reads;
}

const BREAK = Symbol('break');
const CONTINUE = Symbol('continue');

/** A marker for "no final argument" (Go's missingVal). */
const MISSING = Symbol('missing');
type Final = GoValue | typeof MISSING;

export function executeTemplate(tpl: ParsedTemplate, data: GoValue, opts: ExecOptions): { output: string; segments: Segment[] } {
  const s = new State(tpl, data, opts);
  s.vars.push({ name: '$', value: data, reads: noReads() });
  s.walk(data, tpl.root);
  return { output: s.out.join(''), segments: s.segments };
}

class State {
  readonly out: string[] = [];
  readonly segments: Segment[] = [];
  vars: Var[] = [];
  private outLen = 0;
  private steps = 0;
  private depth = 0;
  /** Collectors of the root keys read by the pipelines being evaluated (innermost last). */
  private readonly refStack: Reads[] = [];
  /** The values the enclosing if/with/range conditions were computed from (innermost last). */
  private readonly condRefs: Set<string>[] = [];
  private readonly maxOutput: number;
  private readonly maxSteps: number;

  constructor(
    private readonly tpl: ParsedTemplate,
    private readonly root: GoValue,
    private readonly opts: ExecOptions,
  ) {
    this.maxOutput = opts.maxOutput ?? 64 * 1024 * 1024;
    this.maxSteps = opts.maxSteps ?? 20_000_000;
  }

  private error(node: Node, message: string): never {
    throw new TemplateExecError(message, node.pos, nodeText(node), 'exec');
  }

  private step(node: Node): void {
    if (++this.steps > this.maxSteps) this.error(node, `the template ran for more than ${this.maxSteps} steps (an endless or huge range?)`);
  }

  private write(s: string, node: Node, text: boolean): void {
    if (s === '') return;
    this.segments.push({ out: this.outLen, tpl: node.pos, text });
    this.out.push(s);
    this.outLen += s.length;
    if (this.outLen > this.maxOutput) this.error(node, `the output is larger than ${this.maxOutput} characters`);
  }

  private addReads(r: Reads): void {
    const top = this.refStack[this.refStack.length - 1];
    if (!top) return;
    for (const x of r.refs) top.refs.add(x);
    for (const [k, v] of r.missing) if (!top.missing.has(k)) top.missing.set(k, v);
  }

  /** Evaluate with a fresh collector; returns the value and what it read. */
  private collecting<T>(f: () => T): { value: T; refs: Set<string>; reads: Reads } {
    const reads = noReads();
    this.refStack.push(reads);
    try {
      return { value: f(), refs: reads.refs, reads };
    } finally {
      this.refStack.pop();
      this.addReads(reads);
    }
  }

  /** A missing top-level value was used where a value is needed. */
  private checkMissing(value: GoValue, reads: Reads, node: Node): void {
    if (value !== undefined || this.opts.missingRoot !== 'error-on-use' || reads.missing.size === 0) return;
    const [name, pos] = [...reads.missing][0]!;
    throw new TemplateExecError(`no value named "${name}"`, pos, nodeText(node), 'missing', [name]);
  }

  walk(dot: GoValue, node: Node): void {
    this.step(node);
    switch (node.kind) {
      case 'action': {
        const { value, reads } = this.collecting(() => this.evalPipeline(dot, node.pipe));
        if (node.pipe.decl.length === 0) {
          this.checkMissing(value, reads, node);
          this.write(printable(value), node, false);
        }
        return;
      }
      case 'break':
        throw BREAK;
      case 'continue':
        throw CONTINUE;
      case 'if':
      case 'with':
        return this.walkIfOrWith(node.kind, dot, node.pipe, node.list, node.elseList);
      case 'list':
        for (const n of node.nodes) this.walk(dot, n);
        return;
      case 'range':
        return this.walkRange(dot, node.pipe, node.list, node.elseList);
      case 'template':
        return this.walkTemplate(dot, node.name, node.pipe, node);
      case 'text':
        this.write(node.text, node, true);
        return;
      default:
        this.error(node, `unknown node: ${nodeText(node)}`);
    }
  }

  private mark(): number {
    return this.vars.length;
  }

  private pop(mark: number): void {
    this.vars.length = mark;
  }

  private walkIfOrWith(kind: 'if' | 'with', dot: GoValue, pipe: PipeNode, list: ListNode, elseList?: ListNode): void {
    const mark = this.mark();
    try {
      const { value, refs } = this.collecting(() => this.evalPipeline(dot, pipe));
      this.condRefs.push(refs);
      try {
        if (isTrue(value)) {
          if (kind === 'with') this.walk(value, list);
          else this.walk(dot, list);
        } else if (elseList) this.walk(dot, elseList);
      } finally {
        this.condRefs.pop();
      }
    } finally {
      this.pop(mark);
    }
  }

  private walkRange(dot: GoValue, pipe: PipeNode, list: ListNode, elseList?: ListNode): void {
    const outer = this.mark();
    try {
      const { value: val, refs, reads } = this.collecting(() => this.evalPipeline(dot, pipe));
      const mark = this.mark();
      const one = (index: GoValue, elem: GoValue): boolean => {
        this.step(list);
        if (pipe.decl.length > 0) {
          if (pipe.isAssign) this.setVar(pipe.decl[0]!, pipe.decl.length > 1 ? index : elem, reads);
          else this.setTopVar(1, elem);
        }
        if (pipe.decl.length > 1) {
          if (pipe.isAssign) this.setVar(pipe.decl[1]!, elem, reads);
          else this.setTopVar(2, index);
        }
        try {
          this.walk(elem, list);
        } catch (e) {
          if (e === BREAK) return false;
          if (e !== CONTINUE) throw e;
        } finally {
          this.pop(mark);
        }
        return true;
      };
      this.condRefs.push(refs);
      try {
        if (Array.isArray(val)) {
          if (val.length > 0) {
            for (let i = 0; i < val.length; i++) if (!one(makeInt('int', BigInt(i)), val[i]!)) break;
            return;
          }
        } else if (val instanceof Map) {
          if (val.size > 0) {
            for (const k of [...val.keys()].sort(byBytes)) if (!one(k, val.get(k)!)) break;
            return;
          }
        } else if (val instanceof GoInt) {
          if (pipe.decl.length > 1) this.error(pipe, `can't use ${val.v} to iterate over more than one variable`);
          if (val.v > 0n) {
            for (let i = 0n; i < val.v; i++) {
              const v = makeInt(val.type, i);
              if (!one(v, v)) break;
            }
            return;
          }
        } else if (val !== undefined && val !== null) {
          this.error(pipe, `range can't iterate over ${formatV(val)}`);
        }
        if (elseList) this.walk(dot, elseList);
      } finally {
        this.condRefs.pop();
      }
    } finally {
      this.pop(outer);
    }
  }

  private walkTemplate(dot: GoValue, name: string, pipe: PipeNode | undefined, node: Node): void {
    const t = this.tpl.defines.get(name);
    if (!t) this.error(node, `template ${JSON.stringify(name)} not defined`);
    if (this.depth >= MAX_TEMPLATE_DEPTH) this.error(node, `exceeded maximum template depth (${MAX_TEMPLATE_DEPTH})`);
    const value = pipe ? this.collecting(() => this.evalPipeline(dot, pipe)).value : undefined;
    const saved = this.vars;
    this.vars = [{ name: '$', value, reads: noReads() }];
    this.depth++;
    try {
      this.walk(value, t);
    } finally {
      this.depth--;
      this.vars = saved;
    }
  }

  private setVar(v: VariableNode, value: GoValue, reads: Reads): void {
    const name = v.ident[0]!;
    for (let i = this.vars.length - 1; i >= 0; i--) {
      if (this.vars[i]!.name === name) {
        this.vars[i]!.value = value;
        this.vars[i]!.reads = copyReads(reads);
        return;
      }
    }
    this.error(v, `undefined variable: ${name}`);
  }

  private setTopVar(n: number, value: GoValue): void {
    this.vars[this.vars.length - n]!.value = value;
  }

  private varValue(v: VariableNode): GoValue {
    const name = v.ident[0]!;
    for (let i = this.vars.length - 1; i >= 0; i--) {
      const x = this.vars[i]!;
      if (x.name === name) {
        this.addReads(x.reads);
        return x.value;
      }
    }
    this.error(v, `undefined variable: ${name}`);
  }

  evalPipeline(dot: GoValue, pipe: PipeNode): GoValue {
    const { value, reads } = this.collecting(() => {
      let value: Final = MISSING;
      for (const cmd of pipe.cmds) {
        value = this.evalCommand(dot, cmd, value);
        // An interface holding nil is no value (Go digs into interface{} results).
        if (value === null) value = undefined;
      }
      return value === MISSING ? undefined : value;
    });
    for (const v of pipe.decl) {
      if (pipe.isAssign) this.setVar(v, value, reads);
      else this.vars.push({ name: v.ident[0]!, value, reads: copyReads(reads) });
    }
    return value;
  }

  private notAFunction(args: Node[], final: Final): void {
    if (args.length > 1 || final !== MISSING) this.error(args[0]!, `can't give argument to non-function ${nodeText(args[0]!)}`);
  }

  private evalCommand(dot: GoValue, cmd: CommandNode, final: Final): GoValue {
    const first = cmd.args[0]!;
    this.step(first);
    switch (first.kind) {
      case 'field':
        return this.evalFieldChain(dot, dot, first, first.ident, cmd.args, final);
      case 'chain':
        return this.evalChainNode(dot, first, cmd.args, final);
      case 'identifier':
        return this.evalFunction(dot, first, cmd.args, final);
      case 'pipe':
        this.notAFunction(cmd.args, final);
        return this.evalPipeline(dot, first);
      case 'variable':
        return this.evalVariableNode(dot, first, cmd.args, final);
    }
    this.notAFunction(cmd.args, final);
    switch (first.kind) {
      case 'bool':
        return first.value;
      case 'dot':
        return dot;
      case 'nil':
        this.error(first, 'nil is not a command');
      case 'number':
        return this.idealConstant(first);
      case 'string':
        return first.text;
    }
    this.error(first, `can't evaluate command ${JSON.stringify(nodeText(first))}`);
  }

  private idealConstant(n: NumberNode): GoValue {
    if (n.isFloat && !/^[+-]?0[xX]/.test(n.text) && !n.text.startsWith("'") && /[.eEpP]/.test(n.text)) return n.float64;
    if (n.isInt) return makeInt('int', n.int64);
    if (n.isUint) this.error(n, `${n.text} overflows int`);
    return undefined;
  }

  private evalVariableNode(dot: GoValue, v: VariableNode, args: Node[], final: Final): GoValue {
    const value = this.varValue(v);
    if (v.ident.length === 1) {
      this.notAFunction(args, final);
      return value;
    }
    return this.evalFieldChain(dot, value, v, v.ident.slice(1), args, final);
  }

  private evalChainNode(dot: GoValue, chain: ChainNode, args: Node[], final: Final): GoValue {
    if (chain.node.kind === 'nil') this.error(chain, `indirection through explicit nil in ${nodeText(chain)}`);
    const pipe = this.evalArg(dot, 'any', chain.node);
    return this.evalFieldChain(dot, pipe, chain, chain.field, args, final);
  }

  private evalFieldChain(dot: GoValue, receiver: GoValue, node: FieldNode | VariableNode | ChainNode, ident: string[], args: Node[], final: Final): GoValue {
    let r = receiver;
    for (let i = 0; i < ident.length - 1; i++) r = this.evalField(ident[i]!, node, [], MISSING, r);
    return this.evalField(ident[ident.length - 1]!, node, args, final, r);
  }

  private evalField(fieldName: string, node: Node, args: Node[], final: Final, receiver: GoValue): GoValue {
    if (receiver === undefined) return undefined; // Go: no value in, no value out (missingkey=default)
    if (receiver === null) this.error(node, `nil pointer evaluating interface {}.${fieldName}`);
    if (receiver instanceof Map) {
      const hasArgs = args.length > 1 || final !== MISSING;
      if (hasArgs) this.error(node, `${fieldName} is not a method but has arguments`);
      if (receiver === this.root) {
        const r = noReads();
        r.refs.add(fieldName);
        if (!receiver.has(fieldName)) r.missing.set(fieldName, node.pos);
        this.addReads(r);
      }
      if (!receiver.has(fieldName)) {
        if (this.opts.missingKey === 'error') throw new TemplateExecError(`map has no entry for key ${JSON.stringify(fieldName)}`, node.pos, nodeText(node), 'missingKey', [fieldName, ...receiver.keys()]);
        return undefined;
      }
      return (receiver as GoMap).get(fieldName);
    }
    this.error(node, `can't evaluate field ${fieldName} in type ${typeName(receiver)}`);
  }

  private evalFunction(dot: GoValue, node: IdentifierNode, args: Node[], final: Final): GoValue {
    const spec = this.opts.funcs.get(node.ident);
    if (!spec) this.error(node, `"${node.ident}" is not a defined function`);
    return this.evalCall(dot, spec, node, args, final);
  }

  private evalCall(dot: GoValue, spec: FuncSpec, node: IdentifierNode, allArgs: Node[], final: Final): GoValue {
    const name = node.ident;
    const args = allArgs.slice(1);
    const numIn = args.length + (final !== MISSING ? 1 : 0);
    const nparams = spec.params.length;
    let numFixed = args.length;
    if (spec.variadic) {
      numFixed = nparams - 1;
      if (numIn < numFixed) this.error(node, `wrong number of args for ${name}: want at least ${nparams - 1} got ${args.length}`);
    } else if (numIn !== nparams) {
      this.error(node, `wrong number of args for ${name}: want ${nparams} got ${numIn}`);
    }
    const { value } = this.collecting(() => {
      if (spec.shortCircuit) {
        let v: GoValue = undefined;
        for (const a of args) {
          v = this.evalArg(dot, 'value', a);
          if (isTrue(v) === (spec.shortCircuit === 'or')) return v;
        }
        if (final !== MISSING) v = final;
        return v;
      }
      const argv: GoValue[] = [];
      let i = 0;
      const tolerant = this.opts.acceptsMissing?.has(name) === true;
      for (; i < numFixed && i < args.length; i++) argv.push(this.evalArg(dot, spec.params[i]!, args[i]!, tolerant));
      if (spec.variadic) for (; i < args.length; i++) argv.push(this.evalArg(dot, spec.params[nparams - 1]!, args[i]!, tolerant));
      if (final !== MISSING) {
        let t = spec.params[nparams - 1]!;
        if (spec.variadic && numIn - 1 < numFixed) t = spec.params[numIn - 1]!;
        if (!tolerant || (t !== 'any' && t !== 'value' && t !== 'map')) this.checkMissing(final, this.refStack[this.refStack.length - 2] ?? noReads(), node);
        argv.push(this.validateType(final, t, node));
      }
      return this.call(spec, name, node, argv, args, final !== MISSING);
    });
    return value;
  }

  private call(spec: FuncSpec, name: string, node: IdentifierNode, argv: GoValue[], args: Node[], piped: boolean): GoValue {
    const top = this.refStack[this.refStack.length - 1];
    const ctx: CallContext = {
      name,
      pos: node.pos,
      argText: [...args.map(nodeText), ...(piped ? ['(piped)'] : [])],
      refs: [...(top?.refs ?? [])],
    };
    try {
      return spec.fn(argv, ctx);
    } catch (e) {
      if (e instanceof TemplateExecError) throw e;
      if (e instanceof TemplateFail) {
        const values = new Set<string>(ctx.refs);
        for (let i = this.condRefs.length - 1; i >= 0; i--) for (const r of this.condRefs[i]!) values.add(r);
        throw new TemplateExecError(e.message, node.pos, nodeText(node), 'fail', [...values], name);
      }
      const msg = e instanceof Error ? e.message : String(e);
      throw new TemplateExecError(`error calling ${name}: ${msg}`, node.pos, nodeText(node), 'exec', [], name);
    }
  }

  private evalArg(dot: GoValue, t: ParamType, n: Node, acceptsMissing = true): GoValue {
    const untyped = t === 'any' || t === 'value' || t === 'map';
    if (untyped && acceptsMissing) return this.evalArg1(dot, t, n);
    const { value, reads } = this.collecting(() => this.evalArg1(dot, 'value', n));
    this.checkMissing(value, reads, n);
    if (untyped) return this.evalArg1Typed(value, t, n, dot);
    this.checkMissing(value, reads, n);
    return this.evalArg1Typed(value, t, n, dot);
  }

  /** The typed check of an argument already evaluated as a value (constants are re-read for their type). */
  private evalArg1Typed(value: GoValue, t: ParamType, n: Node, dot: GoValue): GoValue {
    switch (n.kind) {
      case 'dot':
      case 'field':
      case 'variable':
      case 'pipe':
      case 'identifier':
      case 'chain':
        return this.validateType(value, t, n);
    }
    return this.evalArg1(dot, t, n);
  }

  private evalArg1(dot: GoValue, t: ParamType, n: Node): GoValue {
    switch (n.kind) {
      case 'dot':
        return this.validateType(dot, t, n);
      case 'nil':
        if (t === 'any' || t === 'map') return null;
        if (t === 'value') return undefined;
        this.error(n, `cannot assign nil to ${goType(t)}`);
      case 'field':
        return this.validateType(this.evalFieldChain(dot, dot, n, n.ident, [n], MISSING), t, n);
      case 'variable':
        return this.validateType(this.evalVariableNode(dot, n, [n], MISSING), t, n);
      case 'pipe':
        return this.validateType(this.evalPipeline(dot, n), t, n);
      case 'identifier': {
        const spec = this.opts.funcs.get(n.ident);
        if (!spec) this.error(n, `"${n.ident}" is not a defined function`);
        return this.validateType(this.evalCall(dot, spec, n, [n], MISSING), t, n);
      }
      case 'chain':
        return this.validateType(this.evalChainNode(dot, n, [], MISSING), t, n);
    }
    switch (t) {
      case 'bool':
        if (n.kind === 'bool') return n.value;
        this.error(n, `expected bool; found ${nodeText(n)}`);
      case 'float64':
        if (n.kind === 'number' && n.isFloat) return n.float64;
        this.error(n, `expected float; found ${nodeText(n)}`);
      case 'int':
      case 'int64':
        if (n.kind === 'number' && n.isInt) return makeInt(t, n.int64);
        this.error(n, `expected integer; found ${nodeText(n)}`);
      case 'string':
        if (n.kind === 'string') return n.text;
        this.error(n, `expected string; found ${nodeText(n)}`);
      case 'any':
      case 'value':
        if (n.kind === 'bool') return n.value;
        if (n.kind === 'number') return this.idealConstant(n);
        if (n.kind === 'string') return n.text;
        break;
    }
    this.error(n, `can't handle ${nodeText(n)} for arg of type ${goType(t)}`);
  }

  private validateType(v: GoValue, t: ParamType, n: Node): GoValue {
    if (v === undefined) {
      if (t === 'value') return undefined;
      if (t === 'any' || t === 'map') return null;
      this.error(n, `invalid value; expected ${goType(t)}`);
    }
    switch (t) {
      case 'value':
      case 'any':
        return v;
      case 'string':
        if (typeof v === 'string') return v;
        break;
      case 'int':
      case 'int64':
        if (v instanceof GoInt && v.type === t) return v;
        break;
      case 'float64':
        if (typeof v === 'number') return v;
        break;
      case 'bool':
        if (typeof v === 'boolean') return v;
        break;
      case 'time':
        if (v instanceof GoTime) return v;
        break;
      case 'map':
        if (v instanceof Map) return v;
        break;
    }
    this.error(n, `wrong type for value; expected ${goType(t)}; got ${v === null ? 'interface {}' : typeName(v)}`);
  }
}

function copyReads(r: Reads): Reads {
  return { refs: new Set(r.refs), missing: new Map(r.missing) };
}

/** The Go spelling of a parameter type, for messages. */
export function goType(t: ParamType): string {
  switch (t) {
    case 'any':
      return 'interface {}';
    case 'value':
      return 'reflect.Value';
    case 'time':
      return 'time.Time';
    case 'map':
      return 'map[string]interface {}';
    default:
      return t;
  }
}

/** What {{.}} prints: "<no value>" for no value, else %v. */
function printable(v: GoValue): string {
  if (v === undefined) return '<no value>';
  return formatV(v);
}

function byBytes(a: string, b: string): number {
  return Buffer.compare(Buffer.from(a, 'utf8'), Buffer.from(b, 'utf8'));
}
