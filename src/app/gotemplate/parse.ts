// The parser of Go's text/template (text/template/parse/parse.go, Go 1.22): the same tree
// (lists, text, actions, pipelines with declarations and assignments, commands, if/else
// if/else, range with break and continue, with/else with, define, template, block), the same
// checks (functions must exist, variables must be declared, {{break}} only inside {{range}})
// and the same messages. Pure.
import { describeItem, lex, type Item, type ItemType } from './lex.js';

export type Node =
  | ListNode
  | TextNode
  | ActionNode
  | PipeNode
  | CommandNode
  | IdentifierNode
  | VariableNode
  | DotNode
  | NilNode
  | FieldNode
  | ChainNode
  | BoolNode
  | NumberNode
  | StringNode
  | IfNode
  | RangeNode
  | WithNode
  | TemplateNode
  | BreakNode
  | ContinueNode;

export interface ListNode { kind: 'list'; pos: number; nodes: Node[] }
export interface TextNode { kind: 'text'; pos: number; text: string }
export interface ActionNode { kind: 'action'; pos: number; pipe: PipeNode }
export interface PipeNode { kind: 'pipe'; pos: number; isAssign: boolean; decl: VariableNode[]; cmds: CommandNode[] }
export interface CommandNode { kind: 'command'; pos: number; args: Node[] }
export interface IdentifierNode { kind: 'identifier'; pos: number; ident: string }
/** `$x` or `$x.Field.Other`: ident[0] is the variable. */
export interface VariableNode { kind: 'variable'; pos: number; ident: string[] }
export interface DotNode { kind: 'dot'; pos: number }
export interface NilNode { kind: 'nil'; pos: number }
/** `.Field.Other`. */
export interface FieldNode { kind: 'field'; pos: number; ident: string[] }
/** `(pipeline).Field`. */
export interface ChainNode { kind: 'chain'; pos: number; node: Node; field: string[] }
export interface BoolNode { kind: 'bool'; pos: number; value: boolean }
export interface NumberNode {
  kind: 'number';
  pos: number;
  text: string;
  isInt: boolean;
  isUint: boolean;
  isFloat: boolean;
  int64: bigint;
  uint64: bigint;
  float64: number;
}
export interface StringNode { kind: 'string'; pos: number; quoted: string; text: string }
export interface BranchNode { pos: number; pipe: PipeNode; list: ListNode; elseList?: ListNode }
export interface IfNode extends BranchNode { kind: 'if' }
export interface RangeNode extends BranchNode { kind: 'range' }
export interface WithNode extends BranchNode { kind: 'with' }
export interface TemplateNode { kind: 'template'; pos: number; name: string; pipe?: PipeNode }
export interface BreakNode { kind: 'break'; pos: number }
export interface ContinueNode { kind: 'continue'; pos: number }

/** A parse error at a template offset. */
export class TemplateSyntaxError extends Error {
  constructor(
    message: string,
    readonly pos: number,
  ) {
    super(message);
    this.name = 'TemplateSyntaxError';
  }
}

/** The parsed template set: the main tree and every {{define}}d or {{block}} template. */
export interface ParsedTemplate {
  root: ListNode;
  defines: Map<string, ListNode>;
}

interface EndNode { kind: 'end'; pos: number }
interface ElseNode { kind: 'else'; pos: number }
type ParsedNode = Node | EndNode | ElseNode;

const MAX_DEPTH = 1000;

/**
 * Parse `text`. `hasFunction` tells which function names exist (Go refuses unknown
 * functions at parse time); `didYouMean` is added to that message.
 */
export function parseTemplate(text: string, hasFunction: (name: string) => boolean, suggest?: (name: string) => string): ParsedTemplate {
  const items = lex(text);
  const defines = new Map<string, ListNode>();
  const p = new Parser(items, hasFunction, suggest ?? (() => ''), defines);
  const root = p.parseRoot();
  return { root, defines };
}

class Parser {
  private i = 0;
  private vars: string[] = ['$'];
  private rangeDepth = 0;
  private depth = 0;

  constructor(
    private readonly items: Item[],
    private readonly hasFunction: (name: string) => boolean,
    private readonly suggest: (name: string) => string,
    private readonly defines: Map<string, ListNode>,
  ) {}

