// The lexer of Go's text/template, following Go's text/template/parse/lex.go (Go 1.22):
// the same items, the same rules for trim markers ("{{- " and " -}}"), comments, spaces and
// newlines inside actions, numbers, strings and raw strings, and the same error messages.
// Pure. Positions are character offsets into the template text.

export type ItemType =
  | 'error'
  | 'bool'
  | 'char'
  | 'charConstant'
  | 'comment'
  | 'complex'
  | 'assign'
  | 'declare'
  | 'eof'
  | 'field'
  | 'identifier'
  | 'leftDelim'
  | 'leftParen'
  | 'number'
  | 'pipe'
  | 'rawString'
  | 'rightDelim'
  | 'rightParen'
  | 'space'
  | 'string'
  | 'text'
  | 'variable'
  // keywords
  | 'block'
  | 'break'
  | 'continue'
  | 'dot'
  | 'define'
  | 'else'
  | 'end'
  | 'if'
  | 'nil'
  | 'range'
  | 'template'
  | 'with';

export interface Item {
  type: ItemType;
  /** The item's text (the message for an error item). */
  val: string;
  /** Offset of its first character in the template. */
  pos: number;
}

const KEYWORDS: Record<string, ItemType> = Object.assign(Object.create(null) as Record<string, ItemType>, {
  '.': 'dot',
  block: 'block',
  break: 'break',
  continue: 'continue',
  define: 'define',
  else: 'else',
  end: 'end',
  if: 'if',
  range: 'range',
  nil: 'nil',
  template: 'template',
  with: 'with',
});

export function isKeyword(t: ItemType): boolean {
  return ['block', 'break', 'continue', 'dot', 'define', 'else', 'end', 'if', 'nil', 'range', 'template', 'with'].includes(t);
}

/** How an item is named in a parse error (Go's item.String). */
export function describeItem(i: Item): string {
  if (i.type === 'eof') return 'EOF';
  if (i.type === 'error') return i.val;
  if (isKeyword(i.type)) return `<${i.val}>`;
  if (i.val.length > 10) return `${JSON.stringify(i.val.slice(0, 10))}...`;
  return JSON.stringify(i.val);
}

const LEFT = '{{';
const RIGHT = '}}';
const LEFT_COMMENT = '/*';
const RIGHT_COMMENT = '*/';
const TRIM_LEN = 2; // "- " or " -"

const isSpace = (c: string | undefined): boolean => c === ' ' || c === '\t' || c === '\r' || c === '\n';
const isAlphaNumeric = (c: string | undefined): boolean => c !== undefined && (c === '_' || /^[\p{L}\p{Nd}]$/u.test(c));
const hasLeftTrimMarker = (s: string, at: number): boolean => s[at] === '-' && isSpace(s[at + 1]);
const hasRightTrimMarker = (s: string, at: number): boolean => isSpace(s[at]) && s[at + 1] === '-';

/** Lex the whole template; the last item is `eof` or `error`. */
export function lex(input: string): Item[] {
  return new Lexer(input).run();
}

type State = (() => State) | null;

class Lexer {
  private start = 0;
  private pos = 0;
  private parenDepth = 0;
  /** Where the action being lexed starts (its "{{"), for "unclosed action". */
  private actionStart = 0;
  private readonly items: Item[] = [];

  constructor(private readonly input: string) {}

  run(): Item[] {
    let state: State = this.lexText;
    while (state) state = state.call(this);
    return this.items;
  }

  /** The next character (a whole code point), or undefined at the end. */
  private next(): string | undefined {
    if (this.pos >= this.input.length) {
      this.pos = this.input.length + 1; // so that backup() works at EOF
      return undefined;
    }
    const cp = this.input.codePointAt(this.pos)!;
    const c = String.fromCodePoint(cp);
    this.pos += c.length;
    return c;
  }

  private lastWidth(): number {
    if (this.pos > this.input.length) return 1;
    const prev = this.input.charCodeAt(this.pos - 1);
    return prev >= 0xdc00 && prev <= 0xdfff && this.pos >= 2 ? 2 : 1;
  }

  private backup(): void {
    if (this.pos > this.input.length) this.pos = this.input.length;
    else this.pos -= this.lastWidth();
  }

  private peek(): string | undefined {
    const c = this.next();
    this.backup();
    return c;
  }

  private emit(type: ItemType): State {
    this.items.push({ type, val: this.input.slice(this.start, this.pos), pos: this.start });
    this.start = this.pos;
    return null;
  }

  private emitThen(type: ItemType, then: State): State {
    this.emit(type);
    return then;
  }

  private ignore(): void {
    this.start = this.pos;
  }

  private accept(valid: string): boolean {
    const c = this.next();
    if (c !== undefined && valid.includes(c)) return true;
    this.backup();
    return false;
  }

  private acceptRun(valid: string): void {
    for (;;) {
      const c = this.next();
      if (c === undefined || !valid.includes(c)) break;
    }
    this.backup();
  }

