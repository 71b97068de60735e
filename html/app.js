/*
 * hourglass dashboard: one view at a time, named by the URL's fragment:
 * #jobs (a job's executions, trigger / pause / resume), #queue, #dead
 * (retry, purge, one or all matching), #timeline (the last hour and
 * the next, a picture), #status (this instance, its
 * workers by state); read again on each event of
 * /api/v1/events. Vanilla JS, nothing fetched from anywhere but this
 * daemon (the server's Content-Security-Policy says so).
 *
 * The token is typed once and kept in sessionStorage, never in a URL: it
 * goes in an Authorization header. EventSource cannot send headers, so
 * the events are read with fetch() and a ReadableStream reader instead.
 * The token's role comes from GET /status: a button is made only for
 * what the role may do (execute: trigger, pause, resume, retry; write:
 * purge), so a read token sees none.
 */
'use strict';

const KEY = 'hourglass.token';
const $ = (sel) => document.querySelector(sel);
let selected = null;        // the job whose executions are shown
let stream = null;          // the events' AbortController
let role = 'read';          // the token's, from /status
const outputs = new Map();  // a finished execution's output, by id

const RANKS = { read: 1, execute: 2, write: 3, admin: 4 };
function can(need) { return RANKS[role] >= RANKS[need]; }

function token() { return sessionStorage.getItem(KEY); }

function say(text) { $('#error').textContent = text || ''; }

async function api(method, path, body) {
  const headers = { 'Authorization': 'Bearer ' + token() };
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  const resp = await fetch('/api/v1' + path, {
    method, cache: 'no-store', headers,
    body: body === undefined ? undefined : JSON.stringify(body)
  });
  const answer = await resp.json().catch(() => ({}));
  if (!resp.ok) {
    const err = new Error(answer.error ? answer.error.message
                                       : resp.statusText);
    err.status = resp.status;
    throw err;
  }
  return answer;
}

/* A time in ZONE (the daemon's when null), the browser's on hover. */
function inZone(text, zone) {
  const t = document.createElement('time');
  const d = new Date(text);
  t.dateTime = text;
  t.title = d.toLocaleString() + ' here';
  t.textContent = new Intl.DateTimeFormat(undefined, {
    weekday: 'short', year: 'numeric', month: 'short', day: 'numeric',
    hour: '2-digit', minute: '2-digit', hourCycle: 'h23',
    timeZone: zone || undefined }).format(d) + (zone ? ' ' + zone : '');
  return t;
}

const DAYS = ['Sunday', 'Monday', 'Tuesday', 'Wednesday', 'Thursday',
              'Friday', 'Saturday'];
const MACROS = {
  '@yearly': 'at 00:00 on 1 January', '@annually': 'at 00:00 on 1 January',
  '@monthly': 'at 00:00 on day 1 of every month',
  '@weekly': 'at 00:00 every Sunday', '@daily': 'at 00:00 every day',
  '@midnight': 'at 00:00 every day', '@hourly': 'at minute 0 of every hour'
};

/* A cron expression in words for the common shapes, null for the rest
 * (shown as written then). */