  private errorAt(pos: number, message: string): never {
    throw new TemplateSyntaxError(message, pos);
  }

  private next(): Item {
    const it = this.items[this.i] ?? this.items[this.items.length - 1]!;
    if (this.i < this.items.length) this.i++;
    if (it.type === 'error') this.errorAt(it.pos, it.val);
    return it;
  }

  private backup(n = 1): void {
    this.i -= n;
  }

  private peek(): Item {
    const it = this.next();
    this.backup();
    return it;
  }

  private nextNonSpace(): Item {
    let it: Item;
    do it = this.next();
    while (it.type === 'space');
    return it;
  }

  /** Like Go's peekNonSpace: the spaces before the next item are consumed, the item is not. */
  private peekNonSpace(): Item {
    const it = this.nextNonSpace();
    this.backup();
    return it;
  }

  private expect(type: ItemType, context: string): Item {
    const it = this.nextNonSpace();
    if (it.type !== type) this.unexpected(it, context);
    return it;
  }

  private unexpected(it: Item, context: string): never {
    this.errorAt(it.pos, `unexpected ${describeItem(it)} in ${context}`);
  }

  parseRoot(): ListNode {
    const root: ListNode = { kind: 'list', pos: this.peek().pos, nodes: [] };
    while (this.peek().type !== 'eof') {
      if (this.peek().type === 'leftDelim') {
        const save = this.i;
        this.next();
        if (this.nextNonSpace().type === 'define') {
          this.parseDefinition();
          continue;
        }
        this.i = save;
      }
      const n = this.textOrAction();
      if (n.kind === 'end' || n.kind === 'else') this.errorAt(n.pos, `unexpected {{${n.kind}}}`);
      root.nodes.push(n);
    }
    return root;
  }

  private parseDefinition(): void {
    const context = 'define clause';
    const nameItem = this.nextNonSpace();
    const name = this.templateName(nameItem, context);
    this.expect('rightDelim', context);
    const saved = this.vars;
    this.vars = ['$'];
    const { list, next } = this.itemList();
    this.vars = saved;
    if (next.kind !== 'end') this.errorAt(next.pos, `unexpected {{${next.kind}}} in ${context}`);
    this.addDefinition(name, list, nameItem.pos);
  }

  private addDefinition(name: string, list: ListNode, pos: number): void {
    const old = this.defines.get(name);
    if (old && !isEmptyTree(old) && !isEmptyTree(list)) this.errorAt(pos, `template: multiple definition of template "${name}"`);
    if (!old || !isEmptyTree(list)) this.defines.set(name, list);
  }

  private templateName(it: Item, context: string): string {
    if (it.type === 'string' || it.type === 'rawString') return unquote(it);
    this.unexpected(it, context);
  }

  private itemList(): { list: ListNode; next: EndNode | ElseNode } {
    const list: ListNode = { kind: 'list', pos: this.peekNonSpace().pos, nodes: [] };
    while (this.peekNonSpace().type !== 'eof') {
      const n = this.textOrAction();
      if (n.kind === 'end' || n.kind === 'else') return { list, next: n };
      list.nodes.push(n);
    }
    this.errorAt(this.peekNonSpace().pos, 'unexpected EOF');
  }

  private textOrAction(): ParsedNode {
    const it = this.nextNonSpace();
    if (it.type === 'text') return { kind: 'text', pos: it.pos, text: it.val };
    if (it.type === 'leftDelim') {
      if (++this.depth > MAX_DEPTH) this.errorAt(it.pos, `template nests more than ${MAX_DEPTH} levels deep`);
      try {
        return this.action();
      } finally {
        this.depth--;
      }
    }
    this.unexpected(it, 'input');
  }

