// sidetap web UI: the API calls list (live), the KFL filter bar, entry details and the
// service map. Talks only to the collector that serves it (docs/api.md).
import { render } from 'preact';
import { useCallback, useEffect, useRef, useState } from 'preact/hooks';
import { ApiError, getJSON, openStream, url } from './api.js';
import { Details } from './details.jsx';
import { count, duration, rate } from './format.js';
import { andFilter, EXAMPLES, expr } from './kfl.js';
import { EntryList } from './list.jsx';
import { EntryStore } from './store.js';
import './style.css';

// The first page is small so a new filter paints fast; older pages load as the list scrolls.
const PAGE = 100;
const OLDER_PAGE = 1000;

function readUrl() {
  const p = new URLSearchParams(location.search);
  return { q: p.get('q') || '', view: p.get('view') === 'map' ? 'map' : 'api' };
}

function writeUrl(q, view, push) {
  const u = url(location.pathname, { q, view: view === 'map' ? 'map' : '' });
  if (u === location.pathname + location.search) return;
  (push ? history.pushState : history.replaceState).call(history, null, '', u);
}

function initialTheme() {
  const saved = localStorage.getItem('sidetap.theme');
  if (saved === 'dark' || saved === 'light') return saved;
  return matchMedia && matchMedia('(prefers-color-scheme: dark)').matches ? 'dark' : 'light';
}

// --- filter bar -------------------------------------------------------------------------
function FilterBar({ draft, setDraft, onApply, error, applied, inputRef }) {
  const [menu, setMenu] = useState(false);
  const mirror = useRef(null);
  const sync = () => { if (mirror.current && inputRef.current) mirror.current.scrollLeft = inputRef.current.scrollLeft; };
  useEffect(sync);
  const showMark = error && error.position !== null && error.query === draft;
  let mark = null;
  if (showMark) {
    const pos = Math.min(error.position, draft.length);
    const end = Math.min(draft.length, pos + error.length);
    mark = (
      <>
        {draft.slice(0, pos)}
        <span class="ferr" data-pos={pos} data-len={error.length}>{end > pos ? draft.slice(pos, end) : '\u00a0'}</span>
        {draft.slice(end)}
      </>
    );
  }
  const dirty = draft.trim() !== applied.trim();
  return (
    <div class="filterbar">
      <form class={`fbox${error ? ' bad' : ''}${dirty ? ' dirty' : ''}`} onSubmit={(ev) => { ev.preventDefault(); onApply(draft); }}>
        <span class="fprompt" aria-hidden="true">KFL</span>
        <div class="fwrap">
          <div class="fmirror" ref={mirror} aria-hidden="true">{mark}</div>
          <input
            ref={inputRef} id="filter" type="text" spellcheck={false} autocomplete="off"
            placeholder='Filter with KFL, e.g.  http and response.status >= 500   (press / to focus)'
            aria-label="KFL filter" aria-invalid={error ? 'true' : 'false'} aria-describedby="filter-error"
            value={draft} onInput={(ev) => { setDraft(ev.target.value); sync(); }} onScroll={sync} onKeyUp={sync}
            onKeyDown={(ev) => { if (ev.key === 'Escape') { ev.target.blur(); } }}
          />
        </div>
        {draft ? <button type="button" class="icon" aria-label="Clear filter" title="Clear" onClick={() => { setDraft(''); onApply(''); }}>✕</button> : null}
        <button type="submit" class="btn primary">Apply</button>
      </form>
      <div class="menuwrap">
        <button class="btn" aria-haspopup="menu" aria-expanded={menu ? 'true' : 'false'} onClick={() => setMenu(!menu)}>Examples ▾</button>
        {menu ? (
          <div class="menu" role="menu" onMouseLeave={() => setMenu(false)}>
            {EXAMPLES.map((x) => (
              <button key={x.q} role="menuitem" onClick={() => { setMenu(false); setDraft(x.q); onApply(x.q); }}>
                <span class="m-label">{x.label}</span>
                <code>{x.q}</code>
              </button>
            ))}
          </div>
        ) : null}
      </div>
      {error ? (
        <div id="filter-error" class="ferrmsg" role="alert">
          <strong>Query error:</strong> {error.message}
        </div>
      ) : null}
    </div>
  );
}