function cronWords(expr) {
  const e = expr.trim();
  if (Object.hasOwn(MACROS, e)) return MACROS[e];
  const every = /^@every\s+(\S+)$/.exec(e);
  if (every) return 'every ' + every[1];
  let f = e.split(/\s+/);
  if (f.length === 6 && f[0] === '0') f = f.slice(1);
  if (f.length !== 5) return null;
  const [mi, h, dom, mon, dow] = f;
  const num = /^\d+$/;
  const step = (x) => (/^\*\/(\d+)$/.exec(x) || [])[1];
  const pad = (x) => x.padStart(2, '0');
  let time;
  if (num.test(mi) && num.test(h)) {
    time = 'at ' + pad(h) + ':' + pad(mi);
  } else if (num.test(mi) && h === '*') {
    time = 'at minute ' + mi + ' of every hour';
  } else if (step(mi) && h === '*') {
    time = 'every ' + step(mi) + ' minutes';
  } else if (mi === '*' && h === '*') {
    time = 'every minute';
  } else if (num.test(mi) && step(h)) {
    time = 'at minute ' + mi + ' every ' + step(h) + ' hours';
  } else return null;
  let days;
  if (dom === '*' && mon === '*' && dow === '*') {
    days = num.test(h) ? 'every day' : '';
  } else if (dom === '*' && mon === '*' && dow === '1-5') days = 'on weekdays';
  else if (dom === '*' && mon === '*' && /^[0-7](,[0-7])*$/.test(dow)) {
    days = 'every ' + dow.split(',').map((d) => DAYS[d % 7]).join(', ');
  } else if (num.test(dom) && mon === '*' && dow === '*') {
    days = 'on day ' + dom + ' of every month';
  } else return null;
  return days ? time + ' ' + days : time;
}

/* A job's schedule in words, with its zone. */
function scheduleWords(def) {
  const zone = def.timezone || "the daemon's zone";
  if (def.schedule) {
    return (cronWords(def.schedule) || 'cron "' + def.schedule + '"')
           + ', ' + zone;
  }
  if (def.every) return 'every ' + def.every;
  if (def.at) return 'once, at ' + def.at;
  return 'only when triggered or queued';
}

/* A time in the browser's zone; the UTC instant on hover. */
function when(text) {
  if (!text) return document.createTextNode('—');
  const t = document.createElement('time');
  t.dateTime = text;
  t.title = text;
  t.textContent = new Date(text).toLocaleString();
  return t;
}

/* A fire time as the API writes it for a job (its zone's wall time and
 * offset): shown as that wall time, the browser's on hover. */
function jobTime(text) {
  const t = document.createElement('time');
  const m = /^(\d{4}-\d\d-\d\d)T(\d\d:\d\d)(?::\d\d)?(Z|[+-]\d\d:\d\d)/
    .exec(text);
  t.dateTime = text;
  t.title = new Date(text).toLocaleString() + ' here';
  t.textContent = m ? m[1] + ' ' + m[2] + ' ' + (m[3] === 'Z' ? 'UTC'
                                                               : m[3])
                    : text;
  return t;
}

/* A job's next fire times: the first, the other four folded under it. */
function fireList(fires) {
  if (!fires || fires.length === 0) return document.createTextNode('—');
  const d = document.createElement('details');
  d.className = 'fires';
  const s = document.createElement('summary');
  s.appendChild(jobTime(fires[0]));
  d.appendChild(s);
  const ol = document.createElement('ol');
  for (const f of fires.slice(1)) {
    ol.appendChild(document.createElement('li')).appendChild(jobTime(f));
  }
  d.appendChild(ol);
  return d;
}

function cell(row, content) {
  const td = row.insertCell();
  if (content instanceof Node) td.appendChild(content);
  else td.textContent = content == null ? '' : String(content);
  return td;
}

/* An execution's output, read by fillOutputs(). */
function output(id) {
  const pre = document.createElement('pre');
  pre.textContent = outputs.get(id) || '';
  return pre;
}

function button(label, onclick) {
  const b = document.createElement('button');
  b.type = 'button';
  b.className = 'action ' + label.split(' ')[0].toLowerCase();
  b.textContent = label;
  b.addEventListener('click', onclick);
  return b;
}

/* An action's request; the view is read again after it. */
async function act(what, method, path, body) {
  try {
    await api(method, path, body);
    say('');
  } catch (e) {
    say(what + ': ' + e.message);
  }
  refresh();
}

function jobAct(id, what) {
  return () => act(what + ' ' + id, 'POST',
                   '/jobs/' + encodeURIComponent(id) + '/' + what);
}

/* The jobs filter: status, type and tag go to the server; the id search
 * is a substring the server has no filter for, so it is applied here. */
