// The policy simulator: may this principal do this action on this
// resource, and which statements decided it (POST /api/v1/policies/simulate).
import { h, mount, field, table, badge, section, formBox, splitList } from '../dom.js';
import { post, showProblem, clearProblem } from '../api.js';

const ACTIONS = ['iot:Connect', 'iot:Publish', 'iot:Subscribe', 'iot:Receive', 'iot:RetainPublish'];

// simulatorForm returns a form that simulates a decision; defaults fill it.
export function simulatorForm(defaults = {}) {
  const thing = h('input', { name: 'thingName', type: 'text', value: defaults.thingName || '', placeholder: 'lamp-1' });
  const person = h('input', { name: 'username', type: 'text', value: defaults.username || '', placeholder: 'alice (instead of a thing)' });
  const client = h('input', { name: 'clientId', type: 'text', value: defaults.clientId || '', placeholder: 'defaults to the thing name' });
  const fp = h('input', { name: 'certificateFingerprint', type: 'text', placeholder: 'sha-256, optional' });
  const scopes = h('input', { name: 'scopes', type: 'text', placeholder: 'publish telemetry' });
  const action = h('select', { name: 'action' }, ACTIONS.map((a) => h('option', { value: a, text: a })));
  action.value = defaults.action || 'iot:Publish';
  const resource = h('input', { name: 'resource', type: 'text', required: true, value: defaults.resource || '', placeholder: 'lamps/lamp-1/state' });
  const out = h('div.sim-result', { 'aria-live': 'polite' });
  const form = h('form.card.simulator', { 'aria-label': 'Policy simulator' }, formBox(),
    h('div.row', {}, field('Thing (principal)', thing), field('Person (username)', person), field('Client ID', client)),
    h('div.row', {}, field('Certificate fingerprint', fp), field('Token scopes', scopes)),
    h('div.row', {}, field('Action', action), field('Resource', resource, 'The client ID for iot:Connect, the topic for Publish/Receive/RetainPublish, the topic filter for Subscribe.')),
    h('div.actions', {}, h('button.btn-primary', { type: 'submit', text: 'Simulate' })),
    out);
  async function run() {
    clearProblem(form);
    const body = { action: action.value, resource: resource.value.trim() };
    if (thing.value.trim()) body.thingName = thing.value.trim();
    if (person.value.trim()) body.username = person.value.trim();
    if (client.value.trim()) body.clientId = client.value.trim();
    if (fp.value.trim()) body.certificateFingerprint = fp.value.trim();
    if (splitList(scopes.value).length) body.scopes = splitList(scopes.value);
    try {
      const d = await post('/api/v1/policies/simulate', body);
      mount(out, decisionView(d));
    } catch (e) {
      mount(out);
      showProblem(form, e);
    }
  }
  form.addEventListener('submit', (ev) => { ev.preventDefault(); run(); });
  form.run = run;
  return form;
}

function decisionView(d) {
  const stmt = (s) => `${s.policy} #${s.index}${s.sid ? ' (' + s.sid + ')' : ''}`;
  return h('div', {},
    h('p.decision', {}, 'Decision: ',
      h('strong', { class: ['decision-value', d.allowed ? 'allow' : 'deny'], 'data-testid': 'decision', text: d.allowed ? 'ALLOW' : 'DENY' }),
      ' ', badge(d.reason, d.allowed ? 'ok' : 'off'), ' ', h('span.mono', { text: d.action + ' on ' + d.resource })),
    d.problem ? h('p.form-error', { text: d.problem }) : null,
    h('p', { text: 'Policies in force: ' + ((d.policies || []).join(', ') || 'none') }),
    h('h3', { text: 'Matching statements' }),
    table([
      { label: 'Statement', get: stmt },
      { label: 'Effect', get: (s) => badge(s.effect, s.effect === 'Allow' ? 'ok' : 'off') },
    ], d.matchedStatements || [], { label: 'Matching statements', empty: 'No statement matches: implicit deny.' }),
    (d.notAppliedStatements || []).length ? [h('h3', { text: 'Statements that did not apply' }),
      table([{ label: 'Statement', get: stmt }, { label: 'Effect', get: (s) => s.effect }, { label: 'Why', get: (s) => s.why }],
        d.notAppliedStatements, { label: 'Statements that did not apply' })] : null,
    h('details', {}, h('summary', { text: 'Context' }), h('pre', { text: JSON.stringify(d.context || {}, null, 2) })));
}

export async function render(root, _params, _ctx, query) {
  const form = simulatorForm({ thingName: query.get('thing') || '', username: query.get('user') || '', resource: query.get('resource') || '' });
  mount(root, h('h1', { text: 'Policy simulator' }),
    h('p.muted', { text: 'Evaluates the policies that would apply to a connection, exactly as the broker does.' }),
    section('Simulate a decision', form));
}
