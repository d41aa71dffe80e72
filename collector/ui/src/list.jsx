// The API calls list: a virtual list (only the rows in view are in the DOM), newest first.
// Keeps the rows the user is reading in place while live entries arrive above them.
import { useEffect, useLayoutEffect, useRef, useState } from 'preact/hooks';
import { clock, elapsed, isError, peerAddr, peerName, protoLabel, protoName, status } from './format.js';

export const ROW_H = 30;
const OVERSCAN = 8;

function Peer({ side, p }) {
  if (!p) return <span class="muted">?</span>;
  const name = peerName(p);
  const field = p.name ? `${side}.name` : p.workload ? `${side}.workload` : `${side}.ip`;
  return (
    <>
      <span class="fv pod" data-f={field} data-v={name} title={p.workload ? `${name} (${p.workload})` : name}>{name}</span>
      {p.namespace ? (
        <span class="fv ns" data-f={`${side}.namespace`} data-v={p.namespace}>{p.namespace}</span>
      ) : p.name && p.ip ? (
        <span class="muted addr">{peerAddr(p)}</span>
      ) : null}
    </>
  );
}

function Row({ e, selected, onClick }) {
  const pn = protoName(e);
  const req = e.request || {};
  const [st, stc] = status(e);
  const err = isError(e);
  const path = req.path !== undefined ? req.path : e.summary || '';
  const statusField =
    pn === 'grpc' ? ['grpc.status', e.grpc && e.grpc.status]
      : pn === 'dns' && e.dns && e.dns.rcode ? ['dns.rcode', e.dns.rcode]
        : e.response && typeof e.response.status === 'number' ? ['response.status', e.response.status] : null;
  return (
    <div
      class={`row${err ? ' error' : ''}${selected ? ' selected' : ''}`}
      role="row"
      tabIndex={selected ? 0 : -1}
      aria-selected={selected ? 'true' : 'false'}
      data-id={e.id}
      onClick={onClick}
      title={e.error ? e.error.message : undefined}
    >
      <span class="c-time" role="cell">{clock(e.timestamp)}</span>
      <span class="c-proto" role="cell">
        <span class={`badge fv p-${pn}`} data-f="" data-v={pn}>{protoLabel(e)}</span>
      </span>
      <span class="c-src" role="cell"><Peer side="src" p={e.src} /></span>
      <span class="c-arrow" aria-hidden="true">→</span>
      <span class="c-dst" role="cell"><Peer side="dst" p={e.dst} /></span>
      <span class="c-method" role="cell">
        {req.method ? <span class="fv" data-f="request.method" data-v={req.method}>{req.method}</span> : null}
      </span>
      <span class="c-path" role="cell">
        {req.path !== undefined && req.path !== '' ? (
          <span class="fv" data-f="request.path" data-v={req.path}>{path}</span>
        ) : (
          <span class="muted">{e.summary || ''}</span>
        )}
        {e.error ? <span class="errmsg">{e.error.message}</span> : null}
      </span>
      <span class={`c-status st-${stc}`} role="cell">
        {statusField ? (
          <span class="fv" data-f={statusField[0]} data-v={statusField[1]} data-num={typeof statusField[1] === 'number' ? '1' : undefined}>{st}</span>
        ) : st}
      </span>
      <span class="c-elapsed" role="cell">{elapsed(e.elapsedTime)}</span>
    </div>
  );
}

