// UI benchmark: a real sidetap-collector holding 100,000 entries, the web UI in headless
// chromium (playwright-core). Prints: ingest time, first rows after page load, time to load
// 100,000 rows into the list, filter-apply to first paint per query, frame times during a
// scripted scroll through the 100,000 rows, and the service map with 50 workloads.
// Usage: node bench_ui.mjs PATH/TO/sidetap-collector [SCREENSHOT_DIR] [ENTRIES]
import { Collector, fixtures, launchBrowser, loadPlaywright, preflight, screenshotDir, sleep } from '../../tests/ui/harness.mjs';

const [exe, shotsArg, nArg] = process.argv.slice(2);
const why = preflight(exe);
if (why) {
  console.log(`bench_ui: cannot run: ${why}`);
  process.exit(1);
}
const N = Number(nArg || 100000);
const pw = await loadPlaywright();
const shots = screenshotDir(shotsArg || 'bench-screenshots');
const fx = fixtures(Date.now());

const pct = (xs, p) => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))];
};
const ms = (x) => `${x.toFixed(1)} ms`;

// N entries cycling through the fixtures, each with its own connection (src port, seq),
// spread over the last 10 minutes.
function makeEntries(n) {
  const now = Date.now();
  const out = [];
  for (let i = 0; i < n; i++) {
    const f = fx.entries[i % fx.entries.length];
    out.push({ ...f, seq: Math.floor(i / 50000), src: { ...f.src, port: 10000 + (i % 50000) }, timestamp: now - 600000 + Math.floor((i / n) * 600000) });
  }
  return out;
}

// 50 workloads in 5 namespaces calling each other (and DNS), for the service map.
function meshEntries() {
  const out = [];
  const nss = ['shop', 'payments', 'search', 'identity', 'media'];
  const wl = [];
  for (let n = 0; n < 5; n++) for (let w = 0; w < 10; w++) wl.push({ ns: nss[n], name: `${nss[n]}-svc-${w}`, ip: `10.9.${n}.${w + 10}` });
  const base = fx.entries[0];
  let port = 20000;
  for (let i = 0; i < wl.length; i++) {
    const a = wl[i];
    const targets = [wl[(i + 1) % 10 + Math.floor(i / 10) * 10], wl[(i + 3) % 10 + Math.floor(i / 10) * 10], wl[(i * 7 + 11) % wl.length]];
    for (const [k, b] of targets.entries()) {
      for (let r = 0; r < 3 + k * 2 + (i % 4); r++) {
        out.push({
          ...base, timestamp: Date.now() - 1000 * r, seq: 0,
          src: { ip: a.ip, port: port++, name: `${a.name}-6d5b5c7f8-abcde`, namespace: a.ns, workload: a.name },
          dst: { ip: b.ip, port: 8080, name: `${b.name}-7c8b9d6f5-fghij`, namespace: b.ns, workload: b.name },
          request: { ...base.request, path: `/api/v${k + 1}/items/${r % 3}`, url: `/api/v${k + 1}/items/${r % 3}` },
          summary: `GET /api/v${k + 1}/items/${r % 3}`,
        });
      }
    }
  }
  return out;
}

