// The service map: workloads as nodes grouped by namespace, calls as directed edges whose
// width follows requests or bytes. Cytoscape.js draws it with the fcose layout.
import cytoscape from 'cytoscape';
import fcose from 'cytoscape-fcose';
import { useEffect, useRef, useState } from 'preact/hooks';
import { getJSON } from './api.js';
import { bytes, count, elapsed, rateText } from './format.js';
import { nodeExpr } from './kfl.js';

cytoscape.use(fcose);

const PALETTE = ['#2563eb', '#16a34a', '#db2777', '#ea580c', '#7c3aed', '#0891b2', '#ca8a04', '#9333ea',
  '#4f46e5', '#059669', '#c026d3', '#65a30d'];
// Namespaces get palette colours in name order, so up to 12 on screen never share one.
let nsOrder = [];
export function nsColor(ns) {
  if (!ns) return '#64748b';
  const i = nsOrder.indexOf(ns);
  if (i >= 0) return PALETTE[i % PALETTE.length];
  let h = 0;
  for (let k = 0; k < ns.length; k++) h = (h * 31 + ns.charCodeAt(k)) >>> 0;
  return PALETTE[h % PALETTE.length];
}

const WINDOWS = ['5m', '15m', '1h', '6h', '24h'];

function css(name) {
  return getComputedStyle(document.documentElement).getPropertyValue(name).trim();
}

function style() {
  const fg = css('--fg') || '#111';
  const muted = css('--muted') || '#666';
  const bg = css('--bg') || '#fff';
  const edge = css('--edge') || '#94a3b8';
  return [
    { selector: 'node.wl', style: {
      'background-color': 'data(color)', label: 'data(label)', color: fg, 'font-size': 11,
      'text-valign': 'bottom', 'text-margin-y': 4, width: 'data(size)', height: 'data(size)',
      'text-outline-color': bg, 'text-outline-width': 2, 'border-width': 2, 'border-color': bg,
    } },
    { selector: 'node.wl[kind = "external"]', style: { shape: 'round-diamond', 'background-color': '#64748b' } },
    { selector: 'node.wl[kind = "pod"]', style: { shape: 'round-rectangle' } },
    { selector: 'node.ns', style: {
      'background-color': 'data(color)', 'background-opacity': 0.07, 'border-color': 'data(color)',
      'border-width': 1, 'border-opacity': 0.5, shape: 'round-rectangle', label: 'data(label)',
      'text-valign': 'top', 'text-halign': 'center', color: 'data(color)', 'font-size': 12, 'font-weight': 600,
      padding: 18,
    } },
    { selector: 'edge', style: {
      width: 'data(width)', 'line-color': edge, 'target-arrow-color': edge, 'target-arrow-shape': 'triangle',
      'arrow-scale': 0.9, 'curve-style': 'bezier', label: 'data(label)', 'font-size': 9, color: muted,
      'text-rotation': 'autorotate', 'text-background-color': bg, 'text-background-opacity': 0.85,
      'text-background-padding': 2, 'min-zoomed-font-size': 8, // edge labels only when legible
    } },
    { selector: 'edge[errRatio > 0]', style: { 'line-color': '#f59e0b', 'target-arrow-color': '#f59e0b' } },
    { selector: 'edge[errRatio >= 0.1]', style: { 'line-color': '#ef4444', 'target-arrow-color': '#ef4444' } },
    { selector: 'edge:selected, edge.hover', style: { 'line-color': css('--accent') || '#2563eb', 'target-arrow-color': css('--accent') || '#2563eb', 'z-index': 10 } },
    { selector: 'node.wl:selected, node.wl.hover', style: { 'border-color': css('--accent') || '#2563eb', 'border-width': 3 } },
    { selector: 'node.faded, edge.faded', style: { opacity: 0.25 } },
  ];
}

