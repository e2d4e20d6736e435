// The console's HTTP client: the session cookie authenticates, the CSRF
// token (kept in memory only) goes with every request that changes state,
// and RFC 9457 problem+json answers become ApiError.

let csrfToken = '';

export function setCsrfToken(t) { csrfToken = t || ''; }

export class ApiError extends Error {
  constructor(status, problem) {
    super((problem && (problem.detail || problem.title)) || 'HTTP ' + status);
    this.status = status;
    this.problem = problem || {};
    this.fields = (problem && problem.errors) || [];
  }
}

const SAFE = new Set(['GET', 'HEAD']);

// request sends one API call. body (if any) is sent as JSON. Returns the
// decoded JSON (null for 204); with {withEtag:true} returns {data, etag}.
export async function request(method, path, body, opts = {}) {
  const headers = { Accept: 'application/json, application/problem+json' };
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  if (!SAFE.has(method) && csrfToken) headers['X-CSRF-Token'] = csrfToken;
  if (opts.ifMatch) headers['If-Match'] = opts.ifMatch;
  let resp;
  try {
    resp = await fetch(path, {
      method, headers, credentials: 'same-origin', cache: 'no-store',
      body: body === undefined ? undefined : JSON.stringify(body),
    });
  } catch (e) {
    throw new ApiError(0, { title: 'Network error', detail: 'The server cannot be reached: ' + e.message });
  }
  const type = resp.headers.get('Content-Type') || '';
  let data = null;
  if (resp.status !== 204 && type.includes('json')) {
    try { data = await resp.json(); } catch { data = null; }
  }
  if (!resp.ok) {
    if (resp.status === 401 && !opts.quiet401) window.dispatchEvent(new CustomEvent('gatehouse:unauthenticated'));
    throw new ApiError(resp.status, data || { title: resp.statusText });
  }
  return opts.withEtag ? { data, etag: resp.headers.get('ETag') } : data;
}

export const get = (path, opts) => request('GET', path, undefined, opts);
export const post = (path, body, opts) => request('POST', path, body, opts);
export const patch = (path, body, opts) => request('PATCH', path, body, opts);
export const put = (path, body, opts) => request('PUT', path, body, opts);
export const del = (path, opts) => request('DELETE', path, undefined, opts);

// all follows ?after= pages of a list up to max items.
export async function all(path, max = 1000) {
  const items = [];
  let after = '';
  for (;;) {
    const sep = path.includes('?') ? '&' : '?';
    const page = await get(path + (after ? sep + 'after=' + encodeURIComponent(after) : ''));
    items.push(...(page.items || []));
    if (!page.next || items.length >= max) return items;
    after = page.next;
  }
}

export const enc = encodeURIComponent;

// showProblem writes err into form: field errors next to their controls
// (matched by name, or by the first segment of a path like
// "document.Statement[0]"), everything else in the form's error box.
export function showProblem(form, err) {
  clearProblem(form);
  const box = form.querySelector('.form-error');
  const rest = [];
  for (const f of (err.fields || [])) {
    const key = String(f.field || '');
    const candidates = [key, key.split(/[.[]/)[0]];
    let slot = null;
    for (const c of candidates) {
      slot = c && form.querySelector(`[data-error-for="${CSS.escape(c)}"]`);
      if (slot) break;
    }
    if (slot) {
      slot.textContent = (slot.textContent ? slot.textContent + ' ' : '') + (key !== candidates[1] ? key + ': ' : '') + f.message;
      const ctl = form.querySelector(`[name="${CSS.escape(slot.dataset.errorFor)}"]`);
      if (ctl) ctl.setAttribute('aria-invalid', 'true');
    } else {
      rest.push(key ? key + ': ' + f.message : f.message);
    }
  }
  if (box) {
    const placed = err.fields && err.fields.length && !rest.length;
    const msg = placed ? 'Not saved: fix the marked fields.' : [err.message, ...rest].filter(Boolean).join(' — ');
    box.textContent = msg;
    box.hidden = !msg;
  }
}

export function clearProblem(form) {
  for (const el of form.querySelectorAll('.field-error')) el.textContent = '';
  for (const el of form.querySelectorAll('[aria-invalid]')) el.removeAttribute('aria-invalid');
  const box = form.querySelector('.form-error');
  if (box) { box.textContent = ''; box.hidden = true; }
}
