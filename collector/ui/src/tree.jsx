// Foldable JSON tree (bodies, protocol sections, anything unknown) and the body viewer.
import { useState } from 'preact/hooks';
import { b64bytes, bytes, header, hexdump } from './format.js';

function Scalar({ v }) {
  if (v === null) return <span class="j-null">null</span>;
  if (typeof v === 'string') return <span class="j-str">{JSON.stringify(v)}</span>;
  if (typeof v === 'number') return <span class="j-num">{String(v)}</span>;
  if (typeof v === 'boolean') return <span class="j-bool">{String(v)}</span>;
  return <span>{String(v)}</span>;
}

// A JSON value as a tree; objects and arrays fold (deep levels start folded).
export function JsonNode({ name, v, depth = 0, last = true, fieldPath }) {
  const isObj = v !== null && typeof v === 'object';
  const [open, setOpen] = useState(depth < 3);
  const key = name !== undefined ? (
    <><span class="j-key">{typeof name === 'number' ? name : JSON.stringify(name)}</span>: </>
  ) : null;
  if (!isObj) {
    const fv = fieldPath && (typeof v === 'string' || typeof v === 'number' || typeof v === 'boolean');
    return (
      <div class="j-line">
        {key}
        {fv ? <span class="fv" data-f={fieldPath} data-v={String(v)} data-num={typeof v === 'number' ? '1' : undefined}><Scalar v={v} /></span> : <Scalar v={v} />}
        {last ? '' : ','}
      </div>
    );
  }
  const arr = Array.isArray(v);
  const keys = arr ? v.map((_, i) => i) : Object.keys(v);
  const [o, c] = arr ? ['[', ']'] : ['{', '}'];
  if (!keys.length) return <div class="j-line">{key}{o}{c}{last ? '' : ','}</div>;
  return (
    <div class="j-node">
      <div class="j-line">
        <button class="j-toggle" aria-expanded={open ? 'true' : 'false'} onClick={() => setOpen(!open)}>
          {open ? '▾' : '▸'}
        </button>
        {key}{o}
        {open ? null : (
          <button class="j-more" onClick={() => setOpen(true)}>
            {arr ? `${keys.length} items` : `${keys.length} keys`}
          </button>
        )}
        {open ? null : <>{c}{last ? '' : ','}</>}
      </div>
      {open ? (
        <div class="j-children">
          {keys.map((k, i) => (
            <JsonNode key={k} name={arr ? undefined : k} v={v[k]} depth={depth + 1} last={i === keys.length - 1}
              fieldPath={fieldPath && !arr && /^[A-Za-z_][A-Za-z0-9_]*$/.test(k) ? `${fieldPath}.${k}` : null} />
          ))}
        </div>
      ) : null}
      {open ? <div class="j-line">{c}{last ? '' : ','}</div> : null}
    </div>
  );
}

export function JsonTree({ v, fieldPath }) {
  return <div class="json"><JsonNode v={v} fieldPath={fieldPath} /></div>;
}

function tryJson(text) {
  const t = text.trim();
  if (!t || (t[0] !== '{' && t[0] !== '[')) return undefined;
  try {
    return JSON.parse(t);
  } catch (_) {
    return undefined;
  }
}

// A captured body: JSON pretty-printed and foldable, text as is, binary as a hex dump.
export function Body({ body, headers }) {
  const [raw, setRaw] = useState(false);
  if (!body) return <p class="muted">No body.</p>;
  const ctype = header(headers, 'content-type') || '';
  const cenc = header(headers, 'content-encoding');
  const meta = (
    <div class="body-meta">
      <span>{bytes(body.size)}</span>
      {body.encoding ? <span>{body.encoding === 'base64' ? 'binary' : 'text'}</span> : null}
      {ctype ? <span>{ctype}</span> : null}
      {cenc ? <span>{cenc}</span> : null}
      {body.truncated ? <span class="warn">truncated capture</span> : null}
    </div>
  );
  if (!body.size && !body.data) return <div>{meta}<p class="muted">Empty body.</p></div>;
  if (body.data === undefined) return <div>{meta}<p class="muted">Body not loaded.</p></div>;
  if (body.encoding === 'base64') {
    const buf = b64bytes(body.data);
    return <div>{meta}<pre class="hex">{hexdump(buf)}</pre></div>;
  }
  const parsed = tryJson(body.data);
  return (
    <div>
      {meta}
      {parsed !== undefined ? (
        <>
          <div class="body-tools">
            <button class="link" onClick={() => setRaw(!raw)}>{raw ? 'Tree' : 'Raw'}</button>
          </div>
          {raw ? <pre class="text">{body.data}</pre> : <JsonTree v={parsed} />}
        </>
      ) : (
        <pre class="text">{body.data}</pre>
      )}
    </div>
  );
}
