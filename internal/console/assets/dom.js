// Small DOM helpers. Everything is built with createElement and textContent:
// no innerHTML, no inline handlers or styles, so the strict CSP holds.

const SVG_NS = 'http://www.w3.org/2000/svg';

function apply(el, attrs) {
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k === 'class') el.className = Array.isArray(v) ? v.filter(Boolean).join(' ') : v;
    else if (k === 'text') el.textContent = v;
    else if (k === 'on') for (const [ev, fn] of Object.entries(v)) el.addEventListener(ev, fn);
    else if (k === 'dataset') Object.assign(el.dataset, v);
    else if (k === 'value' || k === 'checked' || k === 'selected' || k === 'disabled' || k === 'srcObject') el[k] = v;
    else el.setAttribute(k, v === true ? '' : String(v));
  }
}

function append(el, children) {
  for (const c of children.flat(Infinity)) {
    if (c === undefined || c === null || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
}

// h('tag.class', {attrs}, ...children) makes an HTML element.
export function h(tag, attrs, ...children) {
  const [name, ...classes] = tag.split('.');
  const el = document.createElement(name || 'div');
  if (classes.length) el.className = classes.join(' ');
  if (attrs && (typeof attrs !== 'object' || attrs instanceof Node || Array.isArray(attrs))) {
    children.unshift(attrs);
    attrs = {};
  }
  if (attrs && attrs.class && classes.length) attrs = { ...attrs, class: [...classes, attrs.class].join(' ') };
  apply(el, attrs);
  append(el, children);
  return el;
}

// s('tag', {attrs}, ...children) makes an SVG element.
export function s(tag, attrs, ...children) {
  const el = document.createElementNS(SVG_NS, tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null) continue;
    if (k === 'text') el.textContent = v;
    else el.setAttribute(k, String(v));
  }
  append(el, children);
  return el;
}

// clear empties el and appends children.
export function mount(el, ...children) {
  el.replaceChildren();
  append(el, children);
  return el;
}

let fieldSeq = 0;

// field makes a labelled form control: field('Name', h('input', {name:'name'})).
export function field(label, control, hint) {
  if (!control.id) control.id = 'f' + (++fieldSeq);
  const parts = [h('label', { for: control.id, text: label }), control];
  if (hint) {
    const hid = control.id + '-hint';
    control.setAttribute('aria-describedby', hid);
    parts.push(h('small.hint', { id: hid, text: hint }));
  }
  parts.push(h('span.field-error', { role: 'alert', 'data-error-for': control.name || '' }));
  return h('div.field', {}, parts);
}

// fmtTime is the console's one time format: local time with the zone
// ("2026-12-07 06:15:02 GMT+1"); when() adds the ISO time on hover.
export function fmtTime(t) {
  const d = toDate(t);
  if (!d) return '';
  const p = (n) => String(n).padStart(2, '0');
  const zone = (new Intl.DateTimeFormat(undefined, { timeZoneName: 'short' }).formatToParts(d).find((x) => x.type === 'timeZoneName') || {}).value || '';
  return `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())} ${p(d.getHours())}:${p(d.getMinutes())}:${p(d.getSeconds())} ${zone}`.trim();
}

function toDate(t) {
  if (!t) return null;
  const d = t instanceof Date ? t : new Date(t);
  if (Number.isNaN(d.getTime()) || d.getFullYear() < 1971) return null;
  return d;
}

// when shows a time in the console's format, the ISO time on hover.
export function when(t) {
  const d = toDate(t);
  if (!d) return '';
  return h('time', { datetime: d.toISOString(), title: d.toISOString(), text: fmtTime(d) });
}

export function badge(text, kind) {
  return h('span', { class: ['badge', kind ? 'badge-' + kind : ''], text });
}

// table renders rows with columns [{label, get(row) -> Node|string}].
export function table(columns, rows, opts = {}) {
  const body = h('tbody');
  if (!rows.length) {
    body.append(h('tr', {}, h('td.empty', { colspan: columns.length, text: opts.empty || 'Nothing here yet.' })));
  }
  for (const r of rows) {
    body.append(h('tr', {}, columns.map((c) => h('td', {}, c.get(r)))));
  }
  return h('table.data', { 'aria-label': opts.label || '' },
    h('thead', {}, h('tr', {}, columns.map((c) => h('th', { scope: 'col', text: c.label })))),
    body);
}

// toast shows a short status message in the live region.
export function toast(msg, kind = 'ok') {
  const region = document.getElementById('toasts');
  if (!region) return;
  const t = h('div', { class: ['toast', 'toast-' + kind], role: kind === 'error' ? 'alert' : 'status', text: msg });
  region.append(t);
  setTimeout(() => t.remove(), kind === 'error' ? 8000 : 4000);
}

export function link(href, text) {
  return h('a', { href, text });
}

// section is a titled panel of a page.
export function section(title, ...children) {
  const id = 'sec-' + title.toLowerCase().replace(/[^a-z0-9]+/g, '-');
  return h('section.panel', { 'aria-labelledby': id }, h('h2', { id, text: title }), children);
}

// fill replaces el's content with what load() returns, or shows its error.
export async function fill(el, load) {
  try {
    mount(el, await load());
  } catch (e) {
    const msg = e.status === 403 ? 'Your role does not allow this.' : e.message;
    mount(el, h('p.muted', { text: msg }));
  }
}

// confirmButton asks for a second click before running fn.
export function confirmButton(label, question, fn, cls = 'btn-danger') {
  const wrap = h('span.confirm');
  const ask = h('button', { type: 'button', class: cls, text: label });
  ask.addEventListener('click', () => {
    const yes = h('button', { type: 'button', class: cls, text: 'Yes, ' + label.toLowerCase() });
    const no = h('button', { type: 'button', class: 'btn-link', text: 'Cancel' });
    mount(wrap, h('span.confirm-q', { text: question + ' ' }), yes, no);
    no.addEventListener('click', () => { mount(wrap, ask); ask.focus(); });
    yes.addEventListener('click', async () => {
      yes.disabled = true;
      try { await fn(); } finally { yes.disabled = false; }
    });
    yes.focus();
  });
  wrap.append(ask);
  return wrap;
}

// formBox is the error box at the top of a form.
export function formBox() {
  return h('p.form-error', { role: 'alert', hidden: true });
}

// parseKV turns "a=b" lines into an object.
export function parseKV(text) {
  const out = {};
  for (const line of text.split('\n')) {
    const t = line.trim();
    if (!t) continue;
    const i = t.indexOf('=');
    if (i < 1) throw new Error(`"${t}" is not name=value`);
    out[t.slice(0, i).trim()] = t.slice(i + 1).trim();
  }
  return out;
}

export function splitList(text) {
  return text.split(/[\s,]+/).map((x) => x.trim()).filter(Boolean);
}
