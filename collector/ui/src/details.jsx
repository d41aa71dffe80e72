// The entry details side panel: overview (timing, both identities, protocol sections),
// request and response (headers, query string, body), copy as curl.
import { useEffect, useState } from 'preact/hooks';
import { getJSON } from './api.js';
import { bytes, clock, curl, elapsed, fullTime, isError, peerAddr, protoLabel, protoName, status } from './format.js';
import { Body, JsonTree } from './tree.jsx';

const COMMON = new Set(['id', 'timestamp', 'elapsedTime', 'protocol', 'src', 'dst', 'node', 'outgoing',
  'seq', 'request', 'response', 'error', 'summary']);
const TITLES = { grpc: 'gRPC', dns: 'DNS', redis: 'Redis', kafka: 'Kafka', tls: 'TLS', http2: 'HTTP/2', tcp: 'TCP', http: 'HTTP' };

const fieldOk = (k) => /^[A-Za-z_][A-Za-z0-9_]*$/.test(k);

function FV({ f, v, children }) {
  if (v === undefined || v === null || v === '') return <span class="muted">–</span>;
  return <span class="fv" data-f={f} data-v={String(v)} data-num={typeof v === 'number' ? '1' : undefined}>{children !== undefined ? children : String(v)}</span>;
}

function KV({ rows }) {
  return (
    <table class="kv">
      <tbody>
        {rows.filter((r) => r).map(([k, v]) => (
          <tr key={k}><th scope="row">{k}</th><td>{v}</td></tr>
        ))}
      </tbody>
    </table>
  );
}

function Identity({ title, side, p }) {
  if (!p) return null;
  const labels = p.labels ? Object.entries(p.labels) : [];
  return (
    <section class="card ident">
      <h4>{title}</h4>
      <KV rows={[
        ['Pod', <FV f={`${side}.name`} v={p.name} />],
        ['Namespace', <FV f={`${side}.namespace`} v={p.namespace} />],
        p.workload ? ['Workload', <FV f={`${side}.workload`} v={p.workload} />] : null,
        ['Address', <FV f={`${side}.ip`} v={p.ip}>{peerAddr(p)}</FV>],
        p.node ? ['Node', <FV f={`${side}.node`} v={p.node} />] : null,
        p.serviceAccount ? ['Service account', <FV f={`${side}.serviceAccount`} v={p.serviceAccount} />] : null,
      ]} />
      {labels.length ? (
        <div class="labels">
          {labels.map(([k, v]) => (
            <span key={k} class="chip fv" data-f={`${side}.labels[${JSON.stringify(k)}]`} data-v={v}>{k}={v}</span>
          ))}
        </div>
      ) : null}
    </section>
  );
}

function Records({ title, list }) {
  if (!list || !list.length) return null;
  return (
    <>
      <h5>{title}</h5>
      <table class="grid">
        <thead><tr><th>Name</th><th>Type</th><th>TTL</th><th>Data</th></tr></thead>
        <tbody>
          {list.map((r, i) => (
            <tr key={i}><td>{r.name}</td><td>{r.type}{r.class && r.class !== 'IN' ? ` ${r.class}` : ''}</td><td>{r.ttl !== undefined ? r.ttl : ''}</td><td class="mono">{r.data}</td></tr>
          ))}
        </tbody>
      </table>
    </>
  );
}

function scalarRows(name, sec) {
  return Object.entries(sec).map(([k, v]) => {
    const f = fieldOk(k) ? `${name}.${k}` : null;
    let shown;
    if (v === null || typeof v !== 'object') shown = f ? <FV f={f} v={v} /> : String(v);
    else if (Array.isArray(v) && v.every((x) => x === null || typeof x !== 'object')) {
      shown = v.length ? v.map((x, i) => <span key={i} class="chip">{String(x)}</span>) : <span class="muted">none</span>;
    } else shown = <JsonTree v={v} fieldPath={f} />;
    return [k, shown];
  });
}