function jobQuery() {
  const q = new URLSearchParams({ page_size: '500' });
  for (const [key, sel] of [['status', '#f-status'], ['type', '#f-type'],
                            ['tag', '#f-tag']]) {
    const v = $(sel).value.trim();
    if (v) q.set(key, v);
  }
  return '/jobs?' + q;
}

/* Loads overlap (an event, an action, a keystroke each start one): only
 * the latest of each kind draws, and it draws after its last await, so
 * that two never interleave their rows. ask(KIND) gives the check. */
const asked = {};
function ask(kind) {
  const mine = (asked[kind] || 0) + 1;
  asked[kind] = mine;
  return () => asked[kind] === mine;
}

async function loadJobs() {
  const latest = ask('jobs');
  const page = await api('GET', jobQuery());
  if (!latest()) return;
  const search = $('#f-id').value.trim();
  const jobs = page.jobs.filter((j) => j.id.includes(search));
  $('#jobs-total').textContent = jobs.length + ' of ' + page.total;
  const body = $('#jobs tbody');
  body.replaceChildren();
  for (const j of jobs) {
    const row = body.insertRow();
    if (j.id === selected) row.className = 'selected';
    const open = document.createElement('a');
    open.href = '#jobs';
    open.textContent = j.id;
    open.addEventListener('click', (ev) => {
      ev.preventDefault();
      selected = j.id;
      refresh();
    });
    cell(row, open);
    cell(row, j.type);
    cell(row, j.tags.join(', '));
    const last = cell(row, j.last_status || 'never ran');
    last.className = 'last ' + (j.last_status || 'never');
    if (j.last_run) last.title = 'finished ' + new Date(j.last_run).toLocaleString();
    cell(row, j.success_rate == null ? '—'
              : Math.round(100 * j.success_rate) + ' % of ' + j.runs)
      .className = 'rate';
    cell(row, j.p95_duration_ms == null ? '—' : duration(j.p95_duration_ms))
      .className = 'p95';
    cell(row, fireList(j.next_fires)).className = 'next';
    cell(row, (j.paused ? 'paused' : 'active')
              + (j.running > 0 ? ', running ' + j.running : ''))
      .className = 'state';
    const actions = cell(row, '');
    if (can('execute')) {
      actions.append(button('Trigger', jobAct(j.id, 'trigger')),
                     j.paused ? button('Resume', jobAct(j.id, 'resume'))
                              : button('Pause', jobAct(j.id, 'pause')));
      if (j.running > 0) actions.append(button('Stop', jobAct(j.id, 'stop')));
    }
  }
}

/* The selected job: its schedule in words, next fires, statistics and
 * latest executions. */
async function loadJob() {
  if (selected === null) return;
  const path = '/jobs/' + encodeURIComponent(selected);
  const latest = ask('job');
  const [job, page] = await Promise.all([
    api('GET', path), api('GET', path + '/executions?page_size=20')]);
  await fillOutputs(page.executions);
  if (!latest()) return;
  const def = job.definition || {};
  const zone = def.timezone || null;
  const st = job.stats;
  $('#job-title').textContent = job.id;
  facts('#job-facts', [
    ['Schedule', scheduleWords(def)],
    ['Last run', st.last_run ? when(st.last_run) : null],
    ['Last status', st.last_status],
    ['Runs', st.runs],
    ['Success rate', st.runs ? Math.round(100 * st.successes / st.runs)
                               + ' %' : null],
    ['p95 duration', st.runs ? st.p95_duration_ms + ' ms' : null]]);
  const fires = $('#next-fires');
  fires.replaceChildren();
  for (const f of job.next_fires || []) {
    const li = document.createElement('li');
    li.appendChild(inZone(f, zone));
    fires.appendChild(li);
  }
  $('#runs-section').hidden = false;
  $('#runs-title').textContent = 'Executions of ' + selected;
  const body = $('#runs tbody');
  body.replaceChildren();
  for (const x of page.executions) {
    const row = body.insertRow();
    cell(row, when(x.started_at || x.scheduled_for));
    cell(row, x.status).className = x.status;
    // the attempts of one run share its first attempt's id
    cell(row, x.attempt > 1 && x.run_id
      ? x.attempt + ' of run ' + x.run_id.slice(0, 8) : x.attempt)
      .title = x.run_id || '';
    cell(row, x.duration_ms == null ? '' : x.duration_ms + ' ms');
    cell(row, x.signal ? 'signal ' + x.signal : x.exit_code);
    cell(row, x.max_rss_kb == null ? '' : x.max_rss_kb + ' KiB, '
              + (x.cpu_user_ms + x.cpu_sys_ms) + ' ms CPU');
    cell(row, output(x.id));
  }
}

