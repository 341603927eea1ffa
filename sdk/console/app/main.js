// The osØ web console: sign in with a token (kept in this page's memory only: never stored, never
// in a URL, never in a cookie), then five views over one live copy of what that token may see.
import { ApiClient } from './client/index.js';
import { bar, brief, h, windowed } from './dom.js';
import { keyOf, Live } from './live.js';

const app = document.getElementById('app');
let live = null;
let view = null;

const VIEWS = { tree: treeView, costs: costsView, fleet: fleetView, apps: appsView, log: logView };

function route() {
  const [name, ...rest] = location.hash.replace(/^#\/?/, '').split('/');
  return { name: VIEWS[name] || name === 'r' ? name : 'tree', arg: decodeURIComponent(rest.join('/')) };
}

// ---- sign in ---------------------------------------------------------------------------------

function signIn(message) {
  live?.stop();
  live = null;
  const input = h('input', { type: 'password', name: 'token', autocomplete: 'off', placeholder: 'os0_…', 'aria-label': 'token' });
  const err = h('p', { class: 'error', role: 'alert' }, message ?? '');
  const form = h(
    'form',
    {
      on: {
        submit: async (e) => {
          e.preventDefault();
          const token = input.value.trim();
          if (!token) return void (err.textContent = 'paste a token (os0 token create ACTOR prints one)');
          const api = new ApiClient({ url: location.origin, token, timeoutMs: 30_000 });
          try {
            await api.listPage({ limit: 1 });
          } catch (x) {
            err.textContent = x.status === 401 ? 'that token is not valid (revoked or mistyped)' : `cannot sign in: ${x.message}`;
            return;
          }
          input.value = '';
          start(api);
        },
      },
    },
    h('label', null, 'Token', input),
    h('button', { type: 'submit' }, 'Sign in'),
    err,
  );
  app.replaceChildren(h('div', { class: 'signin' }, h('h1', null, 'osØ console'), form));
  input.focus();
}

function start(api) {
  const status = h('span', { class: 'status' });
  const nav = h('nav', null, ...Object.keys(VIEWS).map((v) => h('a', { href: `#/${v}`, 'data-view': v }, v)));
  const main = h('main');
  const out = h('button', { type: 'button', on: { click: () => signIn() } }, 'Sign out');
  app.replaceChildren(h('header', null, h('span', { class: 'brand' }, 'osØ'), nav, status, out), main);
  live = new Live(api, () => {
    status.textContent = live.state === 'live' ? `live · index ${live.index} · ${live.byKey.size} resources${live.dropped ? ` (${live.dropped} not kept)` : ''}` : live.state === 'stopped' ? live.error : 'loading…';
    status.dataset.state = live.state;
    view?.update();
  });
  const show = () => {
    const r = route();
    for (const a of nav.children) a.classList.toggle('on', a.dataset.view === r.name);
    view = r.name === 'r' ? resourceView(r.arg) : VIEWS[r.name](r.arg);
    main.replaceChildren(view.el);
    view.update();
  };
  window.onhashchange = show;
  live.draw();
  live.start().then(show, (e) => signIn(`cannot load: ${e.message}`));
}

// ---- tree ------------------------------------------------------------------------------------

function namespaces() {
  const set = new Set();
  for (const r of live.byKey.values()) {
    if (r.type === 'namespace') set.add(r.name);
    if (r.namespace) set.add(r.namespace);
  }
  return [...set].sort();
}

/** Counts per type of a namespace and everything below it. */
function rolled(ns) {
  const out = new Map();
  for (const [n, c] of live.counts) {
    if (n !== ns && !n.startsWith(`${ns}/`)) continue;
    for (const [t, k] of c) out.set(t, (out.get(t) ?? 0) + k);
  }
  return out;
}

const depth = (ns) => ns.split('/').length - 1;

function treeView(arg) {
  let selected = arg || '';
  let newest = false;
  const nsList = windowed(40, (ns) => {
    const counts = [...rolled(ns)].map(([t, n]) => `${n} ${t}`).join(' · ');
    const row = h('div', { class: `row link${ns === selected ? ' sel' : ''}`, 'data-ns': ns, on: { click: () => (location.hash = `#/tree/${encodeURIComponent(ns)}`) } }, h('div', null, h('div', { class: 'c name' }, ns || '(cluster-wide)'), h('div', { class: 'counts' }, counts)));
    row.style.paddingLeft = `${0.3 + depth(ns)}rem`;
    return row;
  });
  const list = windowed(26, (r) =>
    h(
      'div',
      { class: 'row link', 'data-key': keyOf(r), 'data-name': r.name, on: { click: () => (location.hash = `#/r/${encodeURIComponent(r.id)}`) } },
      h('span', { class: 'c type' }, r.type),
      h('span', { class: 'c name' }, r.name),
      h('span', { class: 'c idx' }, `@${r.revision}`),
      h('span', { class: 'c grow' }, brief(r.data)),
    ),
  );
  const title = h('h2');
  const sort = h('label', { class: 'muted' }, h('input', { type: 'checkbox', name: 'newest', on: { change: (e) => ((newest = e.target.checked), update()) } }), ' newest first');
  const el = h('div', { class: 'cols' }, h('section', null, h('h2', null, 'Namespaces'), nsList.el), h('section', null, h('div', { class: 'filters' }, title, sort), list.el));
  const update = () => {
    nsList.set(['', ...namespaces()]);
    title.textContent = selected ? `In ${selected}` : 'Cluster-wide';
    const rows = [];
    for (const r of live.byKey.values()) if (r.namespace === selected && !r.type.endsWith('/observed')) rows.push(r);
    rows.sort(newest ? (a, b) => b.revision - a.revision : (a, b) => (keyOf(a) < keyOf(b) ? -1 : 1));
    list.set(rows);
  };
  return { el, update };
}

function resourceView(id) {
  const el = h('div');
  const update = () => {
    const r = live.byId.get(id);
    if (!r) return void el.replaceChildren(h('section', null, h('h2', null, 'Not here'), h('p', null, `resource ${id} is gone, or this token may not see it`)));
    const obs = live.byKey.get(keyOf({ namespace: r.namespace, type: `${r.type}/observed`, name: r.name }));
    const owners = (r.owner ?? []).map((o) => live.byId.get(o));
    const owns = [];
    for (const x of live.byKey.values()) if (x.owner?.includes(r.id)) owns.push(x);
    const link = (x) => h('a', { href: `#/r/${encodeURIComponent(x.id)}` }, `${x.type} ${x.namespace ? `${x.namespace}/` : ''}${x.name}`);
    const changes = live.log.filter((rec) => rec.changes.some((c) => c.id === r.id)).reverse();
    el.replaceChildren(
      h('section', null, h('h2', null, `${r.type} ${r.name}`), h('p', { class: 'muted' }, `namespace ${r.namespace || '(cluster-wide)'} · revision ${r.revision} · updated ${r.updated}${r.cost ? ` · ${r.cost}/h` : ''}`),
        h('p', null, 'Owner: ', owners.length ? owners.map((o, i) => (o ? link(o) : r.owner[i])) : 'none'),
        h('p', null, 'Owns: ', owns.length ? owns.slice(0, 50).map(link) : 'nothing')),
      h('div', { class: 'pair' }, h('section', null, h('h2', null, 'Desired'), h('pre', { class: 'desired' }, JSON.stringify({ tags: r.tags, data: r.data }, null, 2))), h('section', null, h('h2', null, 'Observed'), h('pre', { class: 'observed' }, obs ? JSON.stringify(obs.data, null, 2) : r.status ? JSON.stringify(r.status, null, 2) : 'nothing observed'))),
      h('section', null, h('h2', null, 'Recent changes'), changes.length ? changes.slice(0, 50).map((rec) => h('div', { class: 'row' }, h('span', { class: 'c idx' }, `#${rec.index}`), h('span', { class: 'c actor' }, rec.actor), h('span', { class: 'c grow' }, `${rec.changes.find((c) => c.id === r.id).action} · ${rec.time}`))) : h('p', { class: 'muted' }, 'none in the recent log')),
    );
  };
  return { el, update };
}

// ---- costs -----------------------------------------------------------------------------------

function costsView() {
  const list = windowed(30, ({ ns, cost, budget, quota, counts }) => {
    const row = h('div', { class: 'row', 'data-ns': ns },
      h('span', { class: 'c name' }, ns),
      h('span', { class: 'c num' }, `${cost.toFixed(2)}/h`),
      bar(cost, budget ?? 0, budget == null ? 'no budget' : `${cost.toFixed(2)} of ${budget}/h`),
      h('span', { class: 'c num' }, budget == null ? 'no budget' : `of ${budget}/h`),
      h('span', { class: 'c grow' }, quota ? Object.entries(quota).map(([t, q]) => `${t} ${counts.get(t) ?? 0}/${q}`).join(' · ') : ''));
    row.style.paddingLeft = `${0.3 + depth(ns)}rem`;
    return row;
  });
  const el = h('section', null, h('h2', null, 'Cost per hour against budget and quota (rolled up the tree)'), list.el);
  const update = () => {
    const rows = namespaces().map((ns) => {
      let cost = 0;
      for (const [n, c] of live.cost) if (n === ns || n.startsWith(`${ns}/`)) cost += c;
      const res = live.byKey.get(keyOf({ namespace: '', type: 'namespace', name: ns }));
      return { ns, cost: Math.max(0, cost), budget: res?.data?.budget?.perHour ?? null, quota: res?.data?.quota?.count ?? null, counts: rolled(ns) };
    });
    list.set(rows);
  };
  return { el, update };
}

// ---- fleet -----------------------------------------------------------------------------------

function fleetView() {
  const kinds = [
    ['machine', 'Machines (capacity, usage)'],
    ['service', 'Services'],
    ['task', 'Tasks (replicas)'],
    ['process', 'Processes'],
    ['assignment-request', 'Pending work (and why)'],
  ];
  const parts = kinds.map(([type, title]) => {
    const list = windowed(26, (r) => {
      const obs = live.byKey.get(keyOf({ namespace: r.namespace, type: `${r.type}/observed`, name: r.name }));
      return h('div', { class: 'row link', 'data-key': keyOf(r), on: { click: () => (location.hash = `#/r/${encodeURIComponent(r.id)}`) } }, h('span', { class: 'c name' }, r.name), h('span', { class: 'c ns' }, r.namespace), h('span', { class: 'c grow' }, brief(r.data, 100)), h('span', { class: 'c grow' }, obs ? brief(obs.data, 100) : ''));
    }, { class: 'short' });
    const count = h('span', { class: 'muted' });
    return { type, list, el: h('section', { 'data-type': type }, h('h2', null, title, ' ', count), list.el), count };
  });
  const el = h('div', null, parts.map((p) => p.el));
  const update = () => {
    for (const p of parts) {
      const rows = live.ofType(p.type).sort((a, b) => (keyOf(a) < keyOf(b) ? -1 : 1));
      p.count.textContent = `(${rows.length})`;
      p.list.set(rows);
    }
  };
  return { el, update };
}

// ---- apps ------------------------------------------------------------------------------------

function appsView() {
  let loaded = [];
  const apps = h('div');
  const pick = h('select', { name: 'capability' });
  const input = h('textarea', { name: 'input', spellcheck: 'false' }, '{}');
  const output = h('pre', { class: 'output' }, '');
  const logs = h('pre', { class: 'logs' }, '');
  const msg = h('p', { class: 'error', role: 'alert' });
  const form = h('form', {
    on: {
      submit: async (e) => {
        e.preventDefault();
        const [appName, cap] = pick.value.split('.');
        if (!appName || !cap) return void (msg.textContent = 'pick a capability');
        let value;
        try {
          value = input.value.trim() ? JSON.parse(input.value) : undefined;
        } catch (x) {
          return void (msg.textContent = `the input is not JSON: ${x.message}`);
        }
        msg.textContent = '';
        output.textContent = 'running…';
        logs.textContent = '';
        try {
          const res = await live.api.invoke(appName, cap, value);
          output.textContent = res.status === 'succeeded' ? JSON.stringify(res.output, null, 2) : `${res.status}: ${res.error?.message ?? ''}`;
          output.dataset.status = res.status;
          logs.textContent = (res.logs ?? []).join('\n');
        } catch (x) {
          output.textContent = '';
          msg.textContent = x.message;
        }
      },
    },
  }, h('label', null, 'Capability ', pick), h('label', null, 'Input (JSON)', input), h('button', { type: 'submit' }, 'Invoke'), msg);
  const invocations = windowed(26, (r) => h('div', { class: 'row link', 'data-key': keyOf(r), on: { click: () => (location.hash = `#/r/${encodeURIComponent(r.id)}`) } }, h('span', { class: 'c idx' }, `@${r.revision}`), h('span', { class: 'c name' }, r.name), h('span', { class: 'c grow' }, brief(r.data, 120))), { class: 'short' });
  const el = h('div', { class: 'pair' }, h('section', null, h('h2', null, 'Apps'), apps), h('div', null, h('section', null, h('h2', null, 'Invoke'), form, h('h3', null, 'Output'), output, h('h3', null, 'Logs'), logs), h('section', null, h('h2', null, 'Invocations'), invocations.el)));
  live.api.json('GET', '/v1/console/apps').then((a) => ((loaded = a), update()), () => {});
  let lastPicks = '';
  const update = () => {
    const installed = live.ofType('app').map((r) => ({ name: r.name, version: r.data?.version ?? '', description: r.data?.description ?? '', publisher: r.data?.publisher ?? '', capabilities: live.ofType('capability').filter((c) => c.name.startsWith(`${r.name}.`)).map((c) => ({ name: c.name.slice(r.name.length + 1), description: c.data?.description ?? '' })) }));
    const all = [...installed, ...loaded.filter((l) => !installed.some((i) => i.name === l.name))];
    apps.replaceChildren(...(all.length ? all.map((a) => h('div', { class: 'app', 'data-app': a.name }, h('h3', null, `${a.name} ${a.version}`, a.publisher ? ` · ${a.publisher}` : ''), h('p', { class: 'muted' }, a.description), h('ul', null, a.capabilities.map((c) => h('li', null, `${c.name}: ${c.description}`))))) : [h('p', { class: 'muted' }, 'no apps this token may see')]));
    const picks = all.flatMap((a) => a.capabilities.map((c) => `${a.name}.${c.name}`));
    if (picks.join() !== lastPicks) {
      lastPicks = picks.join();
      const was = pick.value;
      pick.replaceChildren(...picks.map((p) => h('option', { value: p }, p)));
      if (picks.includes(was)) pick.value = was;
    }
    invocations.set(live.ofType('invocation').sort((a, b) => b.revision - a.revision));
  };
  return { el, update };
}

// ---- log -------------------------------------------------------------------------------------

function logView() {
  const f = { actor: '', type: '', namespace: '' };
  let follow = true;
  let shown = [];
  const inputs = Object.keys(f).map((k) => h('input', { name: k, placeholder: k, on: { input: (e) => ((f[k] = e.target.value.trim()), update(true)) } }));
  const followBox = h('input', { type: 'checkbox', name: 'follow', checked: true, on: { change: (e) => ((follow = e.target.checked), update(true)) } });
  const list = windowed(26, ({ rec, ch }) => h('div', { class: 'row', 'data-index': rec.index, 'data-name': ch.name }, h('span', { class: 'c idx' }, `#${rec.index}`), h('span', { class: 'c actor' }, rec.actor), h('span', { class: 'c type' }, `${ch.action} ${ch.type}`), h('span', { class: 'c ns' }, ch.namespace), h('span', { class: 'c name' }, ch.name), h('span', { class: 'c grow' }, rec.time)));
  const el = h('section', null, h('h2', null, 'Command log'), h('div', { class: 'filters' }, inputs, h('label', null, followBox, ' following')), list.el);
  const update = (force) => {
    if (!follow && !force) return;
    const rows = [];
    for (let i = live.log.length - 1; i >= 0; i--) {
      const rec = live.log[i];
      if (f.actor && !rec.actor.includes(f.actor)) continue;
      for (const ch of rec.changes) {
        if (f.type && ch.type !== f.type) continue;
        if (f.namespace && ch.namespace !== f.namespace && !ch.namespace.startsWith(`${f.namespace}/`)) continue;
        rows.push({ rec, ch });
      }
    }
    shown = rows;
    list.set(shown);
  };
  return { el, update: () => update(false) };
}

signIn();