// One protocol section. DNS gets record tables; everything else (gRPC, Redis, Kafka, TLS
// and sections this UI does not know yet) is shown as a key/value tree.
function Section({ name, sec }) {
  const title = TITLES[name] || name;
  if (sec === null || typeof sec !== 'object' || Array.isArray(sec)) {
    return <section class="card proto"><h4>{title}</h4><JsonTree v={sec} /></section>;
  }
  if (name === 'dns') {
    const rest = Object.fromEntries(Object.entries(sec).filter(([k]) => !['questions', 'answers', 'authorities', 'additionals', 'flags'].includes(k)));
    const flags = sec.flags ? Object.entries(sec.flags).filter(([, v]) => v).map(([k]) => k) : [];
    return (
      <section class="card proto" data-section="dns">
        <h4>{title}</h4>
        <KV rows={[...scalarRows('dns', rest), flags.length ? ['flags', flags.map((f) => <span key={f} class="chip">{f}</span>)] : null]} />
        {sec.questions && sec.questions.length ? (
          <>
            <h5>Questions</h5>
            <table class="grid">
              <thead><tr><th>Name</th><th>Type</th><th>Class</th></tr></thead>
              <tbody>{sec.questions.map((q, i) => <tr key={i}><td>{q.name}</td><td>{q.type}</td><td>{q.class}</td></tr>)}</tbody>
            </table>
          </>
        ) : null}
        <Records title="Answers" list={sec.answers} />
        <Records title="Authority" list={sec.authorities} />
        <Records title="Additional" list={sec.additionals} />
        {!sec.answers || !sec.answers.length ? <p class="muted">No answer records.</p> : null}
      </section>
    );
  }
  return (
    <section class="card proto" data-section={name}>
      <h4>{title}</h4>
      <KV rows={scalarRows(name, sec)} />
    </section>
  );
}

function Headers({ h, prefix }) {
  const list = h ? Object.entries(h) : [];
  if (!list.length) return <p class="muted">No headers.</p>;
  return (
    <table class="kv headers">
      <tbody>
        {list.map(([k, v]) => (
          <tr key={k}>
            <th scope="row">{k}</th>
            <td><span class="fv" data-f={`${prefix}.headers[${JSON.stringify(k)}]`} data-v={v}>{v}</span></td>
          </tr>
        ))}
      </tbody>
    </table>
  );
}

function RequestTab({ e }) {
  const r = e.request;
  if (!r) return <p class="muted">No request was seen (for example a server push or an answer without its query).</p>;
  const q = r.queryString ? Object.entries(r.queryString) : [];
  return (
    <div>
      <div class="reqline mono">
        {r.method ? <FV f="request.method" v={r.method} /> : null} <span>{r.url || r.path || ''}</span>
      </div>
      <KV rows={[
        r.path !== undefined ? ['Path', <FV f="request.path" v={r.path} />] : null,
        r.bytes !== undefined ? ['Size on the wire', bytes(r.bytes)] : null,
      ]} />
      {r.headers ? <><h5>Headers</h5><Headers h={r.headers} prefix="request" /></> : null}
      {q.length ? (
        <>
          <h5>Query string</h5>
          <table class="kv"><tbody>{q.map(([k, v]) => (
            <tr key={k}><th scope="row">{k}</th><td><span class="fv" data-f={`request.queryString[${JSON.stringify(k)}]`} data-v={v}>{v}</span></td></tr>
          ))}</tbody></table>
        </>
      ) : null}
      {r.body ? <><h5>Body</h5><Body body={r.body} headers={r.headers} /></> : null}
    </div>
  );
}

function ResponseTab({ e }) {
  const r = e.response;
  if (!r) {
    return <p class="muted">{e.error ? `No response: ${e.error.message}.` : 'No response was seen.'}</p>;
  }
  return (
    <div>
      <div class="reqline mono">
        {r.status !== undefined ? <FV f="response.status" v={r.status} /> : null} <span>{r.statusText || ''}</span>
      </div>
      <KV rows={[r.bytes !== undefined ? ['Size on the wire', bytes(r.bytes)] : null]} />
      {r.headers ? <><h5>Headers</h5><Headers h={r.headers} prefix="response" /></> : null}
      {r.body ? <><h5>Body</h5><Body body={r.body} headers={r.headers} /></> : null}
    </div>
  );
}