/* POST /queue from the form: a job, a JSON payload, a time, a priority. */
function enqueue() {
  const body = { job: $('#q-job').value.trim(),
                 priority: $('#q-priority').value };
  const text = $('#q-payload').value.trim();
  const at = $('#q-at').value;
  if (text) {
    try {
      body.payload = JSON.parse(text);
    } catch (e) {
      say('payload: not JSON (' + e.message + ')');
      return;
    }
  }
  // datetime-local is the browser's zone; the API takes RFC 3339
  if (at) body.run_at = new Date(at).toISOString().replace(/\.\d+Z$/, 'Z');
  act('enqueue ' + body.job, 'POST', '/queue', body);
}

/* What waits to run: due now or later, and why it waits. */
async function loadQueue() {
  const latest = ask('queue');
  const page = await api('GET', '/queue?page_size=500');
  if (!latest()) return;
  $('#queue-total').textContent = page.total + ' queued';
  $('#enqueue').hidden = !can('execute');
  const body = $('#queue tbody');
  body.replaceChildren();
  for (const q of page.executions) {
    const row = body.insertRow();
    cell(row, q.job_id);
    cell(row, when(q.due));
    cell(row, q.waiting);
    cell(row, q.priority);
    cell(row, q.triggered_by);
    cell(row, q.attempt);
    cell(row, q.payload_bytes + ' bytes');
    const actions = cell(row, '');
    if (can('execute')) {
      actions.append(button('Remove', () => act(
        'remove ' + q.id, 'DELETE', '/queue/' + encodeURIComponent(q.id))));
    }
  }
}

/* Dead letters, of one job or all; retry and purge one by one or all
 * that match the filter (the server applies the same filter). */
async function loadDead() {
  const job = $('#dead-job').value.trim();
  const latest = ask('dead');
  const page = await api('GET', '/dead?page_size=500'
                         + (job ? '&job=' + encodeURIComponent(job) : ''));
  await fillOutputs(page.executions);
  if (!latest()) return;
  $('#dead-total').textContent = page.total + ' dead';
  const filter = job ? { job } : {};
  const bulk = $('#dead-bulk');
  bulk.replaceChildren();
  if (page.total > 0 && can('execute')) {
    bulk.append(button('Retry all ' + page.total, () => act(
      'retry all', 'POST', '/dead/retry', filter)));
  }
  if (page.total > 0 && can('write')) {
    bulk.append(button('Purge all ' + page.total, () => {
      if (confirm('Purge ' + page.total + ' dead executions'
                  + (job ? ' of ' + job : '') + '?')) {
        act('purge all', 'POST', '/dead/purge', filter);
      }
    }));
  }
  const body = $('#dead tbody');
  body.replaceChildren();
  for (const x of page.executions) {
    const row = body.insertRow();
    const one = '/dead/' + encodeURIComponent(x.id);
    cell(row, x.job_id);
    cell(row, when(x.finished_at));
    cell(row, x.attempt);
    cell(row, x.error);
    cell(row, output(x.id));
    const actions = cell(row, '');
    if (can('execute')) {
      actions.append(button('Retry', () => act(
        'retry ' + x.id, 'POST', one + '/retry')));
    }
    if (can('write')) {
      actions.append(button('Purge', () => act(
        'purge ' + x.id, 'DELETE', one)));
    }
  }
}

