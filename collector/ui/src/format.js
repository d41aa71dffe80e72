// Formatting helpers: times, sizes, identities, status, hex dumps, curl commands.

const pad = (n, w = 2) => String(n).padStart(w, '0');

export function clock(ms) {
  if (typeof ms !== 'number') return '';
  const d = new Date(ms);
  return `${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}.${pad(d.getMilliseconds(), 3)}`;
}

export function fullTime(ms) {
  if (typeof ms !== 'number') return '';
  const d = new Date(ms);
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ${clock(ms)}`;
}

export function elapsed(ms) {
  if (typeof ms !== 'number' || !isFinite(ms)) return '';
  if (ms < 1) return `${(ms * 1000).toFixed(0)} µs`;
  if (ms < 100) return `${ms.toFixed(1)} ms`;
  if (ms < 1000) return `${ms.toFixed(0)} ms`;
  if (ms < 60000) return `${(ms / 1000).toFixed(2)} s`;
  return `${(ms / 60000).toFixed(1)} min`;
}

export function bytes(n) {
  if (typeof n !== 'number') return '';
  if (n < 1024) return `${n} B`;
  if (n < 1024 * 1024) return `${(n / 1024).toFixed(1)} KiB`;
  if (n < 1024 ** 3) return `${(n / 1024 / 1024).toFixed(1)} MiB`;
  return `${(n / 1024 ** 3).toFixed(2)} GiB`;
}

export function count(n) {
  if (typeof n !== 'number') return '–';
  return n.toLocaleString('en-US');
}

export function rate(r) {
  if (typeof r !== 'number' || !isFinite(r)) return '–';
  if (r === 0) return '0';
  if (r < 0.1) return r.toFixed(2);
  if (r < 10) return r.toFixed(1);
  return Math.round(r).toLocaleString('en-US');
}

// A rate with its unit; small rates read better per minute: 0.003 -> "0.18/min".
export function rateText(r) {
  if (typeof r !== 'number' || !isFinite(r)) return '–';
  if (r > 0 && r < 0.05) {
    const m = r * 60;
    return `${m < 1 ? m.toFixed(2) : m.toFixed(1)}/min`;
  }
  return `${rate(r)}/s`;
}

export function duration(s) {
  if (typeof s !== 'number') return '';
  if (s < 60) return `${Math.floor(s)}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m`;
  if (s < 86400) return `${Math.floor(s / 3600)}h ${Math.floor((s % 3600) / 60)}m`;
  return `${Math.floor(s / 86400)}d ${Math.floor((s % 86400) / 3600)}h`;
}

// The name to show for one side of a call: pod name, else the looked-up host, else ip.
export function peerName(p) {
  if (!p) return '?';
  return p.name || p.workload || p.ip || '?';
}

export function peerAddr(p) {
  if (!p) return '';
  if (!p.ip) return '';
  const ip = p.ip.includes(':') ? `[${p.ip}]` : p.ip;
  return p.port !== undefined ? `${ip}:${p.port}` : ip;
}

export const PROTOCOLS = ['http', 'http2', 'grpc', 'redis', 'dns', 'kafka', 'tls', 'tcp'];

export function protoName(e) {
  return (e.protocol && e.protocol.name) || 'tcp';
}

export function protoLabel(e) {
  const p = e.protocol || {};
  return p.abbr || (p.name || 'TCP').toUpperCase();
}

// [text, class] of the status column: HTTP code, gRPC status, DNS rcode, Redis error...
export function status(e) {
  const name = protoName(e);
  const r = e.response;
  if (name === 'grpc' && e.grpc && e.grpc.status !== undefined) {
    const s = e.grpc.status;
    return [e.grpc.statusName || String(s), s === 0 ? 'ok' : 'err'];
  }
  if (name === 'dns') {
    const rc = (e.dns && e.dns.rcode) || (r && r.statusText) || (r ? 'NOERROR' : '');
    return [rc, rc && rc !== 'NOERROR' ? 'err' : 'ok'];
  }
  if (name === 'kafka' && e.kafka && e.kafka.errorName) return [e.kafka.errorName, e.kafka.errorName === 'NONE' ? 'ok' : 'err'];
  if (name === 'redis' && e.redis && (e.redis.replyType === 'error' || e.redis.replyType === 'blobError')) return ['ERR', 'err'];
  if (r && typeof r.status === 'number' && (name === 'http' || name === 'http2' || name === 'grpc')) {
    const s = r.status;
    return [String(s), s >= 500 ? 'err' : s >= 400 ? 'warn' : s >= 300 ? 'redir' : 'ok'];
  }
  if (e.error) return ['ERR', 'err'];
  if (!r && e.request && name !== 'tcp' && name !== 'tls') return ['–', 'muted'];
  return ['OK', 'ok'];
}

export function isError(e) {
  if (e.error) return true;
  const r = e.response;
  return !!(r && typeof r.status === 'number' && r.status >= 500 && (protoName(e) === 'http' || protoName(e) === 'http2'));
}

// Header lookup, case-insensitive.
export function header(h, name) {
  if (!h) return undefined;
  const want = name.toLowerCase();
  for (const k of Object.keys(h)) if (k.toLowerCase() === want) return h[k];
  return undefined;
}

export function b64bytes(s) {
  try {
    const bin = atob(s || '');
    const out = new Uint8Array(bin.length);
    for (let i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
    return out;
  } catch (_) {
    return new Uint8Array(0);
  }
}

// Classic 16-bytes-per-line dump: offset, hex, printable ASCII.
export function hexdump(buf, max = 65536) {
  const n = Math.min(buf.length, max);
  const lines = [];
  for (let off = 0; off < n; off += 16) {
    let hex = '', asc = '';
    for (let i = 0; i < 16; i++) {
      if (off + i < n) {
        const b = buf[off + i];
        hex += b.toString(16).padStart(2, '0') + (i === 7 ? '  ' : ' ');
        asc += b >= 0x20 && b < 0x7f ? String.fromCharCode(b) : '.';
      } else {
        hex += i === 7 ? '    ' : '   ';
      }
    }
    lines.push(`${off.toString(16).padStart(8, '0')}  ${hex} ${asc}`);
  }
  if (buf.length > n) lines.push(`… ${buf.length - n} more bytes`);
  return lines.join('\n');
}

const shq = (s) => `'${String(s).replace(/'/g, `'\\''`)}'`;

