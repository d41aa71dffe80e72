// HTTP API client for sidetap-collector (docs/api.md): JSON fetches and the SSE stream.

export class ApiError extends Error {
  constructor(status, body) {
    super((body && body.error) || `HTTP ${status}`);
    this.status = status;
    this.position = body && Number.isInteger(body.position) ? body.position : null;
    this.length = body && Number.isInteger(body.length) ? Math.max(1, body.length) : 1;
    this.query = body ? body.query : undefined;
  }
}

export function url(path, params) {
  const u = new URLSearchParams();
  for (const [k, v] of Object.entries(params || {})) {
    if (v !== undefined && v !== null && v !== '') u.set(k, v);
  }
  const s = u.toString();
  return s ? `${path}?${s}` : path;
}

export async function getJSON(path, params, signal) {
  let r;
  try {
    r = await fetch(url(path, params), { signal, headers: { Accept: 'application/json' } });
  } catch (e) {
    if (e.name === 'AbortError') throw e;
    throw new ApiError(0, { error: 'the collector is unreachable (is the port-forward running?)' });
  }
  let body = null;
  try {
    body = await r.json();
  } catch (_) {
    body = null;
  }
  if (!r.ok) throw new ApiError(r.status, body || { error: `${r.status} ${r.statusText}` });
  return body;
}

// Live entries for a query. Calls onEntry(entry) per new entry, onStats(stats),
// onNotice(message), onState('live'|'connecting'|'down'). EventSource reconnects by itself;
// onReconnect() lets the caller fill the gap with a query for ids after the newest it has.
export function openStream(q, handlers) {
  const es = new EventSource(url('/api/v1/stream', { q }));
  let opened = false;
  es.addEventListener('open', () => {
    handlers.onState && handlers.onState('live');
    if (opened && handlers.onReconnect) handlers.onReconnect();
    opened = true;
  });
  es.addEventListener('error', () => {
    handlers.onState && handlers.onState(es.readyState === EventSource.CLOSED ? 'down' : 'connecting');
  });
  es.addEventListener('entry', (ev) => {
    let e;
    try {
      e = JSON.parse(ev.data);
    } catch (_) {
      return;
    }
    if (e.id === undefined && ev.lastEventId) e.id = ev.lastEventId;
    handlers.onEntry(e);
  });
  es.addEventListener('stats', (ev) => {
    try {
      handlers.onStats && handlers.onStats(JSON.parse(ev.data));
    } catch (_) { /* ignore a malformed stats event */ }
  });
  es.addEventListener('notice', (ev) => {
    try {
      handlers.onNotice && handlers.onNotice(JSON.parse(ev.data).message);
    } catch (_) { /* ignore */ }
  });
  return () => es.close();
}