/* A table of NAME -> count, in the object's order. */
function counts(table, obj) {
  const body = $(table + ' tbody');
  body.replaceChildren();
  for (const [name, n] of Object.entries(obj)) {
    const row = body.insertRow();
    cell(row, name).className = name;
    cell(row, n);
  }
}

/* A <dl> of [term, text or node] pairs. */
function facts(sel, pairs) {
  const dl = $(sel);
  dl.replaceChildren();
  for (const [term, value] of pairs) {
    const dt = document.createElement('dt');
    const dd = document.createElement('dd');
    dt.textContent = term;
    if (value instanceof Node) dd.appendChild(value);
    else dd.textContent = value == null ? '—' : String(value);
    dl.append(dt, dd);
  }
}

/* The instance at a glance: GET /status. */
async function loadStatus() {
  const latest = ask('status');
  const st = await api('GET', '/status');
  if (!latest()) return;
  facts('#instance', [
    ['Version', st.version], ['Process', st.pid],
    ['Started', when(new Date(st.started_at_ms).toISOString())],
    ['Up for', words(st.uptime_s)], ['Configuration', st.configuration],
    ['Reloads', st.reloads.ok + ' done, ' + st.reloads.failed + ' failed'],
    ['Jobs', st.jobs], ['Queue depth', st.queue_depth],
    ['Your token', st.token.name + ' (' + st.token.role + ')']]);
  counts('#workers', Object.assign({ configured: st.workers_configured },
                                   st.workers));
  counts('#ended', st.executions_ended);
  peers(st.cluster);
}

/* In a cluster: every instance's lease as the store last showed it, this
 * one and the leader marked; with PostgreSQL a dead one says who took
 * its work over (Redis has no takeover, no renewal times). Nothing
 * outside a cluster. */
function peers(cluster) {
  $('#cluster-section').hidden = !cluster;
  if (!cluster) return;
  const redis = cluster.coordinator === 'redis';
  $('#cluster-note').textContent = 'This is instance ' + cluster.instance
    + ' (term ' + cluster.term + '); a lease lasts '
    + duration(cluster.lease_ms) + ' and is renewed every third of it.'
    + (redis ? ' Coordinated through Redis.' : '');
  const body = $('#peers tbody');
  body.replaceChildren();
  for (const p of cluster.instances || []) {
    const row = body.insertRow();
    const me = p.name === cluster.instance;
    if (me) row.className = 'selected';
    cell(row, p.name + (me ? ' (this one)' : '')
              + (p.leader ? ' (leader)' : ''));
    cell(row, p.live ? 'live' : 'dead').className = p.live ? 'succeeded'
                                                             : 'dead';
    cell(row, p.lease_left_ms > 0 ? duration(p.lease_left_ms)
              : p.lease_left_ms == null || redis ? 'lapsed'
              : 'lapsed ' + duration(-p.lease_left_ms) + ' ago');
    cell(row, p.renewed_ms_ago == null ? '\u2014'
              : duration(Math.max(0, p.renewed_ms_ago)) + ' ago');
    cell(row, p.term == null ? '\u2014' : p.term);
    cell(row, p.taken_by || (p.live || redis ? '' : 'not yet'));
  }
}

/* A duration in seconds, in words ("2 h 5 min"). */
function words(s) {
  const parts = [];
  for (const [unit, size] of [['d', 86400], ['h', 3600], ['min', 60]]) {
    if (s >= size) {
      parts.push(Math.floor(s / size) + ' ' + unit);
      s %= size;
    }
  }
  if (parts.length === 0 || s > 0) parts.push(s + ' s');
  return parts.join(' ');
}

/* The timeline: the last hour's executions and the next hour's fire
 * times, one lane per job. The jobs list brings each job's next fires;
 * one request a lane brings its executions of the hour (a window on
 * when they were scheduled: `since`), for at most TL_LANES lanes. */