  private errorf(message: string): State {
    this.items.push({ type: 'error', val: message, pos: this.start });
    return null;
  }

  private lexText(): State {
    const x = this.input.indexOf(LEFT, this.pos);
    if (x >= 0) {
      if (x > this.pos) {
        this.pos = x;
        let trim = 0;
        if (hasLeftTrimMarker(this.input, x + LEFT.length)) {
          const t = this.input.slice(this.start, this.pos);
          trim = t.length - t.replace(/[ \t\r\n]+$/, '').length;
        }
        this.pos -= trim;
        if (this.pos > this.start) this.items.push({ type: 'text', val: this.input.slice(this.start, this.pos), pos: this.start });
        this.pos += trim;
        this.ignore();
      }
      return this.lexLeftDelim;
    }
    this.pos = this.input.length;
    if (this.pos > this.start) this.emit('text');
    this.emit('eof');
    return null;
  }

  private atRightDelim(): { delim: boolean; trim: boolean } {
    if (hasRightTrimMarker(this.input, this.pos) && this.input.startsWith(RIGHT, this.pos + TRIM_LEN)) return { delim: true, trim: true };
    if (this.input.startsWith(RIGHT, this.pos)) return { delim: true, trim: false };
    return { delim: false, trim: false };
  }

  private lexLeftDelim(): State {
    this.pos += LEFT.length;
    const trim = hasLeftTrimMarker(this.input, this.pos);
    const after = trim ? TRIM_LEN : 0;
    if (this.input.startsWith(LEFT_COMMENT, this.pos + after)) {
      this.pos += after;
      this.ignore();
      return this.lexComment;
    }
    this.actionStart = this.start;
    this.items.push({ type: 'leftDelim', val: this.input.slice(this.start, this.pos), pos: this.start });
    this.pos += after;
    this.ignore();
    this.parenDepth = 0;
    return this.lexInsideAction;
  }

  private lexComment(): State {
    this.pos += LEFT_COMMENT.length;
    const x = this.input.indexOf(RIGHT_COMMENT, this.pos);
    if (x < 0) return this.errorf('unclosed comment');
    this.pos = x + RIGHT_COMMENT.length;
    const { delim, trim } = this.atRightDelim();
    if (!delim) return this.errorf('comment ends before closing delimiter');
    if (trim) this.pos += TRIM_LEN;
    this.pos += RIGHT.length;
    if (trim) this.pos += leftTrimLength(this.input, this.pos);
    this.ignore();
    return this.lexText;
  }

  private lexRightDelim(): State {
    const { trim } = this.atRightDelim();
    if (trim) {
      this.pos += TRIM_LEN;
      this.ignore();
    }
    this.pos += RIGHT.length;
    this.emit('rightDelim');
    if (trim) {
      this.pos += leftTrimLength(this.input, this.pos);
      this.ignore();
    }
    return this.lexText;
  }

  private lexInsideAction(): State {
    const { delim } = this.atRightDelim();
    if (delim) {
      if (this.parenDepth === 0) return this.lexRightDelim;
      return this.errorf('unclosed left paren');
    }
    const r = this.next();
    if (r === undefined) {
      this.start = this.actionStart;
      return this.errorf('unclosed action');
    }
    if (isSpace(r)) {
      this.backup();
      return this.lexSpace;
    }
    switch (r) {
      case '=':
        return this.emitThen('assign', this.lexInsideAction);
      case ':':
        if (this.next() !== '=') return this.errorf('expected :=');
        return this.emitThen('declare', this.lexInsideAction);
      case '|':
        return this.emitThen('pipe', this.lexInsideAction);
      case '"':
        return this.lexQuote;
      case '`':
        return this.lexRawQuote;
      case '$':
        return this.lexVariable;
      case "'":
        return this.lexChar;
      case '(':
        this.parenDepth++;
        return this.emitThen('leftParen', this.lexInsideAction);
      case ')':
        this.parenDepth--;
        if (this.parenDepth < 0) return this.errorf('unexpected right paren');
        return this.emitThen('rightParen', this.lexInsideAction);
    }
    if (r === '.') {
      const n = this.input[this.pos];
      if (n === undefined || n < '0' || n > '9') return this.lexField;
    }
    if (r === '.' || r === '+' || r === '-' || (r >= '0' && r <= '9')) {
      this.backup();
      return this.lexNumber;
    }
    if (isAlphaNumeric(r)) {
      this.backup();
      return this.lexIdentifier;
    }
    const cp = r.codePointAt(0)!;
    if (cp < 0x80 && cp >= 0x20 && cp !== 0x7f) return this.emitThen('char', this.lexInsideAction);
    return this.errorf(`unrecognized character in action: ${unicodeName(r)}`);
  }