  private action(): ParsedNode {
    const it = this.nextNonSpace();
    switch (it.type) {
      case 'block':
        return this.blockControl();
      case 'break':
      case 'continue': {
        const t = this.nextNonSpace();
        if (t.type !== 'rightDelim') this.unexpected(t, `{{${it.type}}}`);
        if (this.rangeDepth === 0) this.errorAt(it.pos, `{{${it.type}}} outside {{range}}`);
        return { kind: it.type, pos: it.pos };
      }
      case 'else': {
        const peek = this.peekNonSpace();
        // "{{else if ...}}" and "{{else with ...}}" are "{{else}}{{if ...}}...{{end}}": the
        // "if"/"with" is left for parseControl.
        if (peek.type === 'if' || peek.type === 'with') return { kind: 'else', pos: it.pos };
        this.expect('rightDelim', 'else');
        return { kind: 'else', pos: it.pos };
      }
      case 'end':
        this.expect('rightDelim', 'end');
        return { kind: 'end', pos: it.pos };
      case 'if':
        return this.control('if');
      case 'range':
        return this.control('range');
      case 'with':
        return this.control('with');
      case 'template':
        return this.templateControl();
    }
    this.backup();
    const start = this.peek();
    // Variables declared here persist until the "end" of the enclosing control.
    return { kind: 'action', pos: start.pos, pipe: this.pipeline('command', 'rightDelim') };
  }

  private control(context: 'if' | 'range' | 'with'): IfNode | RangeNode | WithNode {
    const mark = this.vars.length;
    try {
      const pipe = this.pipeline(context, 'rightDelim');
      if (context === 'range') this.rangeDepth++;
      let r: { list: ListNode; next: EndNode | ElseNode };
      try {
        r = this.itemList();
      } finally {
        if (context === 'range') this.rangeDepth--;
      }
      let elseList: ListNode | undefined;
      if (r.next.kind === 'else') {
        const at = r.next.pos;
        if (context === 'if' && this.peek().type === 'if') {
          this.next();
          elseList = { kind: 'list', pos: at, nodes: [this.control('if')] };
        } else if (context === 'with' && this.peek().type === 'with') {
          this.next();
          elseList = { kind: 'list', pos: at, nodes: [this.control('with')] };
        } else {
          const e = this.itemList();
          if (e.next.kind !== 'end') this.errorAt(e.next.pos, 'expected end; found {{else}}');
          elseList = e.list;
        }
      }
      return { kind: context, pos: pipe.pos, pipe, list: r.list, ...(elseList ? { elseList } : {}) } as IfNode | RangeNode | WithNode;
    } finally {
      this.vars.length = mark;
    }
  }

  private templateControl(): TemplateNode {
    const context = 'template clause';
    const it = this.nextNonSpace();
    const name = this.templateName(it, context);
    let pipe: PipeNode | undefined;
    if (this.nextNonSpace().type !== 'rightDelim') {
      this.backup();
      pipe = this.pipeline(context, 'rightDelim');
    }
    return { kind: 'template', pos: it.pos, name, ...(pipe ? { pipe } : {}) };
  }

  private blockControl(): TemplateNode {
    const context = 'block clause';
    const it = this.nextNonSpace();
    const name = this.templateName(it, context);
    const pipe = this.pipeline(context, 'rightDelim');
    const saved = this.vars;
    const savedRange = this.rangeDepth;
    this.vars = ['$'];
    this.rangeDepth = 0;
    const { list, next } = this.itemList();
    this.vars = saved;
    this.rangeDepth = savedRange;
    if (next.kind !== 'end') this.errorAt(next.pos, `unexpected {{${next.kind}}} in ${context}`);
    this.addDefinition(name, list, it.pos);
    return { kind: 'template', pos: it.pos, name, pipe };
  }

  private pipeline(context: string, end: 'rightDelim' | 'rightParen'): PipeNode {
    const first = this.peekNonSpace();
    const pipe: PipeNode = { kind: 'pipe', pos: first.pos, isAssign: false, decl: [], cmds: [] };
    // Declarations or assignments: $x := ..., $x = ..., range $i, $v := ...
    for (;;) {
      const v = this.peekNonSpace();
      if (v.type !== 'variable') break;
      const save = this.i;
      this.nextNonSpace();
      const next = this.peekNonSpace();
      if (next.type === 'assign' || next.type === 'declare') {
        pipe.isAssign = next.type === 'assign';
        this.nextNonSpace();
        pipe.decl.push(variableNode(v));
        this.vars.push(v.val);
        break;
      }
      if (next.type === 'char' && next.val === ',') {
        this.nextNonSpace();
        pipe.decl.push(variableNode(v));
        this.vars.push(v.val);
        if (context === 'range' && pipe.decl.length < 2) {
          const t = this.peekNonSpace().type;
          if (t === 'variable' || t === 'rightDelim' || t === 'rightParen') continue;
          this.errorAt(next.pos, 'range can only initialize variables');
        }
        this.errorAt(next.pos, `too many declarations in ${context}`);
      }
      this.i = save;
      break;
    }
    for (;;) {
      const it = this.nextNonSpace();
      if (it.type === end) {
        this.checkPipeline(pipe, context, it);
        return pipe;
      }
      switch (it.type) {
        case 'bool':
        case 'charConstant':
        case 'complex':
        case 'dot':
        case 'field':
        case 'identifier':
        case 'number':
        case 'nil':
        case 'rawString':
        case 'string':
        case 'variable':
        case 'leftParen':
          this.backup();
          pipe.cmds.push(this.command());
          break;
        default:
          this.unexpected(it, context);
      }
    }
  }

