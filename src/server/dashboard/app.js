// Warden dashboard: plain browser JavaScript, no build step, no requests beyond this server.
// State comes from the SSE stream (/api/events); pids, restarts and reports are refreshed from /api/status.
'use strict';

(() => {
  const TOKEN_KEY = 'warden.token';
  /** How much history the charts show. */
  const WINDOW_MS = 3 * 60 * 1000;
  const MAX_SAMPLES = 2000;
  const MAX_LOG = 80;
  const COLORS = ['#2563eb', '#db2777', '#0d9488', '#9333ea', '#ca8a04', '#0891b2'];
  const EVENT_TYPES = ['transition', 'sample', 'launch', 'termination', 'stale-reaped', 'reap', 'alert', 'emergency', 'bundle'];
  const SVG = 'http://www.w3.org/2000/svg';
  const W = 640;
  const H = 220;
  const PAD = { left: 34, right: 14, top: 14, bottom: 26 };

  const app = {
    token: null,
    config: null,
    source: null,
    samples: [],
    cards: new Map(),
    terminations: new Map(),
    refreshTimer: null,
    drawPending: false,
    shutDown: false,
  };

  const $ = (id) => document.getElementById(id);

  // Creates an element; text goes through textContent only (event messages are never parsed as HTML).
  function h(tag, attrs = {}, ...children) {
    const node = document.createElement(tag);
    for (const [key, value] of Object.entries(attrs)) {
      if (key === 'text') node.textContent = value;
      else if (key === 'dataset') Object.assign(node.dataset, value);
      // CSSOM, not a style attribute: the page's CSP allows no inline styles.
      else if (key === 'vars') for (const [name, v] of Object.entries(value)) node.style.setProperty(name, v);
      else node.setAttribute(key, value);
    }
    for (const child of children) node.append(child);
    return node;
  }

  function svg(tag, attrs = {}, text) {
    const node = document.createElementNS(SVG, tag);
    for (const [key, value] of Object.entries(attrs)) node.setAttribute(key, String(value));
    if (text !== undefined) node.textContent = text;
    return node;
  }

  const clock = (at) => new Date(at).toLocaleTimeString([], { hour12: false });
  const colorOf = (index) => COLORS[index % COLORS.length];

  // ── API ───────────────────────────────────────────────────────────────────────────────────────────────────

  async function api(path, init = {}) {
    const response = await fetch(path, {
      ...init,
      headers: { authorization: `Bearer ${app.token}`, ...(init.body ? { 'content-type': 'application/json' } : {}) },
    });
    const body = await response.json().catch(() => null);
    if (response.status === 401) {
      logout('The token was refused. Paste the current one from the state directory.');
    }
    if (!response.ok) {
      const error = new Error(body?.error?.message ?? `HTTP ${response.status}`);
      error.status = response.status;
      error.code = body?.error?.code;
      throw error;
    }
    return { status: response.status, body };
  }

  // ── Token ─────────────────────────────────────────────────────────────────────────────────────────────────

  function showLogin(message) {
    $('main').hidden = true;
    $('forget').hidden = true;
    $('login').hidden = false;
    $('login-error').hidden = !message;
    $('login-error').textContent = message ?? '';
    $('token').focus();
  }

  function logout(message) {
    sessionStorage.removeItem(TOKEN_KEY);
    app.token = null;
    app.source?.close();
    app.source = null;
    setConnection('offline');
    showLogin(message);
  }

  async function login(token) {
    app.token = token;
    try {
      const { body } = await api('/api/config');
      app.config = body;
    } catch (error) {
      if (error.status !== 401) showLogin(`Cannot reach Warden: ${error.message}`);
      return;
    }
    // sessionStorage, not localStorage: the token lives as long as this tab (a reload keeps it), never on disk
    // for every later visitor of this origin.
    sessionStorage.setItem(TOKEN_KEY, token);
    $('login').hidden = true;
    $('main').hidden = false;
    $('forget').hidden = false;
    buildCards();
    drawCharts();
    connect();
    refreshStatus();
  }

  // ── Live events ───────────────────────────────────────────────────────────────────────────────────────────

  function setConnection(state) {
    const node = $('connection');
    node.dataset.state = state;
    node.textContent = state === 'shut-down' ? 'shut down' : state;
  }

  function connect() {
    app.source?.close();
    // EventSource cannot send headers: the token goes in the query. lastEventId=0 replays the server's recent history.
    const source = new EventSource(`/api/events?token=${encodeURIComponent(app.token)}&lastEventId=0`);
    app.source = source;
    source.onopen = () => setConnection('live');
    source.onerror = () => {
      if (app.shutDown) return;
      if (source.readyState === EventSource.CLOSED) {
        // Refused (the token changed) or the server is gone: ask /api/config which, then try again.
        setConnection('offline');
        setTimeout(() => {
          if (app.source !== source || app.shutDown) return;
          api('/api/config').then(connect, () => setTimeout(() => app.source === source && connect(), 3000));
        }, 2000);
      } else {
        setConnection('reconnecting');
      }
    };
    source.addEventListener('status', (message) => applyStatus(JSON.parse(message.data), true));
    for (const type of EVENT_TYPES) {
      source.addEventListener(type, (message) => onEvent(JSON.parse(message.data)));
    }
    source.addEventListener('shutdown', (message) => {
      app.shutDown = true;
      source.close();
      setConnection('shut-down');
      banner('The supervisor has shut down. Every instance was stopped.', 'info');
      for (const card of app.cards.values()) for (const button of card.buttons.values()) button.disabled = true;
      log(JSON.parse(message.data).at, 'supervisor', 'shut down', 'info');
    });
  }

  function onEvent(event) {
    switch (event.type) {
      case 'sample':
        return addSample(event.sample);
      case 'transition':
        setState(event.instance, event.to, event.detail);
        if (event.from !== event.to) log(event.at, event.instance, `${event.from ?? '—'} → ${event.to}`, 'transition');
        return scheduleRefresh();
      case 'launch':
        return log(event.at, event.instance, `launched pid ${event.pid}`, 'info');
      case 'termination':
        app.terminations.set(event.instance, { reason: event.reason, report: event.report, at: event.at });
        renderReport(event.instance);
        return log(event.at, event.instance, `stopped (${event.reason}): ${summarizeReport(event.report)}`, event.report.survivors.length > 0 ? 'error' : 'info');
      case 'alert':
        if (event.source === 'watchdog') setLevel(event.level);
        log(event.at, event.instance ?? event.source, event.message, event.level);
        return scheduleRefresh();
      case 'emergency':
        banner(`Emergency (${event.level}): ${event.reason}. Restarts are held until released.`, 'error');
        log(event.at, 'watchdog', `emergency: ${event.reason}`, 'emergency');
        return scheduleRefresh();
      case 'bundle':
        return log(event.at, 'supervisor', `diagnostic bundle written to ${event.path}`, 'info');
      case 'reap': {
        const count = (action) => event.report.entries.filter((entry) => entry.action === action).length;
        const reaped = count('reaped');
        const alone = count('left-alone');
        if (reaped) log(event.at, 'supervisor', `reaped ${reaped} launch(es) an earlier run left behind`, 'warning');
        if (alone) log(event.at, 'supervisor', `left ${alone} marked tree(s) of other supervisors alone`, 'info');
        return undefined;
      }
      case 'stale-reaped':
        return log(event.at, event.instance, `reaped ${event.pids.length} stale process(es) (${event.marker})`, 'warning');
      default:
        return undefined;
    }
  }

  function scheduleRefresh() {
    clearTimeout(app.refreshTimer);
    app.refreshTimer = setTimeout(refreshStatus, 150);
  }

  async function refreshStatus() {
    if (!app.token || app.shutDown) return;
    try {
      applyStatus((await api('/api/status')).body, false);
    } catch {
      // the stream's onerror says what is wrong
    }
  }

  // ── Status ────────────────────────────────────────────────────────────────────────────────────────────────

  // `fromStream`: the snapshot came in order with the events, so it may set states (a fetched one could be older).
  function applyStatus(status, fromStream) {
    for (const instance of status.instances) {
      const card = app.cards.get(instance.id);
      if (!card) continue;
      if (fromStream) setState(instance.id, instance.state, instance.detail);
      card.status = instance;
      card.fields.python.textContent = instance.counts.python;
      card.fields.shell.textContent = instance.counts.shell;
      card.fields.restarts.textContent = instance.restarts;
      card.fields.pid.textContent = instance.pid ?? '—';
      card.fields.shellPid.textContent = instance.shellPid ?? '—';
      card.fields.pythonPid.textContent = instance.pythonPid ?? '—';
      card.error.hidden = !instance.lastError;
      card.error.textContent = instance.lastError ? `Last error: ${instance.lastError}` : '';
      renderReport(instance.id);
    }
    setLevel(status.watchdog.level);
    if (status.watchdog.counts) setTotals(status.watchdog.counts);
    $('release').hidden = !status.holdRestarts;
  }

  function setLevel(level) {
    const node = $('watchdog');
    node.dataset.level = level;
    node.textContent = `watchdog ${level}`;
  }

  function setTotals(counts) {
    const extra = [counts.stale ? `${counts.stale} stale` : '', counts.foreign ? `${counts.foreign} foreign` : ''].filter(Boolean);
    $('totals').textContent = `python ${counts.python} · shell ${counts.shell}${extra.length ? ` · ${extra.join(' · ')}` : ''}`;
  }

  function setState(id, state, detail) {
    const card = app.cards.get(id);
    if (!card) return;
    if (card.state.textContent !== state) card.state.textContent = state;
    card.state.dataset.state = state;
    // The full state path (`spawning.awaitingHealth`) only where it says more than the badge.
    card.detail.textContent = detail && detail !== state ? detail : '';
    const can = {
      start: state === 'idle' || state === 'crashed',
      stop: state !== 'idle',
      restart: state !== 'failed',
      reset: state === 'failed',
    };
    for (const [action, button] of card.buttons) button.disabled = app.shutDown || !can[action];
  }

  // ── Cards ─────────────────────────────────────────────────────────────────────────────────────────────────

  function buildCards() {
    const container = $('instances');
    container.replaceChildren();
    app.cards.clear();
    app.config.instances.forEach((instance, index) => {
      const state = h('span', { class: 'state', dataset: { state: 'idle' }, text: 'idle' });
      const detail = h('span', { class: 'detail' });
      const fields = {};
      const fact = (key, label) => {
        fields[key] = h('dd', { dataset: { field: key }, text: '—' });
        return h('div', {}, h('dt', { text: label }), fields[key]);
      };
      const report = h('p', { dataset: { field: 'report' }, text: 'No stop yet.' });
      const error = h('p', { class: 'error', hidden: '' });
      const buttons = new Map();
      const actions = h('div', { class: 'actions' });
      for (const action of ['start', 'stop', 'restart', 'reset']) {
        const button = h('button', { type: 'button', dataset: { action }, text: action[0].toUpperCase() + action.slice(1) });
        button.addEventListener('click', () => command(instance.id, action, button));
        buttons.set(action, button);
        actions.append(button);
      }
      const card = h(
        'article',
        { class: 'card', dataset: { instance: instance.id }, vars: { '--swatch': colorOf(index) } },
        h('header', {}, h('h2', { text: instance.id }), state, detail),
        h('dl', { class: 'facts' }, fact('python', 'Python'), fact('shell', 'Shell'), fact('restarts', 'Restarts'), fact('pid', 'Root pid'), fact('shellPid', 'Shell pid'), fact('pythonPid', 'Python pid')),
        h('section', { class: 'report' }, h('h3', { text: 'Last termination' }), report),
        error,
        actions,
      );
      container.append(card);
      app.cards.set(instance.id, { node: card, state, detail, fields, report, error, buttons, status: null });
      setState(instance.id, 'idle', 'idle');
    });
  }

  const SIGNAL_RANK = { none: 0, SIGTERM: 1, SIGKILL: 2 };

  function summarizeReport(report) {
    const roles = {};
    for (const entry of report.killed) roles[entry.role] = (roles[entry.role] ?? 0) + 1;
    const byRole = Object.entries(roles).map(([role, count]) => `${count} ${role}`).join(', ');
    return `killed ${report.killed.length}${byRole ? ` (${byRole})` : ''}, survivors ${report.survivors.length}`;
  }

  function renderReport(id) {
    const card = app.cards.get(id);
    if (!card) return;
    const seen = app.terminations.get(id);
    const report = seen?.report ?? card.status?.lastReport;
    if (!report) return;
    const strongest = report.killed.reduce((top, entry) => ((SIGNAL_RANK[entry.signal] ?? 0) > (SIGNAL_RANK[top] ?? 0) ? entry.signal : top), 'none');
    const survivors = report.survivors.length;
    card.report.replaceChildren(
      `${seen ? `${seen.reason} at ${clock(seen.at)} · ` : ''}killed ${report.killed.length}`,
      report.killed.length ? ` (strongest signal ${strongest === 'none' ? 'none: exited on request' : strongest})` : '',
      ' · survivors ',
      h('span', { class: survivors === 0 ? 'good' : 'bad', dataset: { field: 'survivors' }, text: String(survivors) }),
      ` · escalated ${report.escalated ? 'yes' : 'no'} · ${Math.round(report.durationMs)} ms`,
      survivors ? h('span', { class: 'bad', text: ` — ${report.survivors.map((entry) => `${entry.name} ${entry.pid}`).join(', ')}` }) : '',
    );
  }

  async function command(id, action, button) {
    button.disabled = true;
    try {
      const { status } = await api(`/api/instances/${encodeURIComponent(id)}/${action}`, { method: 'POST' });
      toast(status === 202 ? `${action} ${id}: accepted` : `${action} ${id}: done`);
    } catch (error) {
      toast(`${action} ${id}: ${error.message}`, 'error');
    } finally {
      const card = app.cards.get(id);
      if (card) setState(id, card.state.dataset.state, card.detail.textContent);
    }
  }

  async function releaseHold() {
    try {
      applyStatus((await api('/api/reset', { method: 'POST' })).body, false);
      $('banner').hidden = true;
      toast('Restart hold released');
    } catch (error) {
      toast(`Release: ${error.message}`, 'error');
    }
  }

  // ── Charts ────────────────────────────────────────────────────────────────────────────────────────────────

  function addSample(sample) {
    const last = app.samples[app.samples.length - 1];
    if (last && sample.at <= last.at) return;
    const per = {};
    for (const [id, counts] of Object.entries(sample.perInstance)) per[id] = { python: counts.python, shell: counts.shell };
    app.samples.push({ at: sample.at, per, total: { python: sample.counts.python, shell: sample.counts.shell } });
    const cutoff = sample.at - WINDOW_MS;
    while (app.samples.length > MAX_SAMPLES || (app.samples[0] && app.samples[0].at < cutoff)) app.samples.shift();
    for (const [id, counts] of Object.entries(per)) {
      const card = app.cards.get(id);
      if (!card) continue;
      card.fields.python.textContent = counts.python;
      card.fields.shell.textContent = counts.shell;
    }
    setTotals(sample.counts);
    if (!app.drawPending) {
      app.drawPending = true;
      requestAnimationFrame(() => {
        app.drawPending = false;
        drawCharts();
      });
    }
  }

  function drawCharts() {
    if (!app.config) return;
    drawChart('python');
    drawChart('shell');
  }

  // One chart: a step line per instance (and the total when there are several), warning and critical drawn as lines.
  function drawChart(role) {
    const figure = $(`chart-${role}`);
    const root = figure.querySelector('svg');
    const ids = app.config.instances.map((instance) => instance.id);
    const warning = app.config.watchdog.warning[role];
    const critical = app.config.watchdog.critical[role];
    const samples = app.samples;
    const series = ids.map((id, index) => ({ label: id, color: colorOf(index), values: samples.map((s) => s.per[id]?.[role] ?? 0) }));
    if (ids.length > 1) series.push({ label: 'total', color: '#64748b', total: true, values: samples.map((s) => s.total[role]) });

    const peak = Math.max(0, ...series.flatMap((entry) => entry.values));
    const yMax = Math.max(critical + 1, peak + 1);
    const step = yMax <= 6 ? 1 : yMax <= 12 ? 2 : yMax <= 30 ? 5 : Math.ceil(yMax / 6 / 5) * 5;
    const top = Math.ceil(yMax / step) * step;
    const plotW = W - PAD.left - PAD.right;
    const plotH = H - PAD.top - PAD.bottom;
    const y = (value) => PAD.top + plotH - (value / top) * plotH;
    const end = samples.length ? samples[samples.length - 1].at : Date.now();
    const start = samples.length ? Math.max(samples[0].at, end - WINDOW_MS) : end - WINDOW_MS;
    const span = Math.max(end - start, 1000);
    const x = (at) => PAD.left + ((at - start) / span) * plotW;

    const nodes = [];
    for (let value = 0; value <= top; value += step) {
      nodes.push(svg('line', { class: 'grid', x1: PAD.left, x2: W - PAD.right, y1: y(value), y2: y(value) }));
      nodes.push(svg('text', { class: 'axis', x: PAD.left - 6, y: y(value) + 4, 'text-anchor': 'end' }, String(value)));
    }
    if (samples.length) {
      for (const [at, anchor] of [[start, 'start'], [start + span / 2, 'middle'], [end, 'end']]) {
        nodes.push(svg('text', { class: 'axis', x: x(at), y: H - 8, 'text-anchor': anchor }, clock(at)));
      }
    }
    for (const [name, limit] of [['warning', warning], ['critical', critical]]) {
      nodes.push(svg('line', { class: `threshold ${name}`, x1: PAD.left, x2: W - PAD.right, y1: y(limit), y2: y(limit) }));
      nodes.push(svg('text', { class: `threshold-label ${name}`, x: W - PAD.right - 2, y: y(limit) - 4, 'text-anchor': 'end' }, `${name} > ${limit}`));
    }
    if (samples.length === 0) {
      nodes.push(svg('text', { class: 'empty', x: W / 2, y: H / 2, 'text-anchor': 'middle' }, 'waiting for samples…'));
    }
    for (const entry of series) {
      if (samples.length === 0) break;
      let d = `M${x(samples[0].at).toFixed(1)},${y(entry.values[0]).toFixed(1)}`;
      for (let index = 1; index < samples.length; index += 1) {
        d += `H${x(samples[index].at).toFixed(1)}V${y(entry.values[index]).toFixed(1)}`;
      }
      nodes.push(svg('path', { class: `series${entry.total ? ' total' : ''}`, d, stroke: entry.color, 'data-series': entry.label }));
      const last = samples.length - 1;
      nodes.push(svg('circle', { cx: x(samples[last].at), cy: y(entry.values[last]), r: 3, fill: entry.color }));
    }
    root.replaceChildren(...nodes);
    root.dataset.points = String(samples.length);

    const legend = figure.querySelector('.legend');
    legend.replaceChildren(
      ...series.map((entry) => h('span', { class: entry.total ? 'dashed' : '', vars: { '--swatch': entry.color }, text: entry.label })),
      h('span', { class: 'dashed', vars: { '--swatch': 'var(--warning)' }, text: `warning above ${warning}` }),
      h('span', { class: 'dashed', vars: { '--swatch': 'var(--emergency)' }, text: `critical above ${critical}` }),
    );
  }

  // ── Log, banner, toast ────────────────────────────────────────────────────────────────────────────────────

  function log(at, who, text, kind) {
    const list = $('log');
    list.prepend(h('li', { dataset: { kind } }, h('time', { text: clock(at) }), h('span', { text: `${who}: ${text}` })));
    while (list.children.length > MAX_LOG) list.lastElementChild.remove();
  }

  function banner(text, kind) {
    const node = $('banner');
    node.textContent = text;
    node.dataset.kind = kind;
    node.hidden = false;
  }

  let toastTimer = null;
  function toast(text, kind = 'info') {
    const node = $('toast');
    node.textContent = text;
    node.dataset.kind = kind;
    node.hidden = false;
    clearTimeout(toastTimer);
    toastTimer = setTimeout(() => {
      node.hidden = true;
    }, 4000);
  }

  // ── Start ─────────────────────────────────────────────────────────────────────────────────────────────────

  $('login-form').addEventListener('submit', (event) => {
    event.preventDefault();
    const token = $('token').value.trim();
    if (token) login(token);
  });
  $('forget').addEventListener('click', () => logout());
  $('release').addEventListener('click', releaseHold);
  setInterval(refreshStatus, 10_000);

  // An older dashboard kept the token in localStorage: drop it.
  localStorage.removeItem(TOKEN_KEY);
  const saved = sessionStorage.getItem(TOKEN_KEY);
  if (saved) login(saved);
  else showLogin();
})();
