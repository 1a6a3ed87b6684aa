// lookout console: everything the agent knows, live. Served by the agent itself (GET /);
// reads GET /api/v1/stream (Server-Sent Events, read with fetch so that the read token can
// go in a header) and /api/v1/query_range for the charts. docs/console.md explains it.
'use strict';
(function () {
  // ---------------------------------------------------------------------------------------
  // Panels: the one list. A collector's panel is one entry here, keyed by its metric family:
  // the metrics its sections name decide when it shows (any of them present) and what each
  // figure is. Section kinds: 'tiles' (one figure each, optional bar and sub-figures; `where`
  // picks one series by its labels, fn 'sum' adds up every series that matches),
  // 'table' (a row per label set, sortable columns), 'pairs' (a metric by one label),
  // 'cards' (a card per label value, each with tiles and an optional table). Charts are
  // PromQL over the history (/api/v1/query_range), for the range the header selects.
  // Panels with `render` draw themselves from the stream's other parts.
  // ---------------------------------------------------------------------------------------
  const PANELS = [
    { id: 'alerts', title: 'Alerts', wide: true, always: true, render: renderAlerts },
    { id: 'silences', title: 'Silences', wide: true, render: renderSilences, present: () => !!(silences?.length || silencesError || notice.text) },
    {
      id: 'host', title: 'Host', wide: true,
      sections: [
        { kind: 'tiles', tiles: [
          { metric: 'lookout_cpu_usage_ratio', label: 'CPU', unit: 'percent', bar: true,
            sub: [{ metric: 'lookout_cpus', unit: 'count', after: ' CPUs' }] },
          { metric: 'lookout_memory_usage_ratio', label: 'Memory', unit: 'percent', bar: true,
            sub: [{ metric: 'lookout_memory_available_bytes', unit: 'bytes', after: ' free ' },
                  { metric: 'lookout_memory_total_bytes', unit: 'bytes', before: 'of ' }] },
          { metric: 'lookout_swap_usage_ratio', label: 'Swap', unit: 'percent', bar: true },
          { metric: 'lookout_load1', label: 'Load 1m', unit: 'load',
            sub: [{ metric: 'lookout_load5', unit: 'load', before: '5m ' },
                  { metric: 'lookout_load15', unit: 'load', before: '· 15m ' }] },
          { metric: 'lookout_processes', label: 'Processes', unit: 'count',
            sub: [{ metric: 'lookout_uptime_seconds', unit: 'duration', before: 'up ' }] },
        ] },
        { kind: 'table', title: 'Filesystems', rows: ['mountpoint'], sort: 'mountpoint', columns: [
          { metric: 'lookout_filesystem_usage_ratio', label: 'Used', unit: 'percent', bar: true },
          { metric: 'lookout_filesystem_avail_bytes', label: 'Free', unit: 'bytes' },
          { metric: 'lookout_filesystem_size_bytes', label: 'Size', unit: 'bytes' },
          { metric: 'lookout_filesystem_inodes_usage_ratio', label: 'Inodes', unit: 'percent' },
        ] },
        { kind: 'table', title: 'Disks', rows: ['device'], sort: 'device', columns: [
          { metric: 'lookout_disk_read_bytes_total', fn: 'rate', label: 'Read', unit: 'rate' },
          { metric: 'lookout_disk_written_bytes_total', fn: 'rate', label: 'Written', unit: 'rate' },
          { metric: 'lookout_disk_io_time_ratio', label: 'Busy', unit: 'percent', bar: true },
        ] },
        { kind: 'table', title: 'Network', rows: ['device'], sort: 'device', columns: [
          { metric: 'lookout_network_receive_bytes_per_second', label: 'In', unit: 'rate' },
          { metric: 'lookout_network_transmit_bytes_per_second', label: 'Out', unit: 'rate' },
          { metric: 'lookout_network_receive_errors_total', label: 'Errors in', unit: 'count' },
          { metric: 'lookout_network_transmit_errors_total', label: 'Errors out', unit: 'count' },
          { metric: 'lookout_network_receive_drops_total', label: 'Drops in', unit: 'count' },
        ] },
        { kind: 'pairs', title: 'TCP connections', metric: 'lookout_tcp_connections', by: 'state', unit: 'count' },
        { kind: 'table', title: 'TCP on watched ports', rows: ['port', 'state'], sort: 'port', columns: [
          { metric: 'lookout_tcp_port_connections', label: 'Connections', unit: 'count' },
        ] },
      ],
      charts: [
        { title: 'CPU', unit: 'percent', max: 1, q: [['lookout_cpu_usage_ratio', 'busy']] },
        { title: 'Memory and swap', unit: 'percent', max: 1,
          q: [['lookout_memory_usage_ratio', 'memory'], ['lookout_swap_usage_ratio', 'swap']] },
        { title: 'Load', unit: 'load', q: [['lookout_load1', '1m'], ['lookout_load5', '5m']] },
        { title: 'Network (all but lo)', unit: 'rate',
          q: [['sum(lookout_network_receive_bytes_per_second{device!="lo"})', 'in'],
              ['sum(lookout_network_transmit_bytes_per_second{device!="lo"})', 'out']] },
        { title: 'Disk IO', unit: 'rate',
          q: [['sum(rate(lookout_disk_read_bytes_total[1m]))', 'read'],
              ['sum(rate(lookout_disk_written_bytes_total[1m]))', 'written']] },
      ],
    },
    {
      id: 'processes', title: 'Processes', wide: true, hint: 'Top processes (collect.processes)',
      render: renderProcesses, present: () => !!parts.processes || metricsOf(PROCESS_GROUPS_PANEL).some((m) => byName.get(m)?.size),
    },
    {
      id: 'redis', title: 'Redis / Valkey', hint: 'Redis (collect.redis)',
      sections: [
        { kind: 'cards', by: 'target', tags: ['role'], tiles: [
          { metric: 'lookout_redis_up', label: 'State', unit: 'updown' },
          { metric: 'lookout_redis_hit_ratio', label: 'Hit ratio', unit: 'percent', bar: true },
          { metric: 'lookout_redis_memory_used_bytes', label: 'Memory', unit: 'bytes',
            sub: [{ metric: 'lookout_redis_memory_usage_ratio', unit: 'percent', after: ' of maxmemory' }] },
          { metric: 'lookout_redis_connected_clients', label: 'Clients', unit: 'count' },
          { metric: 'lookout_redis_ping_seconds', label: 'Ping', unit: 'seconds' },
          { metric: 'lookout_redis_commands_processed_total', fn: 'rate', label: 'Commands', unit: 'perSecond' },
          { metric: 'lookout_redis_evicted_keys_total', fn: 'rate', label: 'Evictions', unit: 'perSecond' },
        ], table: { title: 'Queues', rows: ['queue'], sort: 'queue', columns: [
          { metric: 'lookout_redis_queue_length', label: 'Length', unit: 'count' },
        ] } },
      ],
      charts: [
        { title: 'Hit ratio', unit: 'percent', max: 1, q: [['lookout_redis_hit_ratio', '{target}']] },
        { title: 'Memory', unit: 'bytes', q: [['lookout_redis_memory_used_bytes', '{target}']] },
        { title: 'Commands', unit: 'perSecond', q: [['rate(lookout_redis_commands_processed_total[1m])', '{target}']] },
      ],
    },
    {
      id: 'postgres', title: 'PostgreSQL', hint: 'PostgreSQL (collect.postgres)',
      sections: [
        { kind: 'cards', by: 'target', tiles: [
          { metric: 'lookout_postgres_up', label: 'State', unit: 'updown' },
          { metric: 'lookout_postgres_connections', fn: 'sum', label: 'Connections', unit: 'count',
            sub: [{ metric: 'lookout_postgres_max_connections', unit: 'count', before: 'of ', after: ' max' }] },
          { metric: 'lookout_postgres_connections_usage_ratio', label: 'In use', unit: 'percent', bar: true },
          { metric: 'lookout_postgres_cache_hit_ratio', label: 'Cache hit ratio', unit: 'percent', bar: true },
          { metric: 'lookout_postgres_transactions_total', where: { result: 'commit' }, fn: 'rate', label: 'Commits', unit: 'perSecond' },
          { metric: 'lookout_postgres_slow_queries', label: 'Slow queries', unit: 'count' },
          { metric: 'lookout_postgres_longest_query_seconds', label: 'Longest query', unit: 'seconds' },
          { metric: 'lookout_postgres_query_avg_seconds', label: 'Avg query', unit: 'seconds' },
          { metric: 'lookout_postgres_replication_lag_seconds', label: 'Replication lag', unit: 'seconds' },
        ], table: { title: 'Databases', rows: ['database'], sort: 'database', columns: [
          { metric: 'lookout_postgres_database_size_bytes', label: 'Size', unit: 'bytes' },
        ] } },
      ],
      charts: [
        { title: 'Connections', unit: 'count', q: [['sum by (target) (lookout_postgres_connections)', '{target}']] },
        { title: 'Commits', unit: 'perSecond',
          q: [['rate(lookout_postgres_transactions_total{result="commit"}[1m])', '{target}']] },
      ],
    },
    {
      id: 'race', title: 'Cache versus database', hint: 'Cache-versus-database races',
      sections: [
        { kind: 'cards', by: 'race', tiles: [
          { metric: 'lookout_race_duration_seconds', where: { source: 'redis' }, label: 'Redis', unit: 'seconds' },
          { metric: 'lookout_race_duration_seconds', where: { source: 'postgres' }, label: 'PostgreSQL', unit: 'seconds' },
          { metric: 'lookout_race_speedup_ratio', label: 'Speedup', unit: 'times' },
        ] },
      ],
      charts: [
        { title: 'Lookup durations', unit: 'seconds', q: [['lookout_race_duration_seconds', '{race} {source}']] },
        { title: 'Speedup', unit: 'times', q: [['lookout_race_speedup_ratio', '{race}']] },
      ],
    },
    {
      id: 'probes', title: 'HTTP probes', hint: 'HTTP probes (collect.http_probes)',
      sections: [
        { kind: 'table', rows: ['probe'], sort: 'probe', columns: [
          { metric: 'lookout_probe_success', label: 'Result', unit: 'okfail' },
          { metric: 'lookout_probe_http_status_code', label: 'Status', unit: 'status' },
          { metric: 'lookout_probe_duration_seconds', label: 'Duration', unit: 'seconds' },
          { metric: 'lookout_probe_attempts_failed_total', label: 'Failed attempts', unit: 'count' },
        ] },
      ],
      charts: [
        { title: 'Duration', unit: 'seconds', q: [['lookout_probe_duration_seconds', '{probe}']] },
      ],
    },
    {
      id: 'routes', title: 'API routes (pushed timings)', wide: true,
      hint: 'API routes (POST /api/v1/observations)',
      sections: [
        { kind: 'table', rows: ['route', 'method'], sort: '-lookout_api_latency_p95_seconds', columns: [
          { metric: 'lookout_api_latency_p50_seconds', label: 'p50', unit: 'seconds' },
          { metric: 'lookout_api_latency_p95_seconds', label: 'p95', unit: 'seconds' },
          { metric: 'lookout_api_latency_p99_seconds', label: 'p99', unit: 'seconds' },
          { metric: 'lookout_api_latency_avg_seconds', label: 'avg', unit: 'seconds' },
          { metric: 'lookout_api_error_ratio', label: 'Errors', unit: 'percent' },
          { metric: 'lookout_api_requests_per_second', label: 'Rate', unit: 'perSecond' },
        ] },
      ],
      charts: [
        { title: 'p95 latency, slowest 5', unit: 'seconds',
          q: [['topk(5, lookout_api_latency_p95_seconds)', '{method} {route}']] },
        { title: 'Requests, busiest 5', unit: 'perSecond',
          q: [['topk(5, lookout_api_requests_per_second)', '{method} {route}']] },
      ],
    },
    { id: 'score', title: 'Scalability score', render: renderScore, present: () => !!parts.score },
    { id: 'delivery', title: 'Delivery', render: renderDelivery, present: () => !!parts.agent },
    {
      id: 'agent', title: 'This agent', render: renderAgent, present: () => !!parts.collectors,
      charts: [
        { title: 'Agent memory', unit: 'bytes', q: [['process_resident_memory_bytes', 'resident']] },
      ],
    },
  ];

  // ---------------------------------------------------------------------------------------
  // Formatting: every figure's text comes from here.
  // ---------------------------------------------------------------------------------------
  const pad = (n) => String(n).padStart(2, '0');
  const clock = (ms) => { const d = new Date(ms); return `${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`; };
  function bytes(v) {
    const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB', 'PiB'];
    let i = 0;
    let x = Math.abs(v);
    while (x >= 1024 && i < units.length - 1) { x /= 1024; i += 1; }
    return `${v < 0 ? '-' : ''}${i === 0 ? x.toFixed(0) : x.toFixed(x >= 100 ? 0 : 1)} ${units[i]}`;
  }
  function seconds(v) {
    const a = Math.abs(v);
    if (a === 0) return '0 ms';
    if (a < 0.001) return `${(v * 1e6).toFixed(0)} µs`;
    if (a < 1) return `${(v * 1000).toFixed(a < 0.01 ? 2 : 1)} ms`;
    return `${v.toFixed(2)} s`;
  }
  function duration(v) {
    const s = Math.max(0, Math.floor(v));
    const d = Math.floor(s / 86400);
    const h = Math.floor((s % 86400) / 3600);
    const m = Math.floor((s % 3600) / 60);
    if (d > 0) return `${d}d ${h}h`;
    if (h > 0) return `${h}h ${m}m`;
    if (m > 0) return `${m}m ${s % 60}s`;
    return `${s}s`;
  }
  function number(v) {
    const a = Math.abs(v);
    if (a >= 1e9) return `${(v / 1e9).toFixed(1)}G`;
    if (a >= 1e6) return `${(v / 1e6).toFixed(1)}M`;
    if (a >= 1e4) return `${(v / 1e3).toFixed(1)}k`;
    if (a >= 100 || Number.isInteger(v)) return v.toFixed(0);
    return v.toFixed(a >= 10 ? 1 : 2);
  }
  const FORMAT = {
    percent: (v) => `${(v * 100).toFixed(1)}%`,
    bytes,
    rate: (v) => `${bytes(v)}/s`,
    seconds,
    duration,
    count: (v) => Math.round(v).toLocaleString('en-US'),
    number,
    load: (v) => v.toFixed(2),
    perSecond: (v) => `${number(v)}/s`,
    times: (v) => `${Math.abs(v) >= 10 ? Math.round(v).toLocaleString('en-US') : v.toFixed(1)}x`,
    updown: (v) => (v >= 1 ? 'up' : 'down'),
    okfail: (v) => (v >= 1 ? 'ok' : 'failing'),
    status: (v) => (v > 0 ? String(Math.round(v)) : 'no answer'),
    circuit: (v) => ['closed', 'half-open', 'open'][Math.round(v)] || String(v),
  };
  const format = (unit, v) => (v == null || Number.isNaN(v) ? '—' : (FORMAT[unit] || number)(v));
  // Fixed meanings; everything else is coloured by the rules' thresholds (see sevOf).
  const FIXED_SEVERITY = {
    updown: (v) => (v >= 1 ? 'ok' : 'critical'),
    okfail: (v) => (v >= 1 ? 'ok' : 'critical'),
    circuit: (v) => ['ok', 'warning', 'critical'][Math.round(v)],
  };

  // ---------------------------------------------------------------------------------------
  // DOM from data: text only ever goes in through textContent (label values come from
  // outside: mount points, pushed route names).
  // ---------------------------------------------------------------------------------------
  function h(tag, attrs, ...children) {
    const el = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v == null || v === false) continue;
      if (k === 'class') el.className = v;
      else if (k === 'style') for (const [p, x] of Object.entries(v)) el.style.setProperty(p, x);
      else if (k.startsWith('on')) el.addEventListener(k.slice(2), v);
      else el.setAttribute(k, v === true ? '' : String(v));
    }
    for (const c of children.flat(Infinity)) {
      if (c != null && c !== false) el.append(c instanceof Node ? c : String(c));
    }
    return el;
  }
  const $ = (sel) => document.querySelector(sel);

  // ---------------------------------------------------------------------------------------
  // The series, as the stream names them: `name{label="value",...}` (labels as on /metrics,
  // without host). Each keeps its previous point, for rates of counters.
  // ---------------------------------------------------------------------------------------
  const series = new Map(); // key -> {key, name, labels, v, t, pv, pt}
  const byName = new Map(); // name -> Map(key -> entry)
  const parts = {}; // agent, alerts, score, collectors, processes: the stream's other parts

  function parseKey(key) {
    const brace = key.indexOf('{');
    if (brace < 0) return { name: key, labels: {} };
    const labels = {};
    let i = brace + 1;
    while (i < key.length && key[i] !== '}') {
      const eq = key.indexOf('="', i);
      const name = key.slice(i, eq);
      let value = '';
      let j = eq + 2;
      for (; j < key.length && key[j] !== '"'; j += 1) {
        if (key[j] === '\\') { j += 1; value += key[j] === 'n' ? '\n' : key[j]; } else value += key[j];
      }
      labels[name] = value;
      i = j + 1;
      if (key[i] === ',') i += 1;
    }
    return { name: key.slice(0, brace), labels };
  }

  function applySeries(set, gone, reset) {
    const old = reset ? new Map(series) : series;
    if (reset) { series.clear(); byName.clear(); }
    for (const [key, [v, t]] of Object.entries(set || {})) {
      const before = old.get(key);
      const entry = series.get(key) || (before ? { ...before } : { key, ...parseKey(key) });
      if (before && before.t !== t) { entry.pv = before.v; entry.pt = before.t; }
      entry.v = v;
      entry.t = t;
      series.set(key, entry);
      if (!byName.has(entry.name)) byName.set(entry.name, new Map());
      byName.get(entry.name).set(key, entry);
    }
    for (const key of gone || []) {
      const entry = series.get(key);
      if (!entry) continue;
      series.delete(key);
      byName.get(entry.name)?.delete(key);
    }
  }

  const named = (name) => [...(byName.get(name)?.values() || [])];
  const first = (name) => named(name)[0];
  function valueOf(entry, fn) {
    if (!entry) return null;
    if (fn !== 'rate') return entry.v;
    if (entry.pv == null || entry.v == null || entry.t <= entry.pt || entry.v < entry.pv) return null;
    return (entry.v - entry.pv) / ((entry.t - entry.pt) / 1000);
  }
  const matches = (entry, labels) => Object.entries(labels).every(([k, v]) => entry.labels[k] === v);
  // A series' key as the stream writes it: name{label="value",...}.
  const keyOf = (name, labels) => {
    const ls = Object.entries(labels).map(([k, v]) => `${k}="${String(v).replace(/[\\"]/g, '\\$&').replace(/\n/g, '\\n')}"`);
    return ls.length ? `${name}{${ls.join(',')}}` : name;
  };
  // The series of a tile or sub-figure within `labels`: the one its `where` picks, or with
  // fn 'sum' the total of every series that matches (keyed by the labels they share).
  function pick(t, labels) {
    const want = { ...(labels || {}), ...(t.where || {}) };
    const list = named(t.metric).filter((e) => matches(e, want));
    if (t.fn !== 'sum') return list[0];
    if (list.length === 0) return undefined;
    return { key: keyOf(t.metric, want), name: t.metric, labels: want,
      v: list.reduce((a, e) => a + (e.v ?? 0), 0), t: Math.max(...list.map((e) => e.t)) };
  }

  // Severity of a value: the thresholds of the rule whose expression is this bare metric.
  function sevOf(metric, unit, v) {
    if (v == null) return null;
    if (FIXED_SEVERITY[unit]) return FIXED_SEVERITY[unit](v);
    const t = parts.agent?.thresholds?.[metric];
    if (!t) return null;
    const breached = (th) => {
      if (!th) return false;
      const [op, x] = th;
      return { '>': v > x, '>=': v >= x, '<': v < x, '<=': v <= x, '==': v === x, '!=': v !== x }[op];
    };
    if (breached(t.critical)) return 'critical';
    if (breached(t.warning)) return 'warning';
    return 'ok';
  }

  // A firing alert of a rule on this bare metric whose labels include the series' labels
  // colours its figure too: with hysteresis, a value back under the threshold may still be
  // firing.
  const RANK = { ok: 0, warning: 1, critical: 2 };
  let firingIndex = { of: null, by: new Map() }; // expr -> firing items, per alerts part
  function firingOn(metric) {
    if (firingIndex.of !== parts.alerts) {
      const by = new Map();
      for (const a of parts.alerts?.items || []) {
        if (a.state !== 'firing' || !a.expr) continue;
        if (!by.has(a.expr)) by.set(a.expr, []);
        by.get(a.expr).push(a);
      }
      firingIndex = { of: parts.alerts, by };
    }
    return firingIndex.by.get(metric) || [];
  }
  function alertSev(metric, entry) {
    let worst = null;
    if (!entry) return null;
    for (const a of firingOn(metric)) {
      if (!Object.entries(entry.labels).every(([k, v]) => a.labels?.[k] === v)) continue;
      if (!worst || RANK[a.severity] > RANK[worst]) worst = a.severity;
    }
    return worst;
  }
  const worse = (a, b) => ((RANK[b] ?? -1) > (RANK[a] ?? -1) ? b : a);

  // One live figure: an element whose data-series is the series and whose text is its value.
  function figure(entry, metric, unit, fn, cls) {
    const v = valueOf(entry, fn);
    const sev = fn ? null : worse(sevOf(metric, unit, v), alertSev(metric, entry));
    return h('span', {
      class: `fig${sev ? ` sev-${sev}` : ''}${cls ? ` ${cls}` : ''}`,
      'data-series': entry ? entry.key : metric,
      'data-fn': fn || null,
      title: fn ? `${fn} of ${entry ? entry.key : metric}` : null,
    }, format(unit, v));
  }
  function bar(v, sev) {
    const width = v == null ? 0 : Math.max(0, Math.min(1, v)) * 100;
    return h('span', { class: `bar${sev ? ` sev-${sev}` : ''}`, 'aria-hidden': 'true' },
      h('i', { style: { width: `${width}%` } }));
  }

  // ---------------------------------------------------------------------------------------
  // Section renderers.
  // ---------------------------------------------------------------------------------------
  function tiles(list, labels) {
    return h('div', { class: 'tiles' }, list.map((t) => {
      const entry = pick(t, labels);
      if (!entry && labels) return null;
      const v = valueOf(entry, t.fn);
      return h('div', { class: 'tile' },
        h('div', { class: 'label' }, t.label),
        figure(entry, t.metric, t.unit, t.fn, 'big'),
        t.bar ? bar(v, worse(sevOf(t.metric, t.unit, v), alertSev(t.metric, entry))) : null,
        t.sub ? h('div', { class: 'sub' }, t.sub.map((s) => {
          const e = pick(s, labels);
          if (!e) return null;
          return [h('span', { class: 'pair' }, s.before || '', figure(e, s.metric, s.unit, s.fn), s.after || ''), ' '];
        })) : null);
    }));
  }

  const sortState = {};
  function table(id, def, within) {
    const cols = def.columns;
    const rows = new Map();
    for (const col of cols) {
      for (const e of named(col.metric)) {
        if (within && !matches(e, within)) continue;
        const rk = JSON.stringify(def.rows.map((l) => e.labels[l] ?? ''));
        if (!rows.has(rk)) rows.set(rk, { labels: def.rows.map((l) => e.labels[l] ?? ''), cells: {} });
        rows.get(rk).cells[col.metric] = e;
      }
    }
    if (rows.size === 0) return null;
    const sort = sortState[id] || def.sort || def.rows[0];
    const desc = sort.startsWith('-');
    const key = desc ? sort.slice(1) : sort;
    const li = def.rows.indexOf(key);
    const col = cols.find((c) => c.metric === key);
    const list = [...rows.values()].sort((a, b) => {
      let x;
      let y;
      if (li >= 0) { x = a.labels[li]; y = b.labels[li]; } else {
        x = valueOf(a.cells[key], col?.fn) ?? -Infinity;
        y = valueOf(b.cells[key], col?.fn) ?? -Infinity;
      }
      const c = x < y ? -1 : x > y ? 1 : 0;
      return desc ? -c : c;
    });
    const header = (label, k, numeric) => {
      const on = key === k;
      return h('th', { scope: 'col', class: numeric ? 'num' : null,
        'aria-sort': on ? (desc ? 'descending' : 'ascending') : null },
      h('button', { type: 'button', onclick: () => {
        sortState[id] = on && !desc ? `-${k}` : on ? k : numeric ? `-${k}` : k;
        render();
      } }, label, on ? (desc ? ' ▾' : ' ▴') : ''));
    };
    return h('div', { class: 'table-wrap' },
      def.title ? h('h3', {}, def.title) : null,
      h('table', { class: 'data' },
        h('thead', {}, h('tr', {},
          def.rows.map((l) => header(l, l, false)),
          cols.map((c) => header(c.label, c.metric, true)))),
        h('tbody', {}, list.map((r) => h('tr', {},
          r.labels.map((l) => h('th', { scope: 'row', class: 'lbl' }, l)),
          cols.map((c) => {
            const e = r.cells[c.metric];
            if (!e) return h('td', { class: 'num muted' }, '—');
            const v = valueOf(e, c.fn);
            return h('td', { class: 'num' }, figure(e, c.metric, c.unit, c.fn),
              c.bar ? bar(v, worse(sevOf(c.metric, c.unit, v), alertSev(c.metric, e))) : null);
          }))))));
  }

  function pairs(def) {
    const list = named(def.metric).sort((a, b) => (b.v ?? 0) - (a.v ?? 0));
    if (list.length === 0) return null;
    return h('div', { class: 'table-wrap' },
      h('h3', {}, def.title),
      h('dl', { class: 'pairs' }, list.map((e) => h('div', {},
        h('dt', {}, e.labels[def.by]), h('dd', {}, figure(e, def.metric, def.unit))))));
  }

  function cards(id, def) {
    const names = new Set();
    for (const t of def.tiles) for (const e of named(t.metric)) names.add(e.labels[def.by]);
    return h('div', { class: 'cards' }, [...names].sort().map((name) => {
      const within = { [def.by]: name };
      const any = def.tiles.map((t) => named(t.metric).find((e) => matches(e, within))).find(Boolean);
      return h('div', { class: 'card', 'data-group': name },
        h('h3', {}, name, (def.tags || []).map((t) => (any?.labels[t] ? h('span', { class: 'tag' }, any.labels[t]) : null))),
        tiles(def.tiles, within),
        def.table ? table(`${id}/${name}`, def.table, within) : null);
    }));
  }

  function section(panel, s, i) {
    switch (s.kind) {
      case 'tiles': return tiles(s.tiles);
      case 'table': return table(`${panel.id}/${i}`, s);
      case 'pairs': return pairs(s);
      case 'cards': return cards(`${panel.id}/${i}`, s);
      default: return null;
    }
  }

  // Metrics a panel's sections name: the panel shows when one of them is present.
  function metricsOf(panel) {
    const out = [];
    for (const s of panel.sections || []) {
      for (const t of s.tiles || []) out.push(t.metric);
      for (const c of s.columns || []) out.push(c.metric);
      for (const c of s.table?.columns || []) out.push(c.metric);
      if (s.metric) out.push(s.metric);
    }
    return out;
  }
  function present(panel) {
    if (panel.always) return true;
    if (panel.present) return panel.present();
    return metricsOf(panel).some((m) => (byName.get(m)?.size || 0) > 0);
  }

  // ---------------------------------------------------------------------------------------
  // Panels drawn from the stream's other parts.
  // ---------------------------------------------------------------------------------------
  const PROCESS_GROUPS = { kind: 'table', title: 'Process groups', rows: ['group'], sort: 'group', columns: [
    { metric: 'lookout_process_group_up', label: 'State', unit: 'updown' },
    { metric: 'lookout_process_group_members', label: 'Processes', unit: 'count' },
    { metric: 'lookout_process_group_cpu_usage_ratio', label: 'CPU', unit: 'percent' },
    { metric: 'lookout_process_group_resident_memory_bytes', label: 'Memory', unit: 'bytes' },
    { metric: 'lookout_process_group_memory_usage_ratio', label: 'of max', unit: 'percent', bar: true },
    { metric: 'lookout_process_group_fd_usage_ratio', label: 'Open files', unit: 'percent', bar: true },
    { metric: 'lookout_process_group_restarts_total', label: 'Restarts', unit: 'count' },
  ] };
  const PROCESS_GROUPS_PANEL = { sections: [PROCESS_GROUPS] };
  let topBy = 'cpu';
  function renderProcesses() {
    const t = parts.processes;
    const groups = table('processes/groups', PROCESS_GROUPS);
    if (!t) return [groups];
    const list = topBy === 'cpu' ? t.by_cpu : t.by_memory;
    const toggle = h('div', { class: 'range top-by', role: 'group', 'aria-label': 'Order the top processes' },
      [['cpu', 'by CPU'], ['memory', 'by memory']].map(([b, label]) => h('button', {
        type: 'button', 'data-by': b, 'aria-pressed': String(b === topBy),
        onclick: () => { topBy = b; render(); },
      }, label)));
    const body = list.length === 0
      ? h('p', { class: 'muted' }, 'measuring CPU over the first interval…')
      : h('table', { class: 'data top-list' },
        h('thead', {}, h('tr', {}, h('th', {}, 'name'), h('th', { class: 'num' }, 'pid'), h('th', {}, 'user'),
          h('th', { class: 'num' }, 'CPU'), h('th', { class: 'num' }, 'RSS'))),
        h('tbody', {}, list.map((p) => h('tr', { 'data-pid': p.pid },
          h('th', { scope: 'row', class: 'lbl', title: p.cmdline || null }, p.name),
          h('td', { class: 'num' }, String(p.pid)),
          h('td', {}, p.user),
          h('td', { class: 'num' }, format('percent', p.cpu_ratio)),
          h('td', { class: 'num' }, format('bytes', p.rss_bytes))))));
    return [
      groups,
      h('div', { class: 'table-wrap', 'data-top': topBy },
        h('div', { class: 'top-head' }, h('h3', {}, `Top ${t.top} processes`), toggle),
        body,
        h('p', { class: 'muted' }, `CPU: share of the whole host over the last ${format('duration', t.interval_seconds)}; as of ${clock(t.at * 1000)}`)),
    ];
  }

  function unitOfExpr(expr) {
    if (!expr) return 'number';
    if (/_ratio\b/.test(expr)) return 'percent';
    if (/_bytes_total\b/.test(expr)) return 'rate';
    if (/_bytes\b/.test(expr)) return 'bytes';
    if (/_seconds\b/.test(expr)) return 'seconds';
    return 'number';
  }

  function renderAlerts() {
    const a = parts.alerts;
    if (!a) return h('p', { class: 'muted' }, 'waiting for the first evaluation…');
    if (a.items.length === 0) {
      return h('p', { class: 'all-clear' }, h('span', { class: 'dot sev-ok' }), 'No alert firing or pending.');
    }
    const now = Date.now();
    const rows = a.items.map((x) => {
      const since = x.state === 'firing' ? x.firing_since : x.active_since;
      const labels = Object.entries(x.labels || {}).filter(([k]) => k !== 'host' && k !== 'severity');
      const muted = mutedBadges(x);
      return h('li', { class: `alert sev-${x.severity || 'none'}`, 'data-alert': x.alert,
        'data-severity': x.severity || '', 'data-state': x.state,
        'data-muted': muted.map((m) => m.dataset.by).join(' ') || null },
      h('span', { class: `sev-badge sev-${x.severity || 'none'}` }, x.severity || '?'),
      h('span', { class: 'name' }, x.alert),
      h('span', { class: `state state-${x.state}` }, x.state),
      muted,
      h('span', { class: 'labels' }, labels.map(([k, v]) => h('code', {}, `${k}=${v}`))),
      h('span', { class: 'since' }, since ? ['since ', h('time', { datetime: new Date(since).toISOString() }, clock(since)),
        ' (', h('span', { 'data-ago': since }, duration((now - since) / 1000)), ')'] : ''),
      h('span', { class: 'value' }, 'value ', h('b', {}, format(unitOfExpr(x.expr), x.value))),
      silenceButton(x));
    });
    return [
      h('ol', { class: 'alerts' }, rows),
      a.total > a.items.length ? h('p', { class: 'muted' }, `${a.total - a.items.length} more not shown (GET /api/v1/alerts lists them all)`) : null,
    ];
  }

  function renderScore() {
    const s = parts.score;
    const e = first('lookout_scalability_score');
    return [
      h('div', { class: 'score' },
        h('span', { class: `score-num grade-${s.grade}`, 'data-series': 'lookout_scalability_score' },
          format('number', e ? e.v : s.score)),
        h('span', { class: `grade grade-${s.grade}` }, s.grade)),
      h('div', { class: 'table-wrap' }, h('table', { class: 'data components' },
        h('thead', {}, h('tr', {}, h('th', {}, 'component'), h('th', { class: 'num' }, 'input'),
          h('th', { class: 'num' }, 'takes off'), h('th', {}, 'why'))),
        h('tbody', {}, s.components.map((c) => {
          const pe = named('lookout_scalability_penalty').find((x) => x.labels.component === c.name);
          return h('tr', {},
            h('th', { scope: 'row', class: 'lbl' }, c.name.replace('_', ' ')),
            h('td', { class: 'num' }, c.input == null ? '—' : format('number', c.input)),
            h('td', { class: 'num' }, h('span', { class: `fig${c.penalty > 0 ? ' sev-warning' : ''}`,
              'data-series': pe ? pe.key : `lookout_scalability_penalty{component="${c.name}"}` },
            format('number', pe ? pe.v : c.penalty)), ` of ${format('number', c.max_penalty)}`),
            h('td', { class: 'why' }, c.explanation));
        })))),
    ];
  }

  let outbox = null;
  let outboxError = null;
  function renderDelivery() {
    const receivers = parts.agent?.receivers || [];
    const results = ['delivered', 'retry', 'dead', 'folded'];
    const pending = first('lookout_outbox_pending');
    const oldest = first('lookout_outbox_oldest_age_seconds');
    const writeErrors = first('lookout_outbox_write_errors_total');
    return [
      h('div', { class: 'tiles' },
        h('div', { class: 'tile' }, h('div', { class: 'label' }, 'Outbox pending'),
          figure(pending, 'lookout_outbox_pending', 'count', null, 'big'),
          h('div', { class: 'sub' }, 'oldest ', figure(oldest, 'lookout_outbox_oldest_age_seconds', 'duration'))),
        h('div', { class: 'tile' }, h('div', { class: 'label' }, 'Outbox write errors'),
          figure(writeErrors, 'lookout_outbox_write_errors_total', 'count', null, 'big'))),
      h('div', { class: 'table-wrap' }, h('h3', {}, 'Receivers'),
        h('table', { class: 'data' },
          h('thead', {}, h('tr', {}, h('th', {}, 'receiver'), h('th', {}, 'kind'), h('th', {}, 'circuit'),
            results.map((r) => h('th', { class: 'num' }, r)))),
          h('tbody', {}, receivers.map((r) => {
            const circuit = named('lookout_receiver_circuit_state').find((e) => e.labels.receiver === r.name);
            return h('tr', {},
              h('th', { scope: 'row', class: 'lbl' }, r.name),
              h('td', {}, r.kind),
              h('td', {}, circuit ? figure(circuit, 'lookout_receiver_circuit_state', 'circuit') : h('span', { class: 'muted' }, 'closed (idle)')),
              results.map((res) => {
                const e = named('lookout_notifications_total').find((x) => x.labels.receiver === r.name && x.labels.result === res);
                return h('td', { class: 'num' }, e ? figure(e, 'lookout_notifications_total', 'count') : '0');
              }));
          })))),
      h('div', { class: 'table-wrap' }, h('h3', {}, 'Dead letters, newest first'), deadLetters()),
    ];
  }
  function deadLetters() {
    if (outboxError) return h('p', { class: 'error' }, outboxError);
    if (!outbox) return h('p', { class: 'muted' }, '…');
    if (outbox.dead.length === 0) return h('p', { class: 'muted' }, 'none');
    return [
      h('ul', { class: 'dead' }, outbox.dead.map((d) => h('li', {},
        h('time', {}, clock(d.dead_ms)), ' ', h('b', {}, d.message.receiver), ': ', d.reason,
        ` (${d.attempts} attempt${d.attempts === 1 ? '' : 's'})`))),
      outbox.dead_next ? h('p', { class: 'muted' }, 'more: GET /api/v1/outbox') : null,
    ];
  }

  function renderAgent() {
    const c = parts.collectors || {};
    const cpu = first('process_cpu_seconds_total');
    return [
      h('div', { class: 'tiles' },
        h('div', { class: 'tile' }, h('div', { class: 'label' }, 'Resident memory'),
          figure(first('process_resident_memory_bytes'), 'process_resident_memory_bytes', 'bytes', null, 'big')),
        h('div', { class: 'tile' }, h('div', { class: 'label' }, 'CPU'),
          figure(cpu, 'process_cpu_seconds_total', 'percent', 'rate', 'big')),
        h('div', { class: 'tile' }, h('div', { class: 'label' }, 'History'),
          figure(first('lookout_history_bytes'), 'lookout_history_bytes', 'bytes', null, 'big'),
          h('div', { class: 'sub' }, figure(first('lookout_history_series'), 'lookout_history_series', 'count'), ' series'))),
      h('div', { class: 'table-wrap' }, h('h3', {}, 'Collectors'),
        h('table', { class: 'data' },
          h('thead', {}, h('tr', {}, h('th', {}, 'collector'), h('th', {}, 'state'), h('th', { class: 'num' }, 'took'))),
          h('tbody', {}, Object.entries(c).map(([name, st]) => {
            const up = named('lookout_collector_up').find((e) => e.labels.collector === name);
            const took = named('lookout_collector_duration_seconds').find((e) => e.labels.collector === name);
            return h('tr', {},
              h('th', { scope: 'row', class: 'lbl' }, name),
              h('td', {}, st.up == null ? h('span', { class: 'muted' }, 'starting')
                : up ? figure(up, 'lookout_collector_up', 'okfail') : (st.up ? 'ok' : 'failing'),
              st.error ? h('div', { class: 'error' }, st.error) : null,
              st.target_error ? h('div', { class: 'error' }, 'target down: ', st.target_error) : null),
              h('td', { class: 'num' }, took ? figure(took, 'lookout_collector_duration_seconds', 'seconds') : '—'));
          })))),
    ];
  }

  // ---------------------------------------------------------------------------------------
  // Silences: why an alert is muted (the stream's muted_by), the Silence form, the list
  // (GET /api/v1/silences), and writes with the API token (a separate token from the read
  // token, asked for on a 401 and kept in sessionStorage under its own key).
  // ---------------------------------------------------------------------------------------
  // Buttons live in panels that are rebuilt on every event; the same element is kept for the
  // same key so that a click in progress or the focus survives a rebuild.
  const kept = new Map();
  const keptUsed = new Set();
  function keep(key, make) {
    let el = kept.get(key);
    if (!el) { el = make(); kept.set(key, el); }
    keptUsed.add(key);
    return el;
  }
  let skew = 0; // the agent's clock minus this browser's, from the stream's `time`
  const agentNow = () => Date.now() + skew;
  const alertKey = (x) => JSON.stringify([x.alert, x.labels || {}]);
  const escapeRegex = (v) => String(v).replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
  const when = (ms) => new Date(ms).toLocaleString();

  function mutedBadges(x) {
    const out = [];
    const ids = (x.muted_by || []).filter((r) => r.by === 'silence').map((r) => r.id);
    if (ids.length) {
      const about = ids.map((id) => {
        const s = (silences || []).find((y) => y.id === id);
        return s ? `silence ${id} until ${when(Date.parse(s.ends))}${s.comment ? `: ${s.comment}` : ''}${s.created_by ? ` (${s.created_by})` : ''}` : `silence ${id}`;
      });
      out.push(h('span', { class: 'mute-badge', 'data-by': 'silence', 'data-ids': ids.join(' '), title: about.join('\n') }, 'silenced'));
    }
    for (const r of x.muted_by || []) {
      if (r.by === 'maintenance') out.push(h('span', { class: 'mute-badge', 'data-by': 'maintenance', title: 'in a maintenance window (notify.maintenance)' }, `maintenance: ${r.name}`));
      else if (r.by === 'inhibition') out.push(h('span', { class: 'mute-badge', 'data-by': 'inhibition', title: `${r.source} fires and explains this alert` }, `inhibited by ${r.source}`));
    }
    return out;
  }

  function silenceButton(x) {
    const key = alertKey(x);
    const labels = Object.entries(x.labels || {}).map(([k, v]) => `${k}=${v}`).join(' ');
    return keep(`silence:${key}`, () => h('button', { type: 'button', class: 'btn act', 'data-silence-for': x.alert,
      'aria-label': `Silence ${x.alert} ${labels}`.trim(), onclick: () => openSilence(key) }, 'Silence'));
  }

  // The list, read again when the stream's alerts change (at most every 5 s) and at once
  // after each action.
  let silences = null;
  let silencesError = null;
  let silencesTimer = null;
  let silencesLast = 0;
  let silencesRun = 0;
  const notice = { text: '', error: false, timer: null };
  function stateAt(x, now) {
    if (now < Date.parse(x.starts)) return 'pending';
    return now < Date.parse(x.ends) ? 'active' : 'expired';
  }
  function loadSilences(now) {
    if (locked) return;
    if (silencesTimer) { if (!now) return; clearTimeout(silencesTimer); }
    const wait = now ? 0 : Math.max(0, silencesLast + 5000 - Date.now());
    silencesTimer = setTimeout(async () => {
      silencesTimer = null;
      silencesLast = Date.now();
      silencesRun += 1;
      const run = silencesRun;
      const all = [];
      try {
        let after = null;
        for (let page = 0; page < 5; page += 1) {
          const qs = new URLSearchParams({ limit: '1000' });
          if (after) qs.set('after', after);
          const res = await api(`/api/v1/silences?${qs}`);
          const body = await res.json();
          if (!res.ok) throw new Error(body.error || `HTTP ${res.status}`);
          all.push(...body.silences);
          after = body.next;
          if (!after) break;
        }
      } catch (e) {
        // Refused: the read token prompt is up. Not answering: the header says so already.
        if (e instanceof Unauthorized || e instanceof TypeError) return;
        if (run === silencesRun) { silencesError = `Silences: ${e.message}`; render(); }
        return;
      }
      if (run !== silencesRun) return;
      silences = all;
      silencesError = null;
      render();
    }, wait);
  }
  function say(text, error) {
    clearTimeout(notice.timer);
    notice.text = text;
    notice.error = !!error;
    notice.timer = setTimeout(() => { notice.text = ''; render(); }, 20000);
    render();
  }

  function rel(ms) {
    return h('time', { datetime: new Date(ms).toISOString(), title: when(ms), 'data-in': ms },
      `in ${duration(Math.max(0, ms - agentNow()) / 1000)}`);
  }
  function matcherCodes(m) {
    return h('span', { class: 'labels' }, Object.entries(m || {}).map(([k, v]) => h('code', {}, `${k}=${v}`)));
  }
  function renderSilences() {
    const now = agentNow();
    const list = (silences || []).map((x) => ({ ...x, st: stateAt(x, now) }));
    const current = list.filter((x) => x.st !== 'expired')
      .sort((a, b) => Date.parse(a.ends) - Date.parse(b.ends));
    const expired = list.filter((x) => x.st === 'expired')
      .sort((a, b) => Date.parse(b.ends) - Date.parse(a.ends));
    const status = keep('silences:notice', () => h('p', { role: 'status', tabindex: '-1' }));
    if (status.textContent !== notice.text) status.textContent = notice.text;
    status.className = `notice${notice.error ? ' error' : ''}`;
    status.hidden = !notice.text;
    const out = [status];
    if (silencesError) out.push(h('p', { class: 'error' }, silencesError));
    out.push(current.length === 0 ? h('p', { class: 'muted' }, 'No active or pending silence.')
      : h('ul', { class: 'silences' }, current.map((x) => h('li', {
        class: 'silence', 'data-silence': x.id, 'data-state': x.st, 'data-source': x.source },
      h('span', { class: `tag state-tag st-${x.st}` }, x.st),
      matcherCodes(x.matchers),
      h('span', { class: 'when' }, x.st === 'pending' ? ['starts ', rel(Date.parse(x.starts)), ', '] : null,
        'ends ', rel(Date.parse(x.ends))),
      x.comment ? h('span', { class: 'comment' }, x.comment) : null,
      h('span', { class: 'who muted' }, x.created_by ? `by ${x.created_by} · ` : '',
        x.source === 'config' ? 'configuration file' : 'API'),
      x.source === 'api' ? keep(`expire:${x.id}`, () => h('button', { type: 'button', class: 'btn act',
        'data-expire': x.id, 'aria-label': `Expire silence ${x.id}`, onclick: (ev) => expireSilence(x.id, ev.currentTarget) }, 'Expire')) : null))));
    if (expired.length) {
      const box = keep('silences:expired', () => h('details', { class: 'expired' }));
      const summary = keep('silences:expired-summary', () => h('summary'));
      summary.textContent = `${expired.length} expired in the last 24 h`;
      box.replaceChildren(summary,
        h('ul', { class: 'silences' }, expired.map((x) => h('li', { class: 'silence', 'data-silence': x.id, 'data-state': 'expired', 'data-source': x.source },
          matcherCodes(x.matchers),
          h('span', { class: 'when' }, 'ended ', h('time', { datetime: x.ends }, when(Date.parse(x.ends)))),
          x.comment ? h('span', { class: 'comment' }, x.comment) : null,
          x.created_by ? h('span', { class: 'who muted' }, `by ${x.created_by}`) : null))));
      out.push(box);
    }
    return out;
  }

  // Writes: the API token when the tab has one; a 401 asks for it (again) and retries.
  const API_TOKEN_KEY = 'lookout.api-token';
  let apiTokenWait = null;
  function askApiToken(refused) {
    const dialog = $('#api-token-dialog');
    const err = $('#api-token-error');
    err.hidden = !refused;
    err.textContent = refused ? 'That API token was refused. Check agent.api_token_file on the host.' : '';
    $('#api-token').value = '';
    return new Promise((resolve) => {
      apiTokenWait = resolve;
      if (!dialog.open) dialog.showModal();
      $('#api-token').focus();
    });
  }
  $('#api-token-form').addEventListener('submit', (ev) => {
    ev.preventDefault();
    const given = $('#api-token').value.trim();
    if (!given) return;
    sessionStorage.setItem(API_TOKEN_KEY, given);
    $('#api-token').value = '';
    const done = apiTokenWait;
    apiTokenWait = null;
    $('#api-token-dialog').close();
    done?.(given);
  });
  $('#api-token-dialog').addEventListener('close', () => {
    // The event comes after the closing: a prompt opened again meanwhile (the token just
    // given was refused) is not cancelled by it.
    if ($('#api-token-dialog').open) return;
    $('#api-token').value = '';
    const done = apiTokenWait;
    apiTokenWait = null;
    done?.(null);
  });
  async function write(method, path, body) {
    for (;;) {
      const apiToken = sessionStorage.getItem(API_TOKEN_KEY);
      const headers = { Accept: 'application/json' };
      if (body) headers['Content-Type'] = 'application/json';
      if (apiToken) headers.Authorization = `Bearer ${apiToken}`;
      const res = await fetch(path, { method, cache: 'no-store', headers, body: body ? JSON.stringify(body) : undefined });
      const doc = await res.json().catch(() => ({}));
      if (res.status !== 401) return { status: res.status, ok: res.ok, doc };
      if (apiToken) sessionStorage.removeItem(API_TOKEN_KEY);
      if (!await askApiToken(!!apiToken)) return { status: 401, ok: false, doc, cancelled: true };
    }
  }

  async function expireSilence(id, button) {
    button.disabled = true;
    try {
      const r = await write('DELETE', `/api/v1/silences/${encodeURIComponent(id)}`);
      if (r.cancelled) say(`Silence ${id} not expired: the agent needs its API token for that.`, true);
      else if (!r.ok) say(r.doc.error || `Silence ${id} not expired: HTTP ${r.status}`, true);
      else say(r.doc.persisted === false ? `Silence ${id} expired, but ${r.doc.error}` : `Silence ${id} expired.`, r.doc.persisted === false);
    } catch (e) {
      say(`Silence ${id} not expired: the agent did not answer.`, true);
    } finally {
      button.disabled = false;
    }
    loadSilences(true);
    // The button goes with the silence: the focus goes to what happened.
    if (!button.isConnected || document.activeElement === document.body) kept.get('silences:notice')?.focus({ preventScroll: true });
  }

  // The form: matchers prefilled from the alert (its name and every label but severity,
  // escaped so that each matches its value only), a duration, a comment and an author.
  const AUTHOR_KEY = 'lookout.silence-author';
  let silenceFor = null;
  function matcherRow(label, pattern) {
    const row = h('div', { class: 'matcher' },
      h('input', { class: 'm-label', autocomplete: 'off', spellcheck: 'false' }),
      h('span', { 'aria-hidden': 'true' }, '='),
      h('input', { class: 'm-pattern', autocomplete: 'off', spellcheck: 'false' }),
      h('button', { type: 'button', class: 'btn', onclick: () => {
        const next = row.nextElementSibling || row.previousElementSibling;
        row.remove();
        renumber();
        (next?.querySelector('.m-label') || $('#silence-add')).focus();
      } }, '×'));
    row.querySelector('.m-label').value = label;
    row.querySelector('.m-pattern').value = pattern;
    return row;
  }
  function renumber() {
    [...$('#silence-matchers').children].forEach((row, i) => {
      row.querySelector('.m-label').setAttribute('aria-label', `Label of matcher ${i + 1}`);
      row.querySelector('.m-pattern').setAttribute('aria-label', `Pattern of matcher ${i + 1}`);
      row.querySelector('button').setAttribute('aria-label', `Remove matcher ${i + 1}`);
    });
  }
  function pressDuration() {
    const v = $('#silence-duration').value.trim();
    for (const b of document.querySelectorAll('#silence-durations button')) b.setAttribute('aria-pressed', String(b.dataset.duration === v));
  }
  function showSilenceError(text) {
    const err = $('#silence-error');
    err.textContent = text;
    err.hidden = !text;
  }
  function openSilence(key) {
    const x = (parts.alerts?.items || []).find((a) => alertKey(a) === key);
    if (!x) return;
    silenceFor = key;
    $('#silence-title').textContent = `Silence ${x.alert}`;
    const rows = [['alert', x.alert], ...Object.entries(x.labels || {}).filter(([k]) => k !== 'severity')];
    $('#silence-matchers').replaceChildren(...rows.map(([k, v]) => matcherRow(k, escapeRegex(v))));
    renumber();
    $('#silence-duration').value = '2h';
    pressDuration();
    $('#silence-comment').value = '';
    $('#silence-author').value = localStorage.getItem(AUTHOR_KEY) || '';
    showSilenceError('');
    $('#silence-dialog').showModal();
    $('#silence-comment').focus();
  }
  $('#silence-add').addEventListener('click', () => {
    const row = matcherRow('', '');
    $('#silence-matchers').append(row);
    renumber();
    row.querySelector('.m-label').focus();
  });
  $('#silence-duration').addEventListener('input', pressDuration);
  for (const b of document.querySelectorAll('#silence-durations button')) {
    b.addEventListener('click', () => { $('#silence-duration').value = b.dataset.duration; pressDuration(); });
  }
  for (const b of document.querySelectorAll('dialog [data-close]')) b.addEventListener('click', () => b.closest('dialog').close());
  $('#silence-dialog').addEventListener('close', () => {
    if ($('#silence-dialog').open) return;
    // Back to the row's Silence button (the same element, kept across renders).
    const back = kept.get(`silence:${silenceFor}`);
    if (back?.isConnected) back.focus();
  });
  let silenceBusy = false;
  $('#silence-form').addEventListener('submit', async (ev) => {
    ev.preventDefault();
    if (silenceBusy) return;
    const matchers = {};
    for (const row of $('#silence-matchers').children) {
      const k = row.querySelector('.m-label').value.trim();
      if (k) matchers[k] = row.querySelector('.m-pattern').value;
    }
    const length = $('#silence-duration').value.trim();
    const body = { matchers, comment: $('#silence-comment').value.trim(), created_by: $('#silence-author').value.trim() };
    if (/^\d{4}-\d\d-\d\d/.test(length)) body.ends = length; else body.duration = length;
    localStorage.setItem(AUTHOR_KEY, body.created_by);
    showSilenceError('');
    silenceBusy = true;
    const submit = $('#silence-form button[type="submit"]');
    submit.disabled = true;
    try {
      const r = await write('POST', '/api/v1/silences', body);
      if (r.cancelled) { showSilenceError('Not silenced: the agent needs its API token for that.'); return; }
      if (!r.ok) { showSilenceError(r.doc.error || `Not silenced: HTTP ${r.status}`); return; }
      const what = matchers.alert || 'the matching alerts';
      say(r.doc.persisted === false ? `Silence ${r.doc.id} made, but ${r.doc.error}` : `Silenced ${what} (silence ${r.doc.id}).`, r.doc.persisted === false);
      $('#silence-dialog').close();
      loadSilences(true);
    } catch (e) {
      showSilenceError('Not silenced: the agent did not answer. Try again.');
    } finally {
      silenceBusy = false;
      submit.disabled = false;
    }
  });

  // ---------------------------------------------------------------------------------------
  // Page: panels, header, what is not configured.
  // ---------------------------------------------------------------------------------------
  const panelEls = new Map();
  function panelEl(p) {
    if (panelEls.has(p.id)) return panelEls.get(p.id);
    const live = h('div', { class: 'live' });
    const charts = h('div', { class: 'charts' });
    const el = h('section', { class: `panel${p.wide ? ' wide' : ''}${p.charts ? ' has-charts' : ''}`, id: `panel-${p.id}`, 'data-panel': p.id, hidden: true },
      h('h2', {}, p.title), h('div', { class: 'body' }, live, p.charts ? charts : null));
    $('#panels').append(el);
    const entry = { el, live, charts, built: false };
    panelEls.set(p.id, entry);
    return entry;
  }

  let renderQueued = false;
  function render() {
    if (renderQueued) return;
    renderQueued = true;
    setTimeout(() => { renderQueued = false; renderNow(); }, 0);
  }
  function renderPanel(p) {
    const pe = panelEl(p);
    const shown = connectedOnce && present(p);
    pe.el.hidden = !shown;
    if (!shown) return false;
    // Buttons are kept across renders (see keep): one that had the focus gets it back (the
    // render moves it into the new content, which takes the focus away).
    const focused = pe.live.contains(document.activeElement) ? document.activeElement : null;
    const content = p.render ? p.render() : (p.sections || []).map((s, i) => section(p, s, i));
    pe.live.replaceChildren(...[content].flat(Infinity).filter(Boolean));
    if (focused && focused.isConnected && document.activeElement !== focused) focused.focus({ preventScroll: true });
    if (p.charts && !pe.built) { buildCharts(p, pe); pe.built = true; }
    return true;
  }
  function renderNow() {
    if (locked) return;
    const absent = [];
    keptUsed.clear();
    for (const p of PANELS) {
      if (!renderPanel(p) && p.hint && connectedOnce) absent.push(p.hint);
    }
    for (const k of kept.keys()) if (!keptUsed.has(k)) kept.delete(k);
    $('#absent').textContent = absent.length ? `Not configured on this agent: ${absent.join(' · ')}` : '';
    const agent = parts.agent;
    if (agent) {
      $('#host').textContent = agent.host;
      $('#version').textContent = `v${agent.version}`;
      document.title = `${agent.host} · lookout`;
    }
    const health = parts.alerts?.health;
    if (health) {
      const el = $('#health');
      el.dataset.health = health;
      const n = parts.alerts.items.filter((x) => x.state === 'firing').length;
      const m = parts.alerts.items.filter((x) => x.state === 'firing' && (x.silenced || x.inhibited)).length;
      el.textContent = health === 'ok' ? 'healthy' : `${health} · ${n} firing${m ? `, ${m} muted` : ''}`;
    }
  }

  // ---------------------------------------------------------------------------------------
  // Requests: every one carries the read token when the tab has one.
  // ---------------------------------------------------------------------------------------
  const TOKEN_KEY = 'lookout.read-token';
  let token = sessionStorage.getItem(TOKEN_KEY) || '';
  let locked = false;
  class Unauthorized extends Error {}
  async function api(path, init) {
    const headers = { Accept: 'application/json' };
    if (token) headers.Authorization = `Bearer ${token}`;
    const res = await fetch(path, { cache: 'no-store', ...(init || {}), headers: { ...headers, ...(init?.headers || {}) } });
    if (res.status === 401) { askToken(); throw new Unauthorized(); }
    return res;
  }
  function askToken() {
    const refused = !!token;
    locked = true;
    streamCtl?.abort();
    series.clear(); byName.clear();
    for (const k of Object.keys(parts)) delete parts[k];
    for (const pe of panelEls.values()) { pe.el.hidden = true; pe.live.replaceChildren(); }
    for (const d of document.querySelectorAll('dialog[open]')) d.close();
    silences = null; silencesError = null; kept.clear();
    $('#absent').textContent = '';
    $('#panels').hidden = true;
    $('#token-prompt').hidden = false;
    const err = $('#token-error');
    err.hidden = !refused;
    err.textContent = refused ? 'That token was refused. Check agent.read_token_file on the host.' : '';
    setConn('locked');
    $('#token').focus();
  }
  $('#token-form').addEventListener('submit', (ev) => {
    ev.preventDefault();
    token = $('#token').value.trim();
    sessionStorage.setItem(TOKEN_KEY, token);
    $('#token').value = '';
    $('#token-prompt').hidden = true;
    $('#panels').hidden = false;
    locked = false;
    startStream();
  });

  // ---------------------------------------------------------------------------------------
  // The live stream: fetch, read the body as Server-Sent Events, reconnect with backoff.
  // ---------------------------------------------------------------------------------------
  let streamCtl = null;
  let streamRun = 0;
  let connectedOnce = false;
  const conn = { state: 'connecting', since: null };
  function setConn(state) {
    if (state === 'disconnected' && conn.state !== 'disconnected') conn.since = Date.now();
    conn.state = state;
    const el = $('#conn');
    el.dataset.state = state;
    el.textContent = {
      live: 'live',
      connecting: 'connecting…',
      locked: 'token needed',
      disconnected: `disconnected since ${clock(conn.since || Date.now())}`,
    }[state];
    document.body.dataset.conn = state;
  }
  const sleep = (ms) => new Promise((r) => { setTimeout(r, ms); });
  const WATCHDOG_MS = 40000; // the agent sends a comment every 15 s

  async function startStream() {
    streamRun += 1;
    const run = streamRun;
    streamCtl?.abort();
    let delay = 500;
    while (run === streamRun && !locked) {
      const ctl = new AbortController();
      streamCtl = ctl;
      try {
        const res = await api('/api/v1/stream', { signal: ctl.signal, headers: { Accept: 'text/event-stream' } });
        if (!res.ok || !res.body) throw new Error(`HTTP ${res.status}`);
        delay = 500;
        await readEvents(res.body, ctl);
      } catch (e) {
        if (e instanceof Unauthorized) return;
      }
      if (run !== streamRun || locked) return;
      setConn('disconnected');
      await sleep(delay);
      delay = Math.min(delay * 2, 5000);
    }
  }

  async function readEvents(body, ctl) {
    const reader = body.pipeThrough(new TextDecoderStream()).getReader();
    let timer = null;
    const touch = () => { clearTimeout(timer); timer = setTimeout(() => ctl.abort(), WATCHDOG_MS); };
    touch();
    let buf = '';
    try {
      for (;;) {
        const { value, done } = await reader.read();
        if (done) return;
        touch();
        buf += value.replace(/\r\n?/g, '\n');
        let i = buf.indexOf('\n\n');
        while (i >= 0) {
          dispatch(buf.slice(0, i));
          buf = buf.slice(i + 2);
          i = buf.indexOf('\n\n');
        }
      }
    } finally {
      clearTimeout(timer);
    }
  }

  function dispatch(block) {
    let kind = 'message';
    const data = [];
    for (const line of block.split('\n')) {
      if (line === '' || line.startsWith(':')) continue;
      const c = line.indexOf(':');
      const field = c < 0 ? line : line.slice(0, c);
      let value = c < 0 ? '' : line.slice(c + 1);
      if (value.startsWith(' ')) value = value.slice(1);
      if (field === 'event') kind = value;
      else if (field === 'data') data.push(value);
    }
    if (data.length) onEvent(kind, JSON.parse(data.join('\n')));
  }

  let deliverySig = '';
  function onEvent(kind, d) {
    const snapshot = kind === 'snapshot';
    applySeries(d.series, d.gone, snapshot);
    for (const p of ['agent', 'alerts', 'score', 'collectors', 'processes']) if (p in d) parts[p] = d[p];
    if (typeof d.time === 'number') skew = d.time - Date.now();
    if (snapshot) {
      connectedOnce = true;
      setConn('live');
      refreshCharts(true);
    }
    if (snapshot || 'alerts' in d) loadSilences(false);
    const sig = ['lookout_outbox_pending', 'lookout_notifications_total']
      .flatMap((n) => named(n).map((e) => `${e.key}=${e.v}`)).join(',');
    if (snapshot || sig !== deliverySig) { deliverySig = sig; loadOutbox(); }
    render();
  }

  let outboxTimer = null;
  let outboxLast = 0;
  function loadOutbox() {
    if (outboxTimer) return;
    const wait = Math.max(0, outboxLast + 5000 - Date.now());
    outboxTimer = setTimeout(async () => {
      outboxTimer = null;
      outboxLast = Date.now();
      try {
        const res = await api('/api/v1/outbox?limit=1&dead_limit=5');
        if (res.ok) { outbox = await res.json(); outboxError = null; } else outboxError = (await res.json()).error;
      } catch (e) {
        if (!(e instanceof Unauthorized)) outboxError = null;
      }
      render();
    }, wait);
  }

  // ---------------------------------------------------------------------------------------
  // Charts: uPlot over /api/v1/query_range, refreshed while the page is visible.
  // ---------------------------------------------------------------------------------------
  const RANGES = { 300: 5, 3600: 15, 21600: 90, 86400: 360 }; // range (s) -> step (s)
  const REFRESH = { 300: 5000, 3600: 15000, 21600: 60000, 86400: 120000 };
  let range = Number(localStorage.getItem('lookout.range')) || 3600;
  if (!RANGES[range]) range = 3600;
  const charts = []; // {def, el, plot, box}
  const PALETTE = ['--c1', '--c2', '--c3', '--c4', '--c5', '--c6'];
  const css = (name) => getComputedStyle(document.documentElement).getPropertyValue(name).trim();

  function buildCharts(panel, pe) {
    for (const def of panel.charts) {
      const box = h('div', { class: 'plot' });
      const empty = h('div', { class: 'plot-empty muted' }, 'no data in this range yet');
      const el = h('figure', { class: 'chart' }, h('figcaption', {}, def.title), box, empty);
      pe.charts.append(el);
      const chart = { def, el, box, empty, plot: null, sig: '' };
      charts.push(chart);
      new ResizeObserver(() => { if (chart.plot) chart.plot.setSize(size(chart)); }).observe(box);
      fetchChart(chart);
    }
  }
  // 130 px at the usual 15 px font, taller on a wall screen (the font scales with the width).
  const size = (chart) => ({
    width: Math.max(200, chart.box.clientWidth),
    height: Math.round(8.7 * parseFloat(getComputedStyle(document.documentElement).fontSize)),
  });

  function legendOf(template, metric) {
    return template.replace(/\{(\w+)\}/g, (_, l) => metric[l] ?? '');
  }

  async function fetchChart(chart) {
    if (locked || document.hidden || conn.state !== 'live') return;
    const step = RANGES[range];
    const end = Math.floor(Date.now() / 1000 / step) * step;
    const start = end - range;
    const results = [];
    try {
      for (const [expr, legend] of chart.def.q) {
        const qs = new URLSearchParams({ query: expr, start: String(start), end: String(end), step: String(step) });
        const res = await api(`/api/v1/query_range?${qs}`);
        if (!res.ok) return;
        const body = await res.json();
        for (const r of body.data.result) results.push({ label: legendOf(legend, r.metric), values: r.values });
      }
    } catch (e) {
      return;
    }
    const xs = [];
    for (let t = start; t <= end; t += step) xs.push(t);
    const index = new Map(xs.map((t, i) => [t, i]));
    const data = [xs];
    for (const r of results.slice(0, 8)) {
      const ys = new Array(xs.length).fill(null);
      for (const [t, v] of r.values) {
        const i = index.get(Math.round(t));
        if (i != null) ys[i] = Number(v);
      }
      data.push(ys);
    }
    chart.empty.hidden = results.length > 0;
    const sig = `${range}|${results.slice(0, 8).map((r) => r.label).join('|')}|${css('--fg')}`;
    if (chart.plot && chart.sig === sig) { chart.plot.setData(data); return; }
    chart.plot?.destroy();
    chart.sig = sig;
    chart.plot = makePlot(chart, results.slice(0, 8).map((r) => r.label), data);
  }

  function latest(ys) {
    for (let i = ys.length - 1; i >= 0; i -= 1) if (ys[i] != null) return ys[i];
    return null;
  }

  // Axis labels: one unit for the whole axis, as many decimals as tell the ticks apart.
  function axisLabels(unit, splits) {
    const top = Math.max(...splits.map((v) => Math.abs(v)), 0);
    const incr = splits.length > 1 ? Math.abs(splits[1] - splits[0]) : top || 1;
    // v / div, with the decimals the step between ticks needs in that unit.
    const fixed = (v, div) => {
      const step = incr / div;
      const d = step > 0 ? Math.max(0, Math.min(3, -Math.floor(Math.log10(step) + 1e-9))) : 0;
      return (v / div).toFixed(d);
    };
    if (unit === 'bytes' || unit === 'rate') {
      const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
      let i = 0;
      while (top >= 1024 ** (i + 1) && i < units.length - 1) i += 1;
      return splits.map((v) => `${fixed(v, 1024 ** i)} ${units[i]}${unit === 'rate' ? '/s' : ''}`);
    }
    if (unit === 'percent') return splits.map((v) => `${fixed(v, 0.01)}%`);
    if (unit === 'seconds') {
      if (top < 1) return splits.map((v) => `${fixed(v, 0.001)} ms`);
      return splits.map((v) => `${fixed(v, 1)} s`);
    }
    const suffix = { perSecond: '/s', times: 'x' }[unit] || '';
    if (top >= 1e6) return splits.map((v) => `${fixed(v, 1e6)}M${suffix}`);
    if (top >= 1e4) return splits.map((v) => `${fixed(v, 1e3)}k${suffix}`);
    return splits.map((v) => `${fixed(v, 1)}${suffix}`);
  }

  function makePlot(chart, labels, data) {
    const unit = chart.def.unit;
    const axis = { stroke: css('--muted'), grid: { stroke: css('--grid'), width: 1 }, ticks: { stroke: css('--grid'), width: 1, size: 4 }, font: '11px system-ui, sans-serif', gap: 3 };
    const hhmm = (t) => { const d = new Date(t * 1000); return `${pad(d.getHours())}:${pad(d.getMinutes())}${range <= 300 ? `:${pad(d.getSeconds())}` : ''}`; };
    return new uPlot({
      ...size(chart),
      cursor: { drag: { x: false, y: false } },
      legend: { show: true, live: true },
      scales: { x: { time: true }, y: { range: (u, min, max) => [Math.min(0, min), chart.def.max ? Math.max(chart.def.max, max) : (max > 0 ? max * 1.1 : 1)] } },
      axes: [
        { ...axis, size: 24, values: (u, splits) => splits.map(hhmm) },
        { ...axis, size: 72, values: (u, splits) => axisLabels(unit, splits) },
      ],
      series: [
        { value: (u, t) => (t == null ? '—' : clock(t * 1000)) },
        ...labels.map((label, i) => ({
          label: label || chart.def.title,
          stroke: css(PALETTE[i % PALETTE.length]),
          width: 1.5,
          fill: labels.length === 1 ? css('--fill') : undefined,
          points: { show: false },
          // Without the cursor on the chart, the legend shows the latest value.
          value: (u, v, si, idx) => format(unit, idx == null ? latest(u.data[si]) : v),
        })),
      ],
    }, data, chart.box);
  }

  let chartTimer = null;
  function refreshCharts(now) {
    clearTimeout(chartTimer);
    if (now) for (const c of charts) fetchChart(c);
    chartTimer = setTimeout(() => refreshCharts(true), REFRESH[range]);
  }
  document.addEventListener('visibilitychange', () => { if (!document.hidden) refreshCharts(true); });
  matchMedia('(prefers-color-scheme: dark)').addEventListener('change', () => {
    for (const c of charts) { c.plot?.destroy(); c.plot = null; c.sig = ''; }
    refreshCharts(true);
  });

  function selectRange(r) {
    range = r;
    localStorage.setItem('lookout.range', String(r));
    for (const b of document.querySelectorAll('#range button')) b.setAttribute('aria-pressed', String(Number(b.dataset.range) === r));
    refreshCharts(true);
  }
  for (const b of document.querySelectorAll('#range button')) b.addEventListener('click', () => selectRange(Number(b.dataset.range)));
  for (const b of document.querySelectorAll('#range button')) b.setAttribute('aria-pressed', String(Number(b.dataset.range) === range));

  // Ages ("since ... (4m 10s)") and silences' "in 1h 20m" move with the clock between
  // events, in place: rows are not rebuilt, so a click or the focus is never lost to a tick.
  let silenceSig = '';
  setInterval(() => {
    if (locked) return;
    const now = Date.now();
    for (const el of document.querySelectorAll('[data-ago]')) el.textContent = duration((now - Number(el.dataset.ago)) / 1000);
    const at = agentNow();
    for (const el of document.querySelectorAll('[data-in]')) el.textContent = `in ${duration(Math.max(0, Number(el.dataset.in) - at) / 1000)}`;
    // A silence that starts or ends moves between the lists.
    const sig = (silences || []).map((x) => stateAt(x, at)).join();
    if (sig !== silenceSig) { silenceSig = sig; render(); }
  }, 1000);

  window.lookoutConsole = { panels: PANELS, series, parts, get silences() { return silences; } };
  setConn('connecting');
  startStream();
}());