// --- add to filter / exclude popover ---------------------------------------------------
function ValuePopover({ onAdd }) {
  const [at, setAt] = useState(null);
  const hideTimer = useRef(0);
  const showTimer = useRef(0);
  useEffect(() => {
    // Shown after a short hover (not on every pass of the mouse), hidden shortly after leaving.
    const over = (ev) => {
      const el = ev.target.closest && ev.target.closest('.fv');
      if (!el) return;
      clearTimeout(hideTimer.current);
      clearTimeout(showTimer.current);
      if (el === clicked) return; // not again on the value just clicked (opening a row)
      showTimer.current = setTimeout(() => show(el), 180);
    };
    let clicked = null;
    const down = (ev) => {
      if (ev.target.closest && ev.target.closest('.vpop')) return;
      clicked = ev.target.closest ? ev.target.closest('.fv') : null;
      clearTimeout(showTimer.current);
      setAt(null);
    };
    const show = (el) => {
      if (!el.isConnected) return;
      const r = el.getBoundingClientRect();
      const f = el.dataset.f;
      const raw = el.dataset.v;
      const v = el.dataset.num ? Number(raw) : raw;
      // Below the value, or above it when there is no room below.
      const y = r.bottom + 40 > innerHeight ? r.top - 38 : r.bottom + 2;
      setAt({ x: Math.max(4, Math.min(r.left, innerWidth - 420)), y, field: f === '' ? null : f, value: v });
    };
    const out = (ev) => {
      const el = ev.target.closest && ev.target.closest('.fv');
      if (!el) return;
      if (el === clicked && !el.contains(ev.relatedTarget)) clicked = null;
      clearTimeout(showTimer.current);
      clearTimeout(hideTimer.current);
      hideTimer.current = setTimeout(() => setAt(null), 350);
    };
    const scroll = () => { clearTimeout(showTimer.current); setAt(null); };
    document.addEventListener('mouseover', over);
    document.addEventListener('mouseout', out);
    document.addEventListener('mousedown', down, true);
    document.addEventListener('scroll', scroll, true);
    return () => {
      document.removeEventListener('mouseover', over);
      document.removeEventListener('mouseout', out);
      document.removeEventListener('mousedown', down, true);
      document.removeEventListener('scroll', scroll, true);
    };
  }, []);
  if (!at) return null;
  const inc = expr(at.field, at.value, false);
  const exc = expr(at.field, at.value, true);
  return (
    <div class="vpop" style={{ left: `${at.x}px`, top: `${at.y}px` }}
      onMouseEnter={() => clearTimeout(hideTimer.current)}
      onMouseLeave={() => { hideTimer.current = setTimeout(() => setAt(null), 200); }}>
      <button class="add" title={inc} aria-label={`add to filter: ${inc}`} onClick={(ev) => { ev.stopPropagation(); setAt(null); onAdd(inc); }}>
        <b>+</b> {inc}
      </button>
      <button class="exclude" title={exc} aria-label={`exclude from filter: ${exc}`} onClick={(ev) => { ev.stopPropagation(); setAt(null); onAdd(exc); }}>
        <b>−</b> exclude
      </button>
    </div>
  );
}

