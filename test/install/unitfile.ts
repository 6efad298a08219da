// Reading a systemd unit back as systemd does, for the tests: its settings, the words of
// ExecStart= (quotes, C escapes, %% and $$, $VAR and ${VAR}), and an EnvironmentFile=.
// systemd-analyze verify checks the same text independently (test/cli/install.test.ts).

/** Every `Key=value` of a unit, in order (comments and section headers skipped). */
export function unitSettings(text: string): [key: string, value: string][] {
  const out: [string, string][] = [];
  for (const line of text.split('\n')) {
    if (/^\s*([#;]|\[|$)/.test(line)) continue;
    const i = line.indexOf('=');
    if (i < 0) throw new Error(`not a setting: ${line}`);
    out.push([line.slice(0, i).trim(), line.slice(i + 1).trim()]);
  }
  return out;
}

/** The last value of `key` (a unit setting set twice takes the last), or undefined. */
export function setting(text: string, key: string): string | undefined {
  return unitSettings(text).filter(([k]) => k === key).pop()?.[1];
}

const ESC: Record<string, string> = { a: '\x07', b: '\b', f: '\f', n: '\n', r: '\r', t: '\t', v: '\v', '\\': '\\', '"': '"', "'": "'", s: ' ' };

/** systemd's whitespace (WHITESPACE in its sources): not every Unicode space. */
const WS = /[ \t\n\r]/;

/** Split a value into words: whitespace separates, "..." and '...' quote, C escapes inside. */
export function splitWords(v: string): { word: string; quoted: boolean }[] {
  const words: { word: string; quoted: boolean }[] = [];
  let i = 0;
  while (i < v.length) {
    while (i < v.length && WS.test(v[i]!)) i++;
    if (i >= v.length) break;
    let w = '';
    let quoted = false;
    while (i < v.length && !WS.test(v[i]!)) {
      const q = v[i];
      if (q === '"' || q === "'") {
        quoted = true;
        i++;
        while (i < v.length && v[i] !== q) {
          if (v[i] === '\\') {
            const e = ESC[v[i + 1]!];
            if (e === undefined) throw new Error(`unknown escape \\${v[i + 1]} in ${v}`);
            w += e;
            i += 2;
          } else w += v[i++];
        }
        if (v[i] !== q) throw new Error(`unterminated quote in ${v}`);
        i++;
      } else if (q === '\\') {
        w += ESC[v[i + 1]!] ?? v[i + 1];
        i += 2;
      } else w += v[i++];
    }
    words.push({ word: w, quoted });
  }
  return words;
}

/** `%%` → `%`; any other specifier is not something these units use. */
function specifiers(s: string): string {
  return s.replace(/%(.)/g, (_m, c: string) => {
    if (c === '%') return '%';
    throw new Error(`specifier %${c} in ${s}`);
  });
}

/** The argv of an ExecStart= value (the executable first), with `env` for $VAR (split at whitespace) and ${VAR} (one word). */
export function execArgv(value: string, env: Record<string, string>): string[] {
  const out: string[] = [];
  const words = splitWords(value);
  // The executable: specifiers only (systemd does not expand variables in it).
  if (words.length) out.push(specifiers(words.shift()!.word));
  for (const { word, quoted } of words) {
    const m = /^\$([A-Za-z_][A-Za-z0-9_]*)$/.exec(word);
    if (m && !quoted) {
      out.push(...(env[m[1]!] ?? '').split(/\s+/).filter(Boolean));
      continue;
    }
    // $$ → $, ${VAR} → its value; then specifiers.
    const w = word.replace(/\$\$|\$\{([A-Za-z_][A-Za-z0-9_]*)\}/g, (all, name?: string) => (name ? (env[name] ?? '') : '$'));
    out.push(specifiers(w));
  }
  return out;
}

/** The words of a setting such as ReadWritePaths= or Environment= (specifiers resolved). */
export function settingWords(value: string): string[] {
  return splitWords(value).map(({ word }) => specifiers(word));
}

/** An EnvironmentFile= file: KEY=VALUE lines, # and ; comments, values optionally quoted. */
export function parseEnvFile(text: string): Record<string, string> {
  const env: Record<string, string> = {};
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    if (!line || line.startsWith('#') || line.startsWith(';')) continue;
    const m = /^([A-Za-z_][A-Za-z0-9_]*)\s*=\s*(.*)$/.exec(line);
    if (!m) throw new Error(`not KEY=VALUE: ${line}`);
    const v = m[2]!;
    env[m[1]!] = /^".*"$|^'.*'$/.test(v) ? v.slice(1, -1) : v;
  }
  return env;
}
