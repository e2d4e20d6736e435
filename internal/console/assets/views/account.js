// The signed-in person's own account: who they are and their console
// sessions (sign out one left open elsewhere). Every role has it.
import { h, mount, section } from '../dom.js';
import { loadSessionsInto } from './user.js';

export async function render(root, _params, ctx) {
  const s = ctx.session;
  const sessions = h('div');
  mount(root, h('h1', { text: 'My account' }),
    section('Who you are', h('dl.facts.facts2', {},
      h('dt', { text: 'Username' }), h('dd', { text: s.username }),
      h('dt', { text: 'Roles' }), h('dd', { text: (s.roles || []).join(', ') }))),
    section('Console sessions', h('p.muted', { text: 'Every browser you are signed in with. Signing one out ends it there at its next request.' }), sessions));
  await loadSessionsInto(sessions, s.username);
}