// --- header -----------------------------------------------------------------------------
function Header({ view, setView, stats, theme, setTheme }) {
  const protos = stats && stats.protocols ? Object.entries(stats.protocols).filter(([, n]) => n > 0).sort((a, b) => b[1] - a[1]) : [];
  return (
    <header class="top">
      <div class="brand"><span class="logo" aria-hidden="true" />sidetap</div>
      <nav class="tabs main" role="tablist" aria-label="Views">
        <button role="tab" aria-selected={view === 'api' ? 'true' : 'false'} class={view === 'api' ? 'on' : ''} onClick={() => setView('api')}>API calls</button>
        <button role="tab" aria-selected={view === 'map' ? 'true' : 'false'} class={view === 'map' ? 'on' : ''} onClick={() => setView('map')}>Service map</button>
      </nav>
      <div class="totals" aria-label="Cluster totals">
        {stats ? (
          <>
            <span title="entries stored"><b>{count(stats.entries)}</b> entries</span>
            <span title="entries ingested per second"><b>{rate(stats.rate)}</b>/s</span>
            <span title="pods registered"><b>{count(stats.pods)}</b> pods</span>
            <span title={(stats.namespaces || []).join(', ')}><b>{count((stats.namespaces || []).length)}</b> namespaces</span>
            {protos.length ? <span class="protos" title="entries by protocol">{protos.slice(0, 6).map(([p, n]) => <span key={p} class={`mini p-${p}`}>{p} {count(n)}</span>)}</span> : null}
            {stats.evicted ? <span title="entries evicted by the memory budget" class="muted">{count(stats.evicted)} evicted</span> : null}
            {typeof stats.uptime === 'number' ? <span class="muted" title="collector uptime">up {duration(stats.uptime)}</span> : null}
          </>
        ) : <span class="muted">connecting…</span>}
      </div>
      <button class="icon theme" aria-label={`Switch to ${theme === 'dark' ? 'light' : 'dark'} theme`} title="Theme"
        onClick={() => setTheme(theme === 'dark' ? 'light' : 'dark')}>{theme === 'dark' ? '☀' : '☾'}</button>
    </header>
  );
}

// The service map and cytoscape load on first use (or when the browser is idle), so the
// API calls list does not wait for them.
let mapModule = null;
function loadMap() {
  if (!mapModule) mapModule = import('./map.jsx');
  return mapModule;
}

function LazyMap(props) {
  const [Comp, setComp] = useState(null);
  const [err, setErr] = useState(null);
  useEffect(() => {
    if (!props.active && !Comp) return;
    loadMap().then((m) => setComp(() => m.ServiceMap)).catch((e) => setErr(String(e)));
  }, [props.active]);
  if (err) return <div class="errbox">Could not load the service map: {err}</div>;
  return Comp ? <Comp {...props} /> : <div class="empty">Loading the service map…</div>;
}