const HOUR_MS = 3600e3;
const TL_LANES = 50;
// an execution may start a while after it was scheduled (a queue, a
// busy worker): the window reaches this far before the hour
const TL_WAIT_MS = 3600e3;
const TL = { label: 130, hour: 480, lane: 26, top: 22, bottom: 6 };

function svg(name, attrs, parent) {
  // the namespace from the page's own <svg>: no URL in the script
  const el = document.createElementNS($('#timeline').namespaceURI, name);
  for (const [k, v] of Object.entries(attrs)) el.setAttribute(k, v);
  if (parent) parent.appendChild(el);
  return el;
}

/* A job's executions that started in the last hour (or still run). */
async function lastHour(id, since) {
  const page = await api('GET', '/jobs/' + encodeURIComponent(id)
    + '/executions?page_size=500&since=' + (since - TL_WAIT_MS));
  return page.executions.filter((x) => {
    const at = Date.parse(x.started_at || '');
    return !Number.isNaN(at) && at >= since;  // not queued, skipped, missed
  });
}

function duration(ms) {
  return ms < 1000 ? ms + ' ms' : (ms / 1000).toFixed(1) + ' s';
}

/* A mark's words: what the hover title and the detail line say. */
function markWords(x, ms) {
  const end = x.signal ? 'signal ' + x.signal
    : x.exit_code == null ? 'no exit code yet' : 'exit code ' + x.exit_code;
  return x.job_id + ': ' + x.status + ', started '
    + new Date(x.started_at).toLocaleString() + ', '
    + (x.duration_ms == null ? 'running for ' + duration(ms)
                             : 'took ' + duration(x.duration_ms))
    + ', ' + end;
}

/* Something focusable with a title; its words go to the detail line
 * when it is hovered or focused. */
function focusable(g, words) {
  g.setAttribute('tabindex', '0');
  g.setAttribute('role', 'img');
  g.setAttribute('aria-label', words);
  svg('title', {}, g).textContent = words;
  const tell = () => { $('#timeline-detail').textContent = words; };
  g.addEventListener('focus', tell);
  g.addEventListener('mouseenter', tell);
}

/* Runs of one lane that overlap in time (overlap = allow, queue's
 * drained runs, a trigger during a run) each get a row of the lane, so
 * that none hides another: the first row whose last mark ends before
 * this one starts (on screen: a mark is at least 4 px wide), else a new
 * one. {marks: [{run, row, ms}], count}. */
function packRows(runs, now, x) {
  const ends = [];
  const marks = runs.map((run) => {
    const start = Date.parse(run.started_at);
    const ms = run.duration_ms == null ? now - start : run.duration_ms;
    return { run, ms, from: x(start),
             to: Math.max(x(start) + 4, x(start + ms)) };
  }).sort((a, b) => a.from - b.from);
  for (const m of marks) {
    m.row = ends.findIndex((end) => end <= m.from);
    if (m.row < 0) m.row = ends.push(0) - 1;
    ends[m.row] = m.to;
  }
  return { marks, count: Math.max(1, ends.length) };
}