function Overview({ e }) {
  const sections = Object.keys(e).filter((k) => !COMMON.has(k));
  const p = e.protocol || {};
  return (
    <div>
      {e.error ? <div class="errbox" role="alert"><strong>Error:</strong> {e.error.message}</div> : null}
      {sections.map((k) => <Section key={k} name={k} sec={e[k]} />)}
      <section class="card">
        <h4>Timing</h4>
        <KV rows={[
          ['Started', <span title={typeof e.timestamp === 'number' ? new Date(e.timestamp).toISOString() : ''}>{fullTime(e.timestamp)}</span>],
          ['Elapsed', <FV f="elapsedTime" v={e.elapsedTime}>{elapsed(e.elapsedTime)}</FV>],
          ['Protocol', `${p.name || '?'}${p.version ? ` ${p.version}` : ''}`],
          ['Reported by', `${e.outgoing ? 'client side (outbound)' : 'server side (inbound)'}${e.node && e.node.name ? ` on ${e.node.name}` : ''}`],
          e.request && e.request.bytes !== undefined ? ['Request', bytes(e.request.bytes)] : null,
          e.response && e.response.bytes !== undefined ? ['Response', bytes(e.response.bytes)] : null,
          ['Entry id', e.id],
        ]} />
      </section>
      <div class="idents">
        <Identity title="Source" side="src" p={e.src} />
        <Identity title="Destination" side="dst" p={e.dst} />
      </div>
    </div>
  );
}

async function copyText(text) {
  try {
    await navigator.clipboard.writeText(text);
    return true;
  } catch (_) {
    const ta = document.createElement('textarea');
    ta.value = text;
    document.body.appendChild(ta);
    ta.select();
    const ok = document.execCommand('copy');
    ta.remove();
    return ok;
  }
}

export function Details({ entry, onClose, tab, setTab }) {
  const [full, setFull] = useState(null);
  const [err, setErr] = useState(null);
  const [copied, setCopied] = useState(false);
  useEffect(() => {
    setFull(null);
    setErr(null);
    setCopied(false);
    const ac = new AbortController();
    getJSON(`/api/v1/entries/${encodeURIComponent(entry.id)}`, null, ac.signal)
      .then((e) => setFull(e))
      .catch((x) => { if (x.name !== 'AbortError') setErr(x.message); });
    return () => ac.abort();
  }, [entry.id]);
  const e = full || entry;
  const pn = protoName(e);
  const [st, stc] = status(e);
  const isHttp = pn === 'http' || pn === 'http2';
  return (
    <aside class="details" aria-label="Entry details" data-id={e.id} data-loaded={full ? '1' : '0'}>
      <header class="d-head">
        <span class={`badge p-${pn}`}>{protoLabel(e)}</span>
        <span class={`d-status st-${stc}`}>{st}</span>
        <h3 class="d-title" title={e.summary}>{e.summary || (e.request && e.request.path) || `entry ${e.id}`}</h3>
        <button class="icon" onClick={onClose} aria-label="Close details (Esc)" title="Close (Esc)">✕</button>
      </header>
      <div class="d-sub">
        <span>{clock(e.timestamp)}</span>
        <span>{elapsed(e.elapsedTime)}</span>
        {isError(e) ? <span class="st-err">error</span> : null}
        <span class="spacer-flex" />
        {isHttp || pn === 'grpc' ? (
          <button class="btn small" onClick={async () => { setCopied(await copyText(curl(e))); setTimeout(() => setCopied(false), 1500); }}>
            {copied ? 'Copied ✓' : 'Copy as curl'}
          </button>
        ) : null}
      </div>
      <nav class="tabs small" role="tablist">
        {['overview', 'request', 'response'].map((t) => (
          <button key={t} role="tab" aria-selected={tab === t ? 'true' : 'false'} class={tab === t ? 'on' : ''}
            onClick={() => setTab(t)}>{t[0].toUpperCase() + t.slice(1)}</button>
        ))}
      </nav>
      <div class="d-body" role="tabpanel">
        {err ? <div class="errbox">Could not load the full entry: {err}</div> : null}
        {tab === 'overview' ? <Overview e={e} /> : tab === 'request' ? <RequestTab e={e} /> : <ResponseTab e={e} />}
      </div>
    </aside>
  );
}
