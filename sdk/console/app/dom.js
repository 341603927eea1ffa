// A tiny DOM builder. Text is always a text node (never parsed as HTML): whatever a resource
// holds — `<script>`, `<img onerror>` — is shown, never run. Event handlers are functions passed
// as `on: {click: fn}`, never attributes, so the Content-Security-Policy needs no inline script.

/** h('tag', {class, on, ...attributes}, ...children); children: nodes, text, arrays, null. */
export function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  if (attrs) {
    for (const [k, v] of Object.entries(attrs)) {
      if (v === undefined || v === null || v === false) continue;
      if (k === 'on') for (const [ev, fn] of Object.entries(v)) el.addEventListener(ev, fn);
      else if (k === 'value') el.value = v;
      else if (k === 'checked') el.checked = !!v;
      else if (k.startsWith('on')) throw new Error(`handlers go in "on", not ${k}`);
      else el.setAttribute(k, v === true ? '' : String(v));
    }
  }
  add(el, children);
  return el;
}

function add(el, children) {
  for (const c of children) {
    if (c === null || c === undefined || c === false) continue;
    if (Array.isArray(c)) add(el, c);
    else if (c instanceof Node) el.append(c);
    else el.append(document.createTextNode(String(c)));
  }
}

/** A list that renders only the rows in view (fixed row height), so 10,000 rows cost ~40 nodes. */
export function windowed(rowHeight, renderRow, opts = {}) {
  const rows = h('div', { class: 'rows' });
  const spacer = h('div', { class: 'spacer' }, rows);
  const el = h('div', { class: `win ${opts.class ?? ''}` }, spacer);
  let items = [];
  let queued = false;
  const paint = () => {
    queued = false;
    const top = el.scrollTop;
    const height = el.clientHeight || 600;
    const first = Math.max(0, Math.floor(top / rowHeight) - 4);
    const last = Math.min(items.length, Math.ceil((top + height) / rowHeight) + 4);
    spacer.style.height = `${items.length * rowHeight}px`;
    rows.style.transform = `translateY(${first * rowHeight}px)`;
    const out = [];
    for (let i = first; i < last; i++) {
      const row = renderRow(items[i], i);
      row.style.height = `${rowHeight}px`;
      out.push(row);
    }
    rows.replaceChildren(...out);
  };
  el.addEventListener('scroll', () => {
    if (!queued) {
      queued = true;
      requestAnimationFrame(paint);
    }
  });
  return {
    el,
    set(list) {
      items = list;
      paint();
    },
    get length() {
      return items.length;
    },
  };
}

/** A value as short one-line text (for table cells). */
export function brief(v, max = 160) {
  if (v === undefined || v === null) return '';
  const s = typeof v === 'string' ? v : JSON.stringify(v);
  return s.length > max ? `${s.slice(0, max - 1)}…` : s;
}

/** A bar: `part` of `whole` (over 100% shows full and marked over). */
export function bar(part, whole, label) {
  const fill = h('span', { class: 'fill' });
  const ratio = whole > 0 ? part / whole : part > 0 ? 1 : 0;
  fill.style.width = `${Math.min(1, ratio) * 100}%`;
  return h('span', { class: `bar${ratio > 1 ? ' over' : ratio > 0.8 ? ' near' : ''}`, title: label ?? '' }, fill);
}