function elements(data, metric) {
  const els = [];
  const namespaces = new Set();
  const maxReq = Math.max(1, ...data.nodes.map((n) => n.requests || 0));
  for (const n of data.nodes) {
    if (n.namespace && n.kind !== 'external') namespaces.add(n.namespace);
  }
  nsOrder = [...namespaces].sort();
  for (const ns of namespaces) {
    els.push({ group: 'nodes', data: { id: `ns:${ns}`, label: ns, color: nsColor(ns) }, classes: 'ns' });
  }
  for (const n of data.nodes) {
    const inNs = n.namespace && n.kind !== 'external';
    els.push({
      group: 'nodes',
      classes: 'wl',
      data: {
        id: n.id, parent: inNs ? `ns:${n.namespace}` : undefined, label: n.name, kind: n.kind || 'workload',
        color: nsColor(inNs ? n.namespace : ''), size: 22 + 22 * Math.sqrt((n.requests || 0) / maxReq),
        node: n,
      },
    });
  }
  const val = (e) => (metric === 'bytes' ? e.bytes || 0 : e.requests || 0);
  const maxV = Math.max(1, ...data.edges.map(val));
  for (const e of data.edges) {
    els.push({
      group: 'edges',
      data: {
        id: e.id, source: e.source, target: e.target, errors: e.errors || 0,
        errRatio: (e.errors || 0) / Math.max(1, e.requests || 0),
        width: 1.2 + 8 * Math.sqrt(val(e) / maxV),
        label: `${(e.protocol || '').toUpperCase()} ${metric === 'bytes' ? bytes(e.bytes || 0) : rateText(e.rate)}`,
        edge: e,
      },
    });
  }
  return els;
}

function structureKey(data) {
  return data.nodes.map((n) => n.id).sort().join('|') + '#' + data.edges.map((e) => e.id).sort().join('|');
}

export function ServiceMap({ q, active, onFilter }) {
  const box = useRef(null);
  const cyRef = useRef(null);
  const keyRef = useRef('');
  const [win, setWin] = useState('15m');
  const [metric, setMetric] = useState('requests');
  const [data, setData] = useState(null);
  const [err, setErr] = useState(null);
  const [tip, setTip] = useState(null);

  useEffect(() => {
    const cy = cytoscape({
      container: box.current, style: style(), minZoom: 0.2, maxZoom: 3,
      boxSelectionEnabled: false,
    });
    cyRef.current = cy;
    window.sidetapMap = cy; // handle for the browser tests and for debugging
    const place = (ev, html) => {
      const p = ev.renderedPosition || ev.target.renderedMidpoint?.() || { x: 0, y: 0 };
      setTip({ x: p.x, y: p.y, html });
    };
    cy.on('mouseover', 'edge', (ev) => { ev.target.addClass('hover'); place(ev, { edge: ev.target.data('edge') }); });
    cy.on('mouseout', 'edge', (ev) => { ev.target.removeClass('hover'); setTip(null); });
    cy.on('mouseover', 'node.wl', (ev) => {
      const n = ev.target;
      n.addClass('hover');
      cy.elements().not(n.closedNeighborhood()).not('node.ns').addClass('faded');
      place(ev, { node: n.data('node') });
    });
    cy.on('mouseout', 'node.wl', (ev) => { ev.target.removeClass('hover'); cy.elements().removeClass('faded'); setTip(null); });
    return () => { cy.destroy(); cyRef.current = null; };
  }, []);

  // Click handlers see the latest filter callback.
  useEffect(() => {
    const cy = cyRef.current;
    const nodeById = (id) => cy.getElementById(id).data('node');
    const onEdge = (ev) => {
      const e = ev.target.data('edge');
      const s = nodeById(e.source), t = nodeById(e.target);
      if (!s || !t) return;
      const parts = [nodeExpr('src', s), nodeExpr('dst', t)];
      if (e.protocol) parts.push(e.protocol);
      onFilter(parts.join(' and '));
    };
    const onNode = (ev) => {
      const n = ev.target.data('node');
      onFilter(`(${nodeExpr('src', n)}) or (${nodeExpr('dst', n)})`);
    };
    cy.on('tap', 'edge', onEdge);
    cy.on('tap', 'node.wl', onNode);
    return () => { cy.off('tap', 'edge', onEdge); cy.off('tap', 'node.wl', onNode); };
  }, [onFilter]);

  // Fetch on filter/window/metric change and every 5 s while the map is on screen.
  useEffect(() => {
    if (!active) return undefined;
    let stop = false;
    const ac = new AbortController();
    const load = () => getJSON('/api/v1/servicemap', { q, window: win, metric }, ac.signal)
      .then((d) => { if (!stop) { setData(d); setErr(null); } })
      .catch((x) => { if (!stop && x.name !== 'AbortError') setErr(x.message); });
    load();
    const t = setInterval(load, 5000);
    return () => { stop = true; ac.abort(); clearInterval(t); };
  }, [q, win, metric, active]);

  // Re-layout only when the set of nodes or edges changes; otherwise update data in place.
  useEffect(() => {
    const cy = cyRef.current;
    if (!cy || !data) return;
    const els = elements(data, metric);
    const key = structureKey(data);
    if (key !== keyRef.current) {
      keyRef.current = key;
      cy.elements().remove();
      cy.add(els);
      cy.style(style());
      if (data.nodes.length) {
        cy.layout({
          name: 'fcose', quality: 'proof', randomize: true, animate: false, nodeDimensionsIncludeLabels: true,
          nodeRepulsion: 9000, idealEdgeLength: 110, edgeElasticity: 0.45, nestingFactor: 0.1,
          gravity: 0.25, numIter: 2500, tile: true, padding: 30, packComponents: true,
        }).run();
        cy.fit(undefined, 30);
      }
    } else {
      for (const el of els) {
        const c = cy.getElementById(el.data.id);
        if (c.nonempty()) c.data(el.data);
      }
    }
    box.current.dataset.nodes = String(data.nodes.length);
    box.current.dataset.edges = String(data.edges.length);
  }, [data, metric]);

  useEffect(() => {
    if (active && cyRef.current) {
      cyRef.current.resize();
      cyRef.current.style(style());
    }
  }, [active]);

  const namespaces = data ? [...new Set(data.nodes.filter((n) => n.namespace && n.kind !== 'external').map((n) => n.namespace))].sort() : [];
  return (
    <div class="map">
      <div class="map-tools">
        <label>Window{' '}
          <select value={win} onChange={(ev) => setWin(ev.target.value)} aria-label="Time window">
            {WINDOWS.map((w) => <option key={w} value={w}>last {w}</option>)}
          </select>
        </label>
        <div class="seg" role="group" aria-label="Edge width">
          <span class="muted">Edge width:</span>
          <button class={metric === 'requests' ? 'on' : ''} aria-pressed={metric === 'requests' ? 'true' : 'false'} onClick={() => setMetric('requests')}>requests</button>
          <button class={metric === 'bytes' ? 'on' : ''} aria-pressed={metric === 'bytes' ? 'true' : 'false'} onClick={() => setMetric('bytes')}>bytes</button>
        </div>
        <button class="btn small" onClick={() => cyRef.current && cyRef.current.fit(undefined, 30)}>Fit</button>
        <span class="muted">{data ? `${data.nodes.length} workloads · ${data.edges.length} connections` : 'loading…'}</span>
        <span class="spacer-flex" />
        <div class="legend">
          {namespaces.map((ns) => <span key={ns}><i style={{ background: nsColor(ns) }} />{ns}</span>)}
          <span><i class="ext" />external</span>
          <span><i class="errl" />≥10% errors</span>
        </div>
      </div>
      {err ? <div class="errbox">Service map: {err}</div> : null}
      <div class="map-canvas" ref={box} data-testid="servicemap">
        {data && !data.nodes.length ? <div class="empty">No calls in the last {win}{q ? ' match the filter' : ''}.</div> : null}
      </div>
      <p class="hint muted">Click a workload or a connection to list its calls. Hover a connection for its top paths.</p>
      {tip ? <Tip tip={tip} /> : null}
    </div>
  );
}