// `curl` command that repeats an HTTP request. Redacted and hop-by-hop headers are left out.
export function curl(e) {
  const req = e.request || {};
  const h = req.headers || {};
  const host = header(h, 'host') || header(h, ':authority') ||
    ((e.dst && (e.dst.name || e.dst.ip)) + (e.dst && e.dst.port ? `:${e.dst.port}` : ''));
  const scheme = header(h, ':scheme') || 'http';
  const target = req.url || req.path || '/';
  const parts = ['curl'];
  if (req.method && req.method !== 'GET') parts.push('-X', req.method);
  parts.push(shq(`${scheme}://${host}${target}`));
  if (e.protocol && (e.protocol.name === 'http2' || e.protocol.name === 'grpc')) parts.push('--http2-prior-knowledge');
  for (const [k, v] of Object.entries(h)) {
    const lk = k.toLowerCase();
    if (lk.startsWith(':') || lk === 'host' || lk === 'content-length' || lk === 'connection' ||
        lk === 'transfer-encoding' || v === '[REDACTED]') continue;
    parts.push('-H', shq(`${k}: ${v}`));
  }
  const b = req.body;
  if (b && b.size > 0 && b.data) {
    if (b.encoding === 'base64') parts.push('--data-binary', `@<(echo ${shq(b.data)} | base64 -d)`);
    else parts.push('--data-raw', shq(b.data));
  }
  return parts.join(' ');
}