// store: EntryStore; version: bumps on change; onOpen(entry) opens details.
export function EntryList({ store, version, selectedId, onSelect, onOpen, onNearEnd, emptyText }) {
  const ref = useRef(null);
  const [scrollTop, setScrollTop] = useState(0);
  const [height, setHeight] = useState(600);
  const lastNewer = useRef(store.newerAdded);
  const lastStoreVersion = useRef(null);
  const raf = useRef(0);

  useEffect(() => {
    const el = ref.current;
    const ro = new ResizeObserver(() => setHeight(el.clientHeight));
    ro.observe(el);
    setHeight(el.clientHeight);
    return () => ro.disconnect();
  }, []);

  // Scroll anchoring: entries added on top push the rows being read down by as many rows.
  useLayoutEffect(() => {
    const el = ref.current;
    const added = store.newerAdded - lastNewer.current;
    lastNewer.current = store.newerAdded;
    if (lastStoreVersion.current !== null && added > 0 && el.scrollTop > 0) {
      el.scrollTop += added * ROW_H;
      setScrollTop(el.scrollTop);
    }
    lastStoreVersion.current = version;
  }, [version]);

  const onScroll = () => {
    if (raf.current) return;
    raf.current = requestAnimationFrame(() => {
      raf.current = 0;
      const el = ref.current;
      if (!el) return;
      setScrollTop(el.scrollTop);
      if (onNearEnd && el.scrollTop + el.clientHeight > el.scrollHeight - ROW_H * 20) onNearEnd();
    });
  };

  const n = store.length;
  const first = Math.max(0, Math.floor(scrollTop / ROW_H) - OVERSCAN);
  const last = Math.min(n, Math.ceil((scrollTop + height) / ROW_H) + OVERSCAN);
  const rows = [];
  for (let i = first; i < last; i++) {
    const e = store.at(i);
    rows.push(
      <Row key={e.id} e={e} selected={e.id === selectedId}
        onClick={() => { onSelect(e.id); onOpen(e); }} />,
    );
  }

  const onKeyDown = (ev) => {
    if (ev.target.tagName === 'INPUT' || ev.target.tagName === 'BUTTON') return;
    let idx = selectedId ? store.indexOfId(selectedId) : -1;
    const page = Math.max(1, Math.floor(height / ROW_H) - 1);
    let next = null;
    if (ev.key === 'ArrowDown') next = idx < 0 ? 0 : Math.min(n - 1, idx + 1);
    else if (ev.key === 'ArrowUp') next = idx < 0 ? 0 : Math.max(0, idx - 1);
    else if (ev.key === 'PageDown') next = Math.min(n - 1, Math.max(0, idx) + page);
    else if (ev.key === 'PageUp') next = Math.max(0, idx - page);
    else if (ev.key === 'Home') next = 0;
    else if (ev.key === 'End') next = n - 1;
    else if (ev.key === 'Enter' && idx >= 0) {
      ev.preventDefault();
      onOpen(store.at(idx));
      return;
    }
    if (next === null || n === 0) return;
    ev.preventDefault();
    const e = store.at(next);
    onSelect(e.id);
    const el = ref.current;
    const y = next * ROW_H;
    if (y < el.scrollTop) el.scrollTop = y;
    else if (y + ROW_H > el.scrollTop + el.clientHeight) el.scrollTop = y + ROW_H - el.clientHeight;
    setScrollTop(el.scrollTop);
    // Focus the row now if it is rendered (it usually is, within the overscan), else after paint.
    const focusRow = () => {
      const rowEl = el.querySelector(`.row[data-id="${CSS.escape(e.id)}"]`);
      if (rowEl) rowEl.focus({ preventScroll: true });
      return !!rowEl;
    };
    if (!focusRow()) requestAnimationFrame(focusRow);
  };

  return (
    <div class="list" role="grid" aria-label="API calls" aria-rowcount={n}>
      <div class="row head" role="row">
        <span class="c-time" role="columnheader">Time</span>
        <span class="c-proto" role="columnheader">Proto</span>
        <span class="c-src" role="columnheader">Source</span>
        <span class="c-arrow" />
        <span class="c-dst" role="columnheader">Destination</span>
        <span class="c-method" role="columnheader">Method</span>
        <span class="c-path" role="columnheader">Path / key</span>
        <span class="c-status" role="columnheader">Status</span>
        <span class="c-elapsed" role="columnheader">Elapsed</span>
      </div>
      <div class="scroller" ref={ref} onScroll={onScroll} onKeyDown={onKeyDown}
        tabIndex={n && !selectedId ? 0 : -1}
        onFocus={(ev) => { if (ev.target === ref.current && n && !selectedId) onSelect(store.at(Math.floor(ref.current.scrollTop / ROW_H)).id); }}>
        <div class="spacer" style={{ height: `${n * ROW_H}px` }}>
          <div class="window" style={{ transform: `translateY(${first * ROW_H}px)` }}>{rows}</div>
        </div>
        {n === 0 ? <div class="empty">{emptyText}</div> : null}
      </div>
    </div>
  );
}