// --- app --------------------------------------------------------------------------------
function App() {
  const init = readUrl();
  const [theme, setTheme] = useState(initialTheme);
  const [view, setViewState] = useState(init.view);
  const [q, setQ] = useState(init.q);
  const [draft, setDraft] = useState(init.q);
  const [qError, setQError] = useState(null);
  const storeRef = useRef(new EntryStore(100000));
  const store = storeRef.current;
  const [version, setVersion] = useState(0);
  const [paused, setPaused] = useState(false);
  const pausedRef = useRef(false);
  const pausedBuf = useRef([]);
  const [pausedCount, setPausedCount] = useState(0);
  const [streamState, setStreamState] = useState('connecting');
  const [streamStats, setStreamStats] = useState(null);
  const [liveRate, setLiveRate] = useState(0);
  const [notice, setNotice] = useState(null);
  const [clusterStats, setClusterStats] = useState(null);
  const [selectedId, setSelectedId] = useState(null);
  const [detail, setDetail] = useState(null);
  const [detailTab, setDetailTab] = useState('overview');
  const [loading, setLoading] = useState(false);
  const inputRef = useRef(null);
  const pending = useRef([]);
  const rafId = useRef(0);
  const received = useRef(0);
  const closeStream = useRef(null);
  const gen = useRef(0);
  const olderBusy = useRef(false);

  useEffect(() => {
    document.documentElement.dataset.theme = theme;
    localStorage.setItem('sidetap.theme', theme);
  }, [theme]);

  const bump = () => setVersion(store.version);

  const flush = () => {
    rafId.current = 0;
    const batch = pending.current;
    pending.current = [];
    if (!batch.length) return;
    if (pausedRef.current) {
      const buf = pausedBuf.current;
      for (const e of batch) buf.push(e);
      if (buf.length > store.cap) buf.splice(0, buf.length - store.cap);
      setPausedCount(buf.length);
      return;
    }
    if (store.addNewer(batch)) bump();
  };

  const enqueue = (e) => {
    received.current++;
    pending.current.push(e);
    if (!rafId.current) rafId.current = requestAnimationFrame(flush);
  };

  // Loads the newest page for q, then follows the stream. A bad query leaves the current
  // view as it was and shows the error with its position.
  const apply = useCallback(async (next, opts = {}) => {
    next = (next || '').trim();
    const my = ++gen.current;
    setLoading(true);
    let page;
    try {
      page = await getJSON('/api/v1/entries', { q: next, limit: PAGE });
    } catch (x) {
      if (my !== gen.current) return;
      setLoading(false);
      if (x instanceof ApiError && x.status === 400) {
        setQError({ message: x.message, position: x.position, length: x.length, query: x.query !== undefined ? x.query : next });
        setDraft(next);
      } else {
        setQError({ message: x.message, position: null, length: 0, query: next });
      }
      return;
    }
    if (my !== gen.current) return;
    if (closeStream.current) closeStream.current();
    pending.current = [];
    pausedBuf.current = [];
    setPausedCount(0);
    store.clear();
    store.addOlder(page.entries || []);
    if (!page.next || (page.entries || []).length < PAGE) store.exhausted = true;
    setQError(null);
    setQ(next);
    setDraft(next);
    setLoading(false);
    setStreamStats(null);
    bump();
    if (!opts.fromUrl) writeUrl(next, opts.view || null, true);
    const catchUp = () => {
      const after = store.newestId();
      if (after === null) return;
      getJSON('/api/v1/entries', { q: next, after, limit: 1000 })
        .then((p) => { if (my === gen.current) (p.entries || []).forEach(enqueue); })
        .catch(() => {});
    };
    closeStream.current = openStream(next, {
      onEntry: (e) => { if (my === gen.current) enqueue(e); },
      onStats: (s) => { if (my === gen.current) setStreamStats(s); },
      onNotice: (m) => { if (my === gen.current) setNotice(m); },
      onState: (s) => { if (my === gen.current) { setStreamState(s); if (s === 'live') catchUp(); } },
    });
  }, []);

  useEffect(() => {
    apply(init.q, { fromUrl: true });
    const pop = () => {
      const u = readUrl();
      setViewState(u.view);
      apply(u.q, { fromUrl: true });
    };
    addEventListener('popstate', pop);
    return () => { removeEventListener('popstate', pop); if (closeStream.current) closeStream.current(); };
  }, []);

  // Keep ?view in the URL without a new history entry.
  const setView = (v) => {
    setViewState(v);
    writeUrl(q, v, false);
  };
  useEffect(() => writeUrl(q, view, false), [view]);

  // Cluster totals and the live rate counter; the map's code is fetched once the page is idle.
  useEffect(() => {
    const idle = setTimeout(loadMap, 3000);
    let stop = false;
    const load = () => getJSON('/api/v1/stats').then((s) => { if (!stop) setClusterStats(s); }).catch(() => {});
    load();
    const t1 = setInterval(load, 3000);
    let last = received.current;
    let smooth = 0;
    const t2 = setInterval(() => {
      const n = received.current - last;
      last = received.current;
      smooth = smooth ? smooth * 0.5 + n * 0.5 : n;
      setLiveRate(smooth);
    }, 1000);
    return () => { stop = true; clearTimeout(idle); clearInterval(t1); clearInterval(t2); };
  }, []);

  const togglePause = () => {
    const p = !pausedRef.current;
    pausedRef.current = p;
    setPaused(p);
    if (!p) {
      const buf = pausedBuf.current;
      pausedBuf.current = [];
      setPausedCount(0);
      if (store.addNewer(buf)) bump();
    }
  };

  const loadOlder = async () => {
    if (olderBusy.current || store.exhausted || !store.length) return;
    olderBusy.current = true;
    const my = gen.current;
    try {
      const p = await getJSON('/api/v1/entries', { q, before: store.oldestId(), limit: OLDER_PAGE });
      if (my !== gen.current) return;
      const got = p.entries || [];
      store.addOlder(got);
      if (!p.next || got.length === 0) store.exhausted = true;
      bump();
    } catch (_) { /* retried on the next scroll */ } finally {
      olderBusy.current = false;
    }
  };

  const addFilter = useCallback((e) => {
    const next = andFilter(q, e);
    setDraft(next);
    apply(next);
  }, [q, apply]);

  const mapFilter = useCallback((e) => {
    const next = andFilter(q, e);
    setDraft(next);
    setViewState('api');
    apply(next, { view: 'api' });
  }, [q, apply]);

  // Keyboard: / focuses the filter, Esc closes the details.
  useEffect(() => {
    const key = (ev) => {
      const typing = ev.target.tagName === 'INPUT' || ev.target.tagName === 'TEXTAREA' || ev.target.tagName === 'SELECT';
      if (ev.key === '/' && !typing) {
        ev.preventDefault();
        inputRef.current && inputRef.current.focus();
        inputRef.current && inputRef.current.select();
      } else if (ev.key === 'Escape' && !typing && detail) {
        setDetail(null);
        const row = selectedId && document.querySelector(`.row[data-id="${CSS.escape(selectedId)}"]`);
        if (row) row.focus();
      }
    };
    addEventListener('keydown', key);
    return () => removeEventListener('keydown', key);
  }, [detail, selectedId]);

  const dropped = streamStats ? streamStats.dropped || 0 : 0;
  const stateLabel = paused ? 'Paused' : streamState === 'live' ? 'Live' : streamState === 'connecting' ? 'Connecting…' : 'Disconnected';
  const emptyText = loading ? 'Loading…' : q
    ? 'No entries match this filter yet. New matching calls appear here as they happen.'
    : 'No traffic yet. Calls from pods in namespaces labelled sidetap.io/inject=enabled appear here live.';

  return (
    <div class={`app view-${view}${detail ? ' with-details' : ''}`}>
      <Header view={view} setView={setView} stats={clusterStats} theme={theme} setTheme={setTheme} />
      <FilterBar draft={draft} setDraft={setDraft} onApply={(x) => apply(x)} error={qError} applied={q} inputRef={inputRef} />
      {view === 'api' ? (
        <div class="statusbar">
          <span class={`live ${paused ? 'paused' : streamState}`} aria-live="polite"><i />{stateLabel}</span>
          <span class="counter" title="matching entries received per second"><b data-testid="rate">{rate(liveRate)}</b> entries/s</span>
          <span class="counter"><b data-testid="shown">{count(store.length)}</b> shown{store.exhausted ? '' : '+'}</span>
          <span class={`counter${dropped ? ' warn' : ''}`} title="entries the collector dropped for this view because it could not keep up"><b data-testid="dropped">{count(dropped)}</b> dropped</span>
          {paused && pausedCount ? <span class="counter warn"><b data-testid="paused-new">{count(pausedCount)}</b> new while paused</span> : null}
          {notice ? <span class="notice" title={notice}>{notice}</span> : null}
          <span class="spacer-flex" />
          <button class={`btn small${paused ? ' primary' : ''}`} onClick={togglePause} aria-pressed={paused ? 'true' : 'false'}>{paused ? '▶ Resume' : '❚❚ Pause'}</button>
          <a class="btn small" href={url('/api/v1/export.har', { q })} download="sidetap.har" title="Download the calls matching the filter as a HAR file">Download HAR</a>
        </div>
      ) : null}
      <main class="main">
        <div class="pane api" hidden={view !== 'api'}>
          <EntryList store={store} version={version} selectedId={selectedId} onSelect={setSelectedId}
            onOpen={(e) => setDetail(e)} onNearEnd={loadOlder} emptyText={emptyText} />
          {detail ? <Details entry={detail} onClose={() => setDetail(null)} tab={detailTab} setTab={setDetailTab} /> : null}
        </div>
        <div class="pane mappane" hidden={view !== 'map'}>
          <LazyMap q={q} active={view === 'map'} onFilter={mapFilter} />
        </div>
      </main>
      <ValuePopover onAdd={addFilter} />
    </div>
  );
}

render(<App />, document.getElementById('app'));