async function loadTimeline() {
  const latest = ask('timeline');
  const now = Date.now();
  const since = now - HOUR_MS;
  const page = await api('GET', '/jobs?page_size=500');
  const jobs = page.jobs.slice(0, TL_LANES);
  const lanes = await Promise.all(jobs.map(async (j) => (
    { id: j.id, runs: await lastHour(j.id, since), fires: j.next_fires })));
  if (!latest()) return;
  $('#timeline-note').textContent = 'The last hour and the next, in your '
    + 'zone; one lane per job' + (page.total > jobs.length
      ? ', the first ' + jobs.length + ' of ' + page.total + ' jobs' : '')
    + '. Filled marks ran (hatched: failed), hollow ones are to come.';
  const x = (t) => TL.label + (t - since) * TL.hour / HOUR_MS;
  const width = TL.label + 2 * TL.hour + 10;
  const height = TL.top + lanes.length * TL.lane + TL.bottom;
  const root = $('#timeline');
  root.replaceChildren();
  root.setAttribute('width', width);
  root.setAttribute('height', height);
  root.setAttribute('viewBox', '0 0 ' + width + ' ' + height);
  const hatch = svg('pattern', { id: 'tl-hatch', width: 6, height: 6,
    patternUnits: 'userSpaceOnUse', patternTransform: 'rotate(45)' },
    svg('defs', {}, root));
  svg('path', { d: 'M0 0 V6' }, hatch);
  // an axis tick every 10 minutes, on the browser's clock
  const axis = svg('g', { class: 'axis' }, root);
  const first = Math.ceil(since / 600e3) * 600e3;
  for (let t = first; t <= now + HOUR_MS; t += 600e3) {
    svg('line', { x1: x(t), x2: x(t), y1: TL.top - 4, y2: height }, axis);
    svg('text', { x: x(t), y: TL.top - 8, 'text-anchor': 'middle' }, axis)
      .textContent = new Date(t).toLocaleTimeString([], {
        hour: '2-digit', minute: '2-digit', hourCycle: 'h23' });
  }
  svg('line', { class: 'now', x1: x(now), x2: x(now), y1: 0, y2: height },
      root);
  lanes.forEach((lane, i) => {
    const y = TL.top + i * TL.lane;
    const g = svg('g', { class: 'lane', 'data-job': lane.id }, root);
    svg('line', { x1: 0, x2: width, y1: y + TL.lane, y2: y + TL.lane }, g);
    svg('text', { x: 4, y: y + TL.lane / 2 + 4 }, g).textContent =
      lane.id.length > 18 ? lane.id.slice(0, 17) + '…' : lane.id;
    const rows = packRows(lane.runs, now, x);
    const h = (TL.lane - 10) / rows.count;
    for (const { run, row, ms } of rows.marks) {
      const start = Date.parse(run.started_at);
      const m = svg('g', { class: 'mark ' + run.status,
                           'data-id': run.id }, g);
      svg('rect', { x: x(start), y: y + 5 + row * h,
                    height: Math.max(2, h - (rows.count > 1 ? 1 : 0)),
                    width: Math.max(4, ms * TL.hour / HOUR_MS) }, m);
      focusable(m, markWords(run, ms));
    }
    for (const f of lane.fires) {
      const t = Date.parse(f);
      if (t < now || t > now + HOUR_MS) continue;
      const m = svg('g', { class: 'fire', 'data-time': f }, g);
      svg('circle', { cx: x(t), cy: y + TL.lane / 2, r: 5 }, m);
      focusable(m, lane.id + ': next fire at ' + new Date(t).toLocaleString());
    }
  });
}

const VIEWS = {
  jobs: async () => { await loadJobs(); await loadJob(); },
  queue: loadQueue,
  dead: loadDead,
  timeline: loadTimeline,
  status: loadStatus,
};

function view() {
  const v = location.hash.slice(1);
  return Object.hasOwn(VIEWS, v) ? v : 'jobs';
}

function refresh() {
  VIEWS[view()]().catch(fail);
}

function show() {
  const v = view();
  for (const s of document.querySelectorAll('.view')) {
    s.hidden = s.id !== 'view-' + v;
  }
  for (const a of document.querySelectorAll('#views a')) {
    if (a.hash === '#' + v) a.setAttribute('aria-current', 'page');
    else a.removeAttribute('aria-current');
  }
  refresh();
}

/* The list leaves the output out; a finished execution's does not change,
 * so each is asked for once. */
const FINISHED = new Set(['succeeded', 'failed', 'timed_out', 'crashed',
                          'killed', 'skipped', 'missed', 'dead']);