  private lexSpace(): State {
    let n = 0;
    while (isSpace(this.peek())) {
      this.next();
      n++;
    }
    // A trim-marked closing delimiter has a minus after a space.
    if (hasRightTrimMarker(this.input, this.pos - 1) && this.input.startsWith(RIGHT, this.pos - 1 + TRIM_LEN)) {
      this.backup();
      if (n === 1) return this.lexRightDelim;
    }
    return this.emitThen('space', this.lexInsideAction);
  }

  private lexIdentifier(): State {
    for (;;) {
      const r = this.next();
      if (isAlphaNumeric(r)) continue;
      this.backup();
      const word = this.input.slice(this.start, this.pos);
      if (!this.atTerminator()) return this.errorf(`bad character ${unicodeName(r)}`);
      const kw = KEYWORDS[word];
      if (kw !== undefined && word !== '.') return this.emitThen(kw, this.lexInsideAction);
      if (word === 'true' || word === 'false') return this.emitThen('bool', this.lexInsideAction);
      return this.emitThen('identifier', this.lexInsideAction);
    }
  }

  private lexField(): State {
    return this.lexFieldOrVariable('field');
  }

  private lexVariable(): State {
    if (this.atTerminator()) return this.emitThen('variable', this.lexInsideAction);
    return this.lexFieldOrVariable('variable');
  }

  private lexFieldOrVariable(type: 'field' | 'variable'): State {
    if (this.atTerminator()) return this.emitThen(type === 'variable' ? 'variable' : 'dot', this.lexInsideAction);
    let r: string | undefined;
    for (;;) {
      r = this.next();
      if (!isAlphaNumeric(r)) {
        this.backup();
        break;
      }
    }
    if (!this.atTerminator()) return this.errorf(`bad character ${unicodeName(r)}`);
    return this.emitThen(type, this.lexInsideAction);
  }

  private atTerminator(): boolean {
    const r = this.peek();
    if (r === undefined || isSpace(r)) return true;
    if ('.,|:)('.includes(r)) return true;
    return this.input.startsWith(RIGHT, this.pos);
  }

  private lexChar(): State {
    for (;;) {
      let r = this.next();
      if (r === '\\') {
        r = this.next();
        if (r !== undefined && r !== '\n') continue;
      }
      if (r === undefined || r === '\n') return this.errorf('unterminated character constant');
      if (r === "'") break;
    }
    return this.emitThen('charConstant', this.lexInsideAction);
  }

  private lexNumber(): State {
    if (!this.scanNumber()) return this.errorf(`bad number syntax: ${JSON.stringify(this.input.slice(this.start, this.pos))}`);
    const sign = this.peek();
    if (sign === '+' || sign === '-') {
      if (!this.scanNumber() || this.input[this.pos - 1] !== 'i') return this.errorf(`bad number syntax: ${JSON.stringify(this.input.slice(this.start, this.pos))}`);
      return this.emitThen('complex', this.lexInsideAction);
    }
    return this.emitThen('number', this.lexInsideAction);
  }

  private scanNumber(): boolean {
    this.accept('+-');
    let digits = '0123456789_';
    if (this.accept('0')) {
      if (this.accept('xX')) digits = '0123456789abcdefABCDEF_';
      else if (this.accept('oO')) digits = '01234567_';
      else if (this.accept('bB')) digits = '01_';
    }
    this.acceptRun(digits);
    if (this.accept('.')) this.acceptRun(digits);
    if (digits.length === 11 && this.accept('eE')) {
      this.accept('+-');
      this.acceptRun('0123456789_');
    }
    if (digits.length === 23 && this.accept('pP')) {
      this.accept('+-');
      this.acceptRun('0123456789_');
    }
    this.accept('i');
    if (isAlphaNumeric(this.peek())) {
      this.next();
      return false;
    }
    return true;
  }

  private lexQuote(): State {
    for (;;) {
      let r = this.next();
      if (r === '\\') {
        r = this.next();
        if (r !== undefined && r !== '\n') continue;
      }
      if (r === undefined || r === '\n') return this.errorf('unterminated quoted string');
      if (r === '"') break;
    }
    return this.emitThen('string', this.lexInsideAction);
  }

  private lexRawQuote(): State {
    for (;;) {
      const r = this.next();
      if (r === undefined) return this.errorf('unterminated raw quoted string');
      if (r === '`') break;
    }
    return this.emitThen('rawString', this.lexInsideAction);
  }
}

function leftTrimLength(s: string, at: number): number {
  let i = at;
  while (i < s.length && isSpace(s[i])) i++;
  return i - at;
}

/** Go's %#U of a character: U+0023 '#'. */
function unicodeName(r: string | undefined): string {
  if (r === undefined) return 'U+FFFFFFFFFFFFFFFF';
  const cp = r.codePointAt(0)!;
  const hex = cp.toString(16).toUpperCase().padStart(4, '0');
  return /^[\p{L}\p{M}\p{N}\p{P}\p{S} ]$/u.test(r) ? `U+${hex} '${r}'` : `U+${hex}`;
}