const collector = new Collector(exe, ['--memory', '2Gi']);
let ctx = null;
try {
  await collector.start();
  const entries = makeEntries(N);
  let t = performance.now();
  for (let i = 0; i < entries.length; i += 5000) await collector.post(entries.slice(i, i + 5000));
  const stats = (await collector.get('/api/v1/stats')).body;
  console.log(`ingest: ${N} entries in ${ms(performance.now() - t)} (collector stores ${stats.entries})`);

  ctx = await launchBrowser(pw);
  const page = ctx.pages()[0] || await ctx.newPage();
  page.on('crash', () => console.log('bench_ui: the page crashed'));
  page.on('pageerror', (e) => console.log('bench_ui: page error:', e.message));
  t = performance.now();
  await page.goto(collector.base + '/');
  await page.waitForSelector('.scroller .row');
  console.log(`page load to first rows: ${ms(performance.now() - t)}`);

  // Load all N rows into the list the way a user does: scrolling to the end loads older pages.
  t = performance.now();
  const shown = () => page.evaluate(() => Number(document.querySelector('[data-testid=shown]').textContent.replace(/[^0-9]/g, '')));
  let last = 0, stall = 0;
  while ((last = await shown()) < N && stall < 250) {
    await page.evaluate(() => { const s = document.querySelector('.scroller'); s.scrollTop = s.scrollHeight; });
    await sleep(20);
    const now = await shown();
    stall = now === last ? stall + 1 : 0;
  }
  console.log(`list filled with ${await shown()} rows in ${ms(performance.now() - t)} (pages of 1000, loaded on scroll)`);

  // Scripted scroll: 600 frames, 400 px (about 13 rows) per frame from the top, then jumps.
  // Frame intervals are wall time (they stretch when other processes load the machine); the
  // renderer main thread's CPU time per frame comes from a trace and does not.
  const cdp = await ctx.newCDPSession(page);
  const events = [];
  cdp.on('Tracing.dataCollected', (d) => { for (const e of d.value) if (e.ph === 'X' && e.name === 'RunTask') events.push(e); });
  const traced = new Promise((r) => cdp.once('Tracing.tracingComplete', r));
  await cdp.send('Tracing.start', { categories: 'disabled-by-default-devtools.timeline,devtools.timeline', transferMode: 'ReportEvents' });
  const frames = await page.evaluate(async () => {
    const s = document.querySelector('.scroller');
    s.scrollTop = 0;
    await new Promise((r) => requestAnimationFrame(() => requestAnimationFrame(r)));
    const times = [];
    let prev = performance.now();
    for (let i = 0; i < 600; i++) {
      s.scrollTop += i < 500 ? 400 : s.scrollHeight / 120;
      await new Promise((r) => requestAnimationFrame(r));
      const now = performance.now();
      times.push(now - prev);
      prev = now;
    }
    return { times, rows: document.querySelectorAll('.scroller .row').length };
  });
  await cdp.send('Tracing.end');
  await traced;
  // The renderer's main thread is the one with the most RunTask CPU.
  const perThread = new Map();
  for (const e of events) perThread.set(`${e.pid}:${e.tid}`, (perThread.get(`${e.pid}:${e.tid}`) || 0) + (e.tdur || 0));
  const mainCpu = Math.max(0, ...perThread.values()) / 1000;
  const ft = frames.times;
  console.log(`scroll over ${N} rows: ${ft.length} frames, median ${ms(pct(ft, 50))}, p95 ${ms(pct(ft, 95))}, p99 ${ms(pct(ft, 99))}, max ${ms(Math.max(...ft))}, frames over 50 ms: ${ft.filter((x) => x > 50).length}; renderer main-thread CPU ${ms(mainCpu / ft.length)} per frame; ${frames.rows} row elements in the DOM`);
  await page.screenshot({ path: `${shots}/bench-scrolled.png` });

  // Filter apply to first paint: from submitting the query to the frame painted with its rows.
  const queries = [
    '!dns and !error',
    '!dns and !error and request.path != "/health" and request.path != "/healthz"',
    '!dns and !error and src.namespace == "bookinfo"',
    'redis and src.namespace == "guestbook"',
    '!dns and request.path != "/health" and request.path != "/healthz" and response.status == 404',
    'kafka',
    'response.status == 999',
    '',
  ];
  for (const q of queries) {
    const runs = [];
    for (let r = 0; r < 3; r++) {
      // Start from another view so each run really changes the rows.
      await page.fill('#filter', r % 2 ? 'tls' : 'http2');
      await page.press('#filter', 'Enter');
      await page.waitForFunction((x) => new URLSearchParams(location.search).get('q') === x, r % 2 ? 'tls' : 'http2');
      await sleep(100);
      // Real typing and Enter; the clock starts at the Enter keydown (capture phase) and
      // stops after the first frame painted with the new query's rows.
      await page.fill('#filter', q);
      await page.evaluate(() => {
        window.benchT0 = null;
        document.addEventListener('keydown', (ev) => { if (ev.key === 'Enter') window.benchT0 = performance.now(); }, { capture: true, once: true });
      });
      const waitPaint = page.evaluate((query) => new Promise((resolve) => {
        const check = () => {
          const cur = new URLSearchParams(location.search).get('q') || '';
          if (cur === query && window.benchT0 !== null) {
            requestAnimationFrame(() => setTimeout(() => resolve({
              ms: performance.now() - window.benchT0,
              shown: document.querySelector('[data-testid=shown]').textContent,
            }), 0));
          } else requestAnimationFrame(check);
        };
        check();
      }), q);
      await page.press('#filter', 'Enter');
      runs.push(await waitPaint);
    }
    const best = runs.map((x) => x.ms);
    console.log(`filter apply to first paint: median ${ms(pct(best, 50))} (runs ${best.map((x) => x.toFixed(0)).join(', ')} ms), ${runs[0].shown} rows: ${q || '(no filter)'}`);
  }

  // Service map with 50 workloads in 5 namespaces.
  await collector.post(meshEntries());
  await page.fill('#filter', 'src.namespace != "bookinfo" and src.namespace != "guestbook" and !dns and src.namespace != "shop" or src.namespace == "shop" and src.workload.startsWith("shop-svc")');
  await page.press('#filter', 'Enter');
  await sleep(300);
  t = performance.now();
  await page.click('.tabs.main button:has-text("Service map")');
  await page.waitForFunction(() => window.sidetapMap && window.sidetapMap.nodes('.wl').length >= 50, null, { timeout: 60000 });
  const mapMs = performance.now() - t;
  const counts = await page.evaluate(() => [window.sidetapMap.nodes('.wl').length, window.sidetapMap.edges().length]);
  console.log(`service map: ${counts[0]} workloads, ${counts[1]} edges fetched, laid out (fcose) and drawn in ${ms(mapMs)}`);
  await sleep(500);
  await page.screenshot({ path: `${shots}/bench-map-50.png` });
  console.log(`screenshots: ${shots}`);
} finally {
  if (ctx) await ctx.cleanup();
  await collector.stop();
}