  private checkPipeline(pipe: PipeNode, context: string, endItem: Item): void {
    if (pipe.cmds.length === 0) this.errorAt(endItem.pos, `missing value for ${context}`);
    pipe.cmds.slice(1).forEach((c, i) => {
      const k = c.args[0]!.kind;
      if (k === 'bool' || k === 'dot' || k === 'nil' || k === 'number' || k === 'string') {
        this.errorAt(c.pos, `non executable command in pipeline stage ${i + 2}`);
      }
    });
  }

  private command(): CommandNode {
    const cmd: CommandNode = { kind: 'command', pos: this.peekNonSpace().pos, args: [] };
    for (;;) {
      this.peekNonSpace();
      const operand = this.operand();
      if (operand) cmd.args.push(operand);
      const it = this.next();
      if (it.type === 'space') continue;
      if (it.type === 'rightDelim' || it.type === 'rightParen') this.backup();
      else if (it.type !== 'pipe') this.unexpected(it, 'operand');
      break;
    }
    if (cmd.args.length === 0) this.errorAt(cmd.pos, 'empty command');
    return cmd;
  }

  private operand(): Node | undefined {
    const node = this.term();
    if (!node) return undefined;
    if (this.peek().type !== 'field') return node;
    const fields: string[] = [];
    const at = this.peek().pos;
    while (this.peek().type === 'field') fields.push(...this.next().val.slice(1).split('.'));
    switch (node.kind) {
      case 'field':
        return { kind: 'field', pos: node.pos, ident: [...node.ident, ...fields] };
      case 'variable':
        return { kind: 'variable', pos: node.pos, ident: [...node.ident, ...fields] };
      case 'bool':
      case 'string':
      case 'number':
      case 'nil':
      case 'dot':
        this.errorAt(at, `unexpected . after term ${JSON.stringify(nodeText(node))}`);
      default:
        return { kind: 'chain', pos: node.pos, node, field: fields };
    }
  }

  private term(): Node | undefined {
    const it = this.nextNonSpace();
    switch (it.type) {
      case 'identifier':
        if (!this.hasFunction(it.val)) this.errorAt(it.pos, `function "${it.val}" not defined${this.suggest(it.val)}`);
        return { kind: 'identifier', pos: it.pos, ident: it.val };
      case 'dot':
        return { kind: 'dot', pos: it.pos };
      case 'nil':
        return { kind: 'nil', pos: it.pos };
      case 'variable': {
        const v = variableNode(it);
        if (!this.vars.includes(v.ident[0]!)) this.errorAt(it.pos, `undefined variable "${v.ident[0]}"`);
        return v;
      }
      case 'field':
        return { kind: 'field', pos: it.pos, ident: it.val.slice(1).split('.') };
      case 'bool':
        return { kind: 'bool', pos: it.pos, value: it.val === 'true' };
      case 'charConstant':
      case 'number':
        return numberNode(it, (m) => this.errorAt(it.pos, m));
      case 'complex':
        this.errorAt(it.pos, `complex numbers are not supported: ${it.val}`);
      case 'leftParen':
        return this.pipeline('parenthesized pipeline', 'rightParen');
      case 'string':
      case 'rawString':
        return { kind: 'string', pos: it.pos, quoted: it.val, text: unquoteOrFail(it, (m) => this.errorAt(it.pos, m)) };
    }
    this.backup();
    return undefined;
  }
}