async function fillOutputs(list) {
  const want = list.filter((x) => FINISHED.has(x.status)
                                  && !outputs.has(x.id));
  await Promise.all(want.map(async (x) => {
    const full = await api('GET', '/executions/' + encodeURIComponent(x.id));
    outputs.set(x.id, full.output || '');
  }));
}

/* Server-sent events over fetch(): "event: NAME\ndata: JSON\n\n". */
async function listen() {
  if (stream) stream.abort();
  stream = new AbortController();
  const resp = await fetch('/api/v1/events', {
    headers: { 'Authorization': 'Bearer ' + token() },
    signal: stream.signal, cache: 'no-store'
  });
  if (!resp.ok) {
    const err = new Error('events: ' + resp.status);
    err.status = resp.status;
    throw err;
  }
  $('#live').textContent = 'live';
  say('');
  const reader = resp.body.pipeThrough(new TextDecoderStream()).getReader();
  let buf = '';
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    buf += value;
    let end;
    while ((end = buf.indexOf('\n\n')) >= 0) {
      const block = buf.slice(0, end);
      buf = buf.slice(end + 2);
      const name = /^event: (.*)$/m.exec(block);
      if (name) onEvent(name[1]);
    }
  }
  $('#live').textContent = 'disconnected';
}

let pending = null;
function onEvent(name) {
  // a burst of events is one reload, not one each
  if (name.startsWith(':') || pending) return;
  pending = setTimeout(() => {
    pending = null;
    refresh();
  }, 200);
}

function fail(e) {
  if (e.name === 'AbortError') return;
  say(e.message);
  if (e.status === 401) {
    sessionStorage.removeItem(KEY);
    $('#login').hidden = false;
  }
}

/* The events, again after each end (the daemon restarted, the network
 * cut): a page left open comes back live by itself. A network error is
 * said by "disconnected" alone; a refused token stops it. */
const RETRY_MS = 2000;
const STATUS_MS = 3000;       // the instance view's refresh
let statusTimer = null;
function keepListening() {
  listen().catch((e) => { if (e.status) fail(e); }).finally(() => {
    $('#live').textContent = 'disconnected';
    if (!token() || stream.signal.aborted) return;
    setTimeout(() => { keepListening(); refresh(); }, RETRY_MS);
  });
}

async function start() {
  if (!token()) { $('#login').hidden = false; return; }
  $('#login').hidden = true;
  try {
    const status = await api('GET', '/status');
    role = status.token.role;
    $('#views').hidden = false;
    show();
    say('');
    keepListening();
    // leases change without events: the instance view reads them again
    statusTimer = statusTimer || setInterval(() => {
      if (view() === 'status' && token()) refresh();
    }, STATUS_MS);
  } catch (e) { fail(e); }
}

/* Each table's head, from its data-cols ("Job|Type|..."). */
function heads() {
  for (const table of document.querySelectorAll('table[data-cols]')) {
    const row = table.createTHead().insertRow();
    for (const name of table.dataset.cols.split('|')) {
      const th = document.createElement('th');
      th.scope = 'col';
      th.textContent = name;
      row.appendChild(th);
    }
  }
}

document.addEventListener('DOMContentLoaded', () => {
  heads();
  $('#login').addEventListener('submit', (ev) => {
    ev.preventDefault();
    sessionStorage.setItem(KEY, $('#token').value);
    $('#token').value = '';
    start();
  });
  window.addEventListener('hashchange', show);
  $('#enqueue').addEventListener('submit', (ev) => {
    ev.preventDefault();
    enqueue();
  });
  for (const form of ['#dead-filter', '#job-filter']) {
    $(form).addEventListener('submit', (ev) => {
      ev.preventDefault();
      refresh();
    });
  }
  // as one types; "change" too, for a field emptied by script or autofill
  $('#job-filter').addEventListener('input', refresh);
  $('#job-filter').addEventListener('change', refresh);
  $('#forget').addEventListener('click', () => {
    sessionStorage.removeItem(KEY);
    if (stream) stream.abort();
    location.reload();
  });
  start();
});
