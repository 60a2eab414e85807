// The Insights page: filters, sorting, method columns, and (served) live attribution.
(function () {
  const D = JSON.parse(document.getElementById('pa-data').textContent);
  const $ = (id) => document.getElementById(id);
  const shown = new Set(D.methods.map((m) => m.name));
  const args = (o) => Object.entries(o).map(([k, v]) => k + '=' + JSON.stringify(v)).join(', ') || 'defaults';
  function fill(select, names) {
    names.forEach((n, i) => { const o = document.createElement('option'); o.value = i; o.textContent = n; select.appendChild(o); });
  }
  fill($('pa-pred'), D.classes); fill($('pa-label'), D.classes);
  const toggles = $('pa-methods');
  D.methods.forEach((m) => {
    const l = document.createElement('label'); const c = document.createElement('input');
    c.type = 'checkbox'; c.checked = true; c.className = 'pa-method-toggle'; c.dataset.method = m.name;
    c.addEventListener('change', () => { c.checked ? shown.add(m.name) : shown.delete(m.name); render(); });
    l.appendChild(c); l.appendChild(document.createTextNode(' ' + m.name)); toggles.appendChild(l);
  });
  function visible() {
    const p = $('pa-pred').value, t = $('pa-label').value, c = $('pa-correct').value;
    let rows = D.rows.filter((r) => (p === 'all' || r.pred == p) && (t === 'all' || r.label == t) &&
      (c === 'all' || (c === 'correct') === (r.pred === r.label)));
    const s = $('pa-sort').value;
    if (s === 'conf-desc') rows = rows.slice().sort((a, b) => b.conf - a.conf);
    if (s === 'conf-asc') rows = rows.slice().sort((a, b) => a.conf - b.conf);
    return rows;
  }
  function render() {
    const methods = D.methods.filter((m) => shown.has(m.name));
    const head = ['<tr><th>#</th><th>input</th><th>label</th><th>prediction</th>'];
    methods.forEach((m) => head.push('<th class="pa-method-col">' + esc(m.name) + '<span class="pa-args">' + esc(args(m.options)) + '</span></th>'));
    $('pa-head').innerHTML = head.join('') + '</tr>';
    const rows = visible();
    $('pa-body').innerHTML = rows.map((r) => {
      const ok = r.pred === r.label;
      const cells = methods.map((m) => '<td class="pa-attr" data-method="' + esc(m.name) + '">' + (D.cells[m.name][r.index] || '') + '</td>');
      return '<tr class="pa-row" data-index="' + r.index + '"><td>' + r.index + '</td><td>' + r.input + '</td><td>' +
        esc(D.classes[r.label]) + '</td><td class="' + (ok ? 'pa-right' : 'pa-wrong') + '">' + esc(D.classes[r.pred]) +
        ' (' + (100 * r.conf).toFixed(1) + '%)</td>' + cells.join('') + '</tr>';
    }).join('');
    $('pa-count').textContent = rows.length;
    document.body.dataset.rendered = String(Number(document.body.dataset.rendered || 0) + 1);
  }
  function esc(s) { const d = document.createElement('div'); d.textContent = String(s); return d.innerHTML; }
  ['pa-pred', 'pa-label', 'pa-correct', 'pa-sort'].forEach((id) => $(id).addEventListener('change', render));
  $('pa-total').textContent = D.rows.length;
  if (D.live) live();
  render();

  function live() {
    const panel = $('pa-live'); panel.hidden = false;
    const pick = $('pa-live-method');
    D.methods.forEach((m) => { const o = document.createElement('option'); o.value = m.name; o.textContent = m.name; pick.appendChild(o); });
    function fields() {
      const m = D.methods.find((x) => x.name === pick.value);
      $('pa-live-options').innerHTML = '';
      Object.entries(m.options).forEach(([k, v]) => {
        const l = document.createElement('label'); const i = document.createElement('input');
        i.dataset.option = k;
        i.dataset.kind = Array.isArray(v) ? 'json' : typeof v === 'boolean' ? 'bool' : Number.isInteger(v) ? 'int' : typeof v;
        if (typeof v === 'boolean') { i.type = 'checkbox'; i.checked = v; }
        else { i.type = typeof v === 'number' ? 'number' : 'text'; i.value = Array.isArray(v) ? JSON.stringify(v) : v; if (typeof v === 'number') i.step = 'any'; }
        i.id = 'pa-opt-' + k; l.appendChild(document.createTextNode(k + ' ')); l.appendChild(i);
        $('pa-live-options').appendChild(l);
      });
    }
    pick.addEventListener('change', fields); fields();
    $('pa-live-run').addEventListener('click', async () => {
      const indices = visible().map((r) => r.index);
      $('pa-live-status').className = ''; $('pa-live-status').textContent = 'computing...';
      try {
        const options = {};
        document.querySelectorAll('#pa-live-options input').forEach((i) => {
          const k = i.dataset.kind;
          options[i.dataset.option] = k === 'bool' ? i.checked : k === 'int' ? Number(i.value) :
            k === 'number' ? Number(i.value) : k === 'json' ? JSON.parse(i.value) : i.value;
        });
        const res = await fetch('api/attribute', { method: 'POST', headers: { 'Content-Type': 'application/json', 'X-Pyattrib-Token': new URLSearchParams(location.search).get('token') || '' },
          body: JSON.stringify({ method: pick.value, options: options, indices: indices }) });
        const body = await res.json();
        if (!res.ok) throw new Error(body.error || res.statusText);
        const m = D.methods.find((x) => x.name === pick.value);
        m.options = body.options; Object.assign(D.cells[m.name], body.cells);
        render();
        $('pa-live-status').textContent = 'updated ' + Object.keys(body.cells).length + ' examples: ' + m.name + ' (' + args(m.options) + ')';
        document.body.dataset.updates = String(Number(document.body.dataset.updates || 0) + 1);
      } catch (e) {
        $('pa-live-status').className = 'pa-error'; $('pa-live-status').textContent = 'error: ' + e.message;
      }
    });
  }
})();