function variableNode(it: Item): VariableNode {
  return { kind: 'variable', pos: it.pos, ident: it.val.split('.') };
}

function isEmptyTree(l: ListNode): boolean {
  return l.nodes.every((n) => n.kind === 'text' && n.text.trim() === '');
}

function unquote(it: Item): string {
  return unquoteOrFail(it, (m) => {
    throw new TemplateSyntaxError(m, it.pos);
  });
}

function unquoteOrFail(it: Item, fail: (m: string) => never): string {
  if (it.type === 'rawString') return it.val.slice(1, -1);
  const r = unquoteGo(it.val.slice(1, -1), '"');
  if (r === undefined) fail(`invalid syntax in string ${it.val}`);
  return r;
}

/** The body of a Go "..." or '...' literal, with its escapes; undefined when invalid. */
export function unquoteGo(body: string, quote: '"' | "'"): string | undefined {
  let out = '';
  for (let i = 0; i < body.length; i++) {
    const c = body[i]!;
    if (c === quote) return undefined;
    if (c !== '\\') {
      out += c;
      continue;
    }
    const e = body[++i];
    const simple: Record<string, string> = { a: '\x07', b: '\b', f: '\f', n: '\n', r: '\r', t: '\t', v: '\v', '\\': '\\' };
    if (e === undefined) return undefined;
    if (Object.hasOwn(simple, e)) out += simple[e];
    else if (e === quote) out += e;
    else if (e === 'x' || e === 'u' || e === 'U') {
      const n = e === 'x' ? 2 : e === 'u' ? 4 : 8;
      const hex = body.slice(i + 1, i + 1 + n);
      if (!new RegExp(`^[0-9a-fA-F]{${n}}$`).test(hex)) return undefined;
      const v = parseInt(hex, 16);
      if (e === 'x') out += String.fromCharCode(v); // a byte; Go would keep it raw
      else {
        if (v > 0x10ffff || (v >= 0xd800 && v <= 0xdfff)) return undefined;
        out += String.fromCodePoint(v);
      }
      i += n;
    } else if (e >= '0' && e <= '7') {
      const oct = body.slice(i, i + 3);
      if (!/^[0-7]{3}$/.test(oct)) return undefined;
      const v = parseInt(oct, 8);
      if (v > 255) return undefined;
      out += String.fromCharCode(v);
      i += 2;
    } else return undefined;
  }
  return out;
}

/** Go's parse.newNumber: which of int64, uint64 and float64 the literal fits. */
function numberNode(it: Item, fail: (m: string) => never): NumberNode {
  const n: NumberNode = { kind: 'number', pos: it.pos, text: it.val, isInt: false, isUint: false, isFloat: false, int64: 0n, uint64: 0n, float64: 0 };
  if (it.type === 'charConstant') {
    const body = it.val.slice(1, -1);
    const s = unquoteGo(body, "'");
    const cps = s === undefined ? [] : [...s];
    if (cps.length !== 1) fail(`malformed character constant: ${it.val}`);
    const cp = cps[0]!.codePointAt(0)!;
    n.int64 = BigInt(cp);
    n.uint64 = BigInt(cp);
    n.float64 = cp;
    n.isInt = n.isUint = n.isFloat = true;
    return n;
  }
  const text = it.val;
  if (text.endsWith('i')) fail(`complex numbers are not supported: ${text}`);
  const big = parseGoInt(text);
  if (big !== undefined) {
    if (big >= 0n && big < 1n << 64n) {
      n.isUint = true;
      n.uint64 = big;
    }
    if (big >= -(1n << 63n) && big < 1n << 63n) {
      n.isInt = true;
      n.int64 = big;
    }
  }
  if (n.isInt) {
    n.isFloat = true;
    n.float64 = Number(n.int64);
  } else if (n.isUint) {
    n.isFloat = true;
    n.float64 = Number(n.uint64);
  } else {
    const f = parseGoFloat(text);
    if (f !== undefined) {
      if (!/[.eEpP]/.test(text)) fail(`integer overflow: ${JSON.stringify(text)}`);
      n.isFloat = true;
      n.float64 = f;
      if (Number.isInteger(f) && Math.abs(f) < 2 ** 63) {
        n.isInt = true;
        n.int64 = BigInt(f);
      }
      if (Number.isInteger(f) && f >= 0 && f < 2 ** 64) {
        n.isUint = true;
        n.uint64 = BigInt(f);
      }
    }
  }
  if (!n.isInt && !n.isUint && !n.isFloat) fail(`illegal number syntax: ${JSON.stringify(text)}`);
  return n;
}

