// A small JSON editor: a textarea with a line-number gutter that marks the
// line of an error, both a syntax error found while typing (JSON.parse's
// position) and a problem the server reports at a path such as
// "document.Statement[1].Effect" (located in the text). No dependencies, no
// inline styles: the strict CSP holds.
import { h } from './dom.js';

// jsonEditor wraps textarea (already named and labelled) and returns
// {el, check(), showPathErrors(fields), clear()}.
export function jsonEditor(textarea) {
  textarea.setAttribute('wrap', 'off');
  textarea.spellcheck = false;
  const gutter = h('pre.gutter', { 'aria-hidden': 'true' });
  const msg = h('p.editor-error', { role: 'status', 'aria-live': 'polite' });
  const el = h('div.jsonedit-wrap', {}, h('div.jsonedit', {}, gutter, textarea), msg);
  let bad = new Map(); // line -> message

  function draw() {
    const n = textarea.value.split('\n').length;
    textarea.rows = Math.max(n, 8);
    const lines = [];
    for (let i = 1; i <= n; i++) lines.push(bad.has(i) ? h('span.bad', { title: bad.get(i), text: String(i) }) : String(i), '\n');
    gutter.replaceChildren(...lines.map((x) => (typeof x === 'string' ? document.createTextNode(x) : x)));
    const first = [...bad.keys()].sort((a, b) => a - b)[0];
    msg.textContent = first ? `Line ${first}: ${bad.get(first)}` : '';
    if (first) textarea.setAttribute('aria-invalid', 'true');
  }

  // check marks a syntax error at its line; true when the text parses.
  function check() {
    bad = new Map();
    try {
      JSON.parse(textarea.value);
      textarea.removeAttribute('aria-invalid');
      draw();
      return true;
    } catch (e) {
      bad.set(syntaxLine(textarea.value, e.message), e.message.replace(/ in JSON at position \d+.*$/, ''));
      draw();
      return false;
    }
  }

  // showPathErrors marks the lines of problems reported at JSON paths
  // (relative to the document, optionally prefixed by its field name).
  function showPathErrors(fields, prefix = 'document') {
    bad = new Map();
    const at = locate(textarea.value);
    for (const f of fields || []) {
      let p = String(f.field || '');
      if (p === prefix) p = '';
      else if (p.startsWith(prefix + '.') || p.startsWith(prefix + '[')) p = p.slice(prefix.length).replace(/^\./, '');
      else continue;
      // The deepest located prefix of the path names the line.
      let line = 1;
      for (let q = p; ; q = q.replace(/(\.[^.[\]]+|\[\d+\]|^[^.[\]]+)$/, '')) {
        if (at.has(q)) { line = at.get(q); break; }
        if (!q) break;
      }
      // A message that starts with a key of the value ("Effect \"Perhaps\"
      // is not Allow or Deny") points at that key's line.
      const key = /^([A-Za-z][\w:]*)\b/.exec(String(f.message || ''));
      const child = key && (p ? p + '.' : '') + key[1];
      if (child && at.has(child)) line = at.get(child);
      if (!bad.has(line)) bad.set(line, (p ? p + ': ' : '') + f.message);
    }
    draw();
  }

  textarea.addEventListener('input', () => { check(); });
  draw();
  return { el, check, showPathErrors, clear: () => { bad = new Map(); textarea.removeAttribute('aria-invalid'); draw(); } };
}

// syntaxLine is the line of a JSON.parse error: V8 says "(line L column
// C)" or "at position N".
export function syntaxLine(text, message) {
  const lc = /line (\d+) column \d+/.exec(message);
  if (lc) return Number(lc[1]);
  const pos = /position (\d+)/.exec(message);
  if (pos) return text.slice(0, Number(pos[1])).split('\n').length;
  // Newer V8 says only 'Unexpected token ..., "..." is not valid JSON':
  // find the place by parsing.
  return locate(text).errorLine || text.split('\n').length;
}

// locate maps each path in the JSON text ("", "Statement", "Statement[1]",
// "Statement[1].Effect") to the line its value starts on. On malformed
// text it returns what it found so far, with errorLine set to where it
// broke.
export function locate(text) {
  const out = new Map();
  let i = 0;
  let line = 1;
  const ws = () => { while (i < text.length && /\s/.test(text[i])) { if (text[i] === '\n') line++; i++; } };
  const str = () => {
    let s = '';
    i++; // opening quote
    while (i < text.length && text[i] !== '"') {
      if (text[i] === '\\') { s += text[i + 1] === '"' ? '"' : text[i + 1]; i += 2; continue; }
      if (text[i] === '\n') line++;
      s += text[i++];
    }
    i++;
    return s;
  };
  const value = (path) => {
    ws();
    out.set(path, line);
    const c = text[i];
    if (c === '{') {
      i++;
      for (;;) {
        ws();
        if (text[i] === '}') { i++; return; }
        if (text[i] !== '"') throw new Error('key');
        const k = str();
        ws();
        if (text[i] !== ':') throw new Error('colon');
        i++;
        value(path ? path + '.' + k : k);
        ws();
        if (text[i] === ',') { i++; continue; }
        if (text[i] === '}') { i++; return; }
        throw new Error('object');
      }
    } else if (c === '[') {
      i++;
      for (let n = 0; ; n++) {
        ws();
        if (text[i] === ']') { i++; return; }
        value(path + '[' + n + ']');
        ws();
        if (text[i] === ',') { i++; continue; }
        if (text[i] === ']') { i++; return; }
        throw new Error('array');
      }
    } else if (c === '"') {
      str();
    } else {
      const start = i;
      while (i < text.length && !/[\s,\]}]/.test(text[i])) i++;
      if (!/^(true|false|null|-?(0|[1-9]\d*)(\.\d+)?([eE][+-]?\d+)?)$/.test(text.slice(start, i))) throw new Error('literal');
    }
  };
  try {
    value('');
    ws();
    if (i < text.length) throw new Error('trailing');
  } catch {
    out.errorLine = line; // malformed: keep what was found, and where it broke
  }
  return out;
}