function Tip({ tip }) {
  const style = { left: `${tip.x + 14}px`, top: `${tip.y + 70}px` };
  if (tip.html.edge) {
    const e = tip.html.edge;
    return (
      <div class="maptip" style={style} role="tooltip">
        <div class="tt-title">{e.source} → {e.target}</div>
        <div>{(e.protocol || '').toUpperCase()} · {count(e.requests)} requests · {rateText(e.rate)} · {bytes(e.bytes || 0)}</div>
        <div>{e.errors ? <span class="st-err">{count(e.errors)} error{e.errors === 1 ? '' : 's'}</span> : 'no errors'}{e.p50 !== undefined ? ` · p50 ${elapsed(e.p50)} · p99 ${elapsed(e.p99)}` : ''}</div>
        {e.top && e.top.length ? (
          <table class="tt-top"><tbody>
            {e.top.slice(0, 8).map((t) => <tr key={t.name}><td class="mono">{t.name}</td><td>{count(t.count)}</td></tr>)}
          </tbody></table>
        ) : null}
      </div>
    );
  }
  const n = tip.html.node;
  return (
    <div class="maptip" style={style} role="tooltip">
      <div class="tt-title">{n.name}</div>
      <div>{n.kind}{n.namespace ? ` in ${n.namespace}` : ''} · {count(n.requests)} requests</div>
    </div>
  );
}
