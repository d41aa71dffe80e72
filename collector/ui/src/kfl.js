// Building KFL expressions from values the user points at ("add to filter", "exclude").

export function literal(v) {
  if (typeof v === 'number' || typeof v === 'boolean') return String(v);
  return JSON.stringify(String(v));
}

// field: 'src.namespace', value: 'bookinfo', op '==' or '!='. A field of null means a bare
// predicate such as a protocol name (`http`, `!http`).
export function expr(field, value, exclude) {
  if (field === null) return exclude ? `!${value}` : value;
  return `${field} ${exclude ? '!=' : '=='} ${literal(value)}`;
}

// True when q has a top-level `or`, so appending `and X` needs parentheses around q.
function hasOr(q) {
  const bare = q.replace(/"(?:[^"\\]|\\.)*"/g, '""');
  let depth = 0;
  for (let i = 0; i < bare.length; i++) {
    const c = bare[i];
    if (c === '(') depth++;
    else if (c === ')') depth--;
    else if (depth === 0) {
      if (bare.startsWith('||', i)) return true;
      if (/^or\b/i.test(bare.slice(i, i + 3)) && (i === 0 || /[\s)]/.test(bare[i - 1]))) return true;
    }
  }
  return false;
}

export function andFilter(q, e) {
  q = (q || '').trim();
  if (!q) return e;
  const left = hasOr(q) ? `(${q})` : q;
  const right = /\bor\b|\|\|/.test(e) ? `(${e})` : e;
  return `${left} and ${right}`;
}

// The KFL that selects one side (src or dst) of a service map node.
export function nodeExpr(side, node) {
  const parts = [];
  if (node.kind === 'workload') parts.push(`${side}.workload == ${literal(node.name)}`);
  else if (node.kind === 'pod' || node.kind === 'service') parts.push(`${side}.name == ${literal(node.name)}`);
  else if (/^[0-9.]+$|:/.test(node.name)) parts.push(`${side}.ip == ${literal(node.name)}`);
  else parts.push(`${side}.name == ${literal(node.name)}`);
  if (node.namespace) parts.push(`${side}.namespace == ${literal(node.namespace)}`);
  return parts.join(' and ');
}

export const EXAMPLES = [
  { label: 'Hide DNS and errors', q: '!dns and !error' },
  { label: 'Hide health checks', q: '!dns and !error and request.path != "/health" and request.path != "/healthz"' },
  { label: 'One namespace (bookinfo)', q: '!dns and !error and src.namespace == "bookinfo"' },
  { label: 'Redis in guestbook', q: 'redis and src.namespace == "guestbook"' },
  { label: '404s', q: '!dns and request.path != "/health" and request.path != "/healthz" and response.status == 404' },
  { label: 'Errors only', q: 'error' },
  { label: 'Slow calls (> 500 ms)', q: 'elapsedTime > 500' },
  { label: 'gRPC failures', q: 'grpc and error' },
];