/** strconv.ParseInt(text, 0, ...) without the range check: sign, 0x/0o/0b/0 prefixes, underscores. */
export function parseGoInt(text: string): bigint | undefined {
  const m = /^([+-]?)(0[xX][0-9a-fA-F_]+|0[oO][0-7_]+|0[bB][01_]+|0[0-7_]*|[1-9][0-9_]*)$/.exec(text);
  if (!m) return undefined;
  let body = m[2]!;
  if (body.includes('_')) {
    // Underscores only between digits (or after a base prefix).
    if (!/^(0[xXoObB]_?)?[0-9a-fA-F]+(_[0-9a-fA-F]+)*$/.test(body) && !/^0_?[0-7]+(_[0-7]+)*$/.test(body)) return undefined;
    body = body.replace(/_/g, '');
  }
  let v: bigint;
  if (/^0[xX]/.test(body)) v = BigInt(`0x${body.slice(2)}`);
  else if (/^0[oO]/.test(body)) v = BigInt(`0o${body.slice(2)}`);
  else if (/^0[bB]/.test(body)) v = BigInt(`0b${body.slice(2)}`);
  else if (body.length > 1 && body.startsWith('0')) v = BigInt(`0o${body.slice(1)}`);
  else v = BigInt(body);
  return m[1] === '-' ? -v : v;
}

function parseGoFloat(text: string): number | undefined {
  let t = text;
  if (t.includes('_')) t = t.replace(/_/g, '');
  if (/^[+-]?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][+-]?[0-9]+)?$/.test(t)) return Number(t);
  if (/^[+-]?0[xX]([0-9a-fA-F]+\.?[0-9a-fA-F]*|\.[0-9a-fA-F]+)[pP][+-]?[0-9]+$/.test(t)) {
    const m = /^([+-]?)0[xX]([0-9a-fA-F]*)\.?([0-9a-fA-F]*)[pP]([+-]?[0-9]+)$/.exec(t)!;
    const mant = parseInt(m[2]! + m[3]! || '0', 16) / 16 ** m[3]!.length;
    const v = mant * 2 ** Number(m[4]);
    return m[1] === '-' ? -v : v;
  }
  return undefined;
}

/** The source form of a node, as Go's Node.String() writes it (for messages). */
export function nodeText(n: Node): string {
  switch (n.kind) {
    case 'list':
      return n.nodes.map(nodeText).join('');
    case 'text':
      return n.text;
    case 'action':
      return `{{${nodeText(n.pipe)}}}`;
    case 'pipe': {
      let s = '';
      if (n.decl.length > 0) s = `${n.decl.map(nodeText).join(', ')} ${n.isAssign ? '=' : ':='} `;
      return s + n.cmds.map(nodeText).join(' | ');
    }
    case 'command':
      return n.args.map((a) => (a.kind === 'pipe' ? `(${nodeText(a)})` : nodeText(a))).join(' ');
    case 'identifier':
      return n.ident;
    case 'variable':
      return n.ident.join('.');
    case 'dot':
      return '.';
    case 'nil':
      return 'nil';
    case 'field':
      return `.${n.ident.join('.')}`;
    case 'chain':
      return `${n.node.kind === 'pipe' ? `(${nodeText(n.node)})` : nodeText(n.node)}.${n.field.join('.')}`;
    case 'bool':
      return String(n.value);
    case 'number':
      return n.text;
    case 'string':
      return n.quoted;
    case 'if':
    case 'range':
    case 'with':
      return `{{${n.kind} ${nodeText(n.pipe)}}}${nodeText(n.list)}${n.elseList ? `{{else}}${nodeText(n.elseList)}` : ''}{{end}}`;
    case 'template':
      return `{{template ${JSON.stringify(n.name)}${n.pipe ? ` ${nodeText(n.pipe)}` : ''}}}`;
    case 'break':
      return '{{break}}';
    case 'continue':
      return '{{continue}}';
  }
}
