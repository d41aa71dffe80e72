// Browser tests of the web UI against a real sidetap-collector (started here on a free
// loopback port, fed with tests/ui/fixtures/entries.json over POST /api/v1/entries),
// driven with playwright-core in Debian's headless chromium.
// Usage: node test_ui.mjs PATH/TO/sidetap-collector SCREENSHOT_DIR
import { Collector, fixtures, launchBrowser, loadPlaywright, preflight, screenshotDir, SKIP, sleep } from './harness.mjs';

const [exe, shotsArg] = process.argv.slice(2);
const why = preflight(exe);
if (why) {
  console.log(`SKIP: ${why}`);
  process.exit(SKIP);
}
const pw = await loadPlaywright();
const shots = screenshotDir(shotsArg || 'screenshots');

let failed = 0, passed = 0;
async function step(name, fn) {
  const t = Date.now();
  try {
    await fn();
    passed++;
    console.log(`ok - ${name} (${Date.now() - t} ms)`);
  } catch (e) {
    failed++;
    console.log(`not ok - ${name}\n  ${String(e && e.stack || e).split('\n').join('\n  ')}`);
  }
}
function assert(cond, msg) {
  if (!cond) throw new Error(msg);
}
function eq(got, want, what) {
  if (JSON.stringify(got) !== JSON.stringify(want)) {
    throw new Error(`${what}: got ${JSON.stringify(got)}, want ${JSON.stringify(want)}`);
  }
}

const fx = fixtures();
const ALL = fx.tags;
const without = (list, drop) => list.filter((t) => !drop.includes(t));
const Q1 = without(ALL, ['dns_a', 'dns_cname', 'dns_nx', 'reset', 'redis_err', 'grpc_unavail']);
const SEEDS = [
  { q: '!dns and !error', want: Q1, how: 'enter' },
  { q: '!dns and !error and request.path != "/health" and request.path != "/healthz"', want: without(Q1, ['health1', 'health2']), how: 'apply' },
  { q: '!dns and !error and src.namespace == "bookinfo"', want: ['details', 'reviews', 'ratings', 'post', 'notfound', 'error503'], how: 'enter' },
  { q: 'redis and src.namespace == "guestbook"', want: ['redis_get', 'redis_set', 'redis_err', 'redis_repl'], how: 'menu', label: 'Redis in guestbook' },
  { q: '!dns and request.path != "/health" and request.path != "/healthz" and response.status == 404', want: ['notfound', 'notfound2'], how: 'enter' },
];

const collector = new Collector(exe);
let ctx = null;
const tagOf = new Map(); // collector id -> fixture tag
const idOf = new Map();
const key = (e) => `${e.src && e.src.ip}:${e.src && e.src.port}`;
const tagByKey = new Map(fx.entries.map((e, i) => [key(e), fx.tags[i]]));

try {
  await collector.start();
  ctx = await launchBrowser(pw);
  await ctx.grantPermissions(['clipboard-read', 'clipboard-write'], { origin: collector.base });
  const page = ctx.pages()[0] || await ctx.newPage();
  const pageErrors = [];
  page.on('pageerror', (e) => pageErrors.push(e.message));

  const rowIds = () => page.$$eval('.scroller .row', (els) => els.map((e) => e.dataset.id));
  const rowTags = async () => (await rowIds()).map((id) => tagOf.get(id) || `?${id}`);
  async function waitRows(want, what) {
    const w = [...want].sort();
    let got = [];
    for (let i = 0; i < 100; i++) {
      got = (await rowTags()).sort();
      if (JSON.stringify(got) === JSON.stringify(w)) return;
      await sleep(100);
    }
    const missing = w.filter((t) => !got.includes(t)), extra = got.filter((t) => !w.includes(t));
    throw new Error(`${what}: rows differ; missing ${JSON.stringify(missing)}, unexpected ${JSON.stringify(extra)}`);
  }
  const rowOf = (tag) => page.locator(`.scroller .row[data-id="${idOf.get(tag)}"]`);
  async function clearFilter() {
    await page.fill('#filter', '');
    await page.press('#filter', 'Enter');
    await waitRows(ALL, 'no filter');
  }

  await step('the list fills live as entries arrive, newest first', async () => {
    await page.goto(collector.base + '/');
    await page.waitForSelector('.live.live', { timeout: 10000 });
    eq(await rowIds(), [], 'rows before any traffic');
    assert(await page.isVisible('.empty'), 'empty state shown');
    for (let b = 0; b < 3; b++) {
      const batch = fx.entries.slice(b * 8, b * 8 + 8);
      await collector.post(batch);
      const want = (b + 1) * 8;
      for (let i = 0; i < 100 && (await rowIds()).length < want; i++) await sleep(100);
      eq((await rowIds()).length, want, `rows after batch ${b + 1}`);
      await sleep(300);
    }
    const { body } = await collector.get('/api/v1/entries?limit=1000');
    for (const e of body.entries) {
      const t = tagByKey.get(key(e));
      assert(t, `entry ${e.id} is not one of the fixtures`);
      tagOf.set(e.id, t);
      idOf.set(t, e.id);
    }
    eq(idOf.size, ALL.length, 'fixtures stored');
    const ids = (await rowIds()).map(Number);
    eq(ids, [...ids].sort((a, b) => b - a), 'rows newest first');
    eq(tagOf.get(String(ids[0])), 'h2', 'newest row');
    await page.waitForFunction(() => /[1-9]/.test(document.querySelector('[data-testid=rate]').textContent), null, { timeout: 5000 });
    const badge = await rowOf('grpc_ok').locator('.badge').textContent();
    eq(badge, 'gRPC', 'protocol badge');
    assert(await rowOf('reset').evaluate((el) => el.classList.contains('error')), 'error row stands out');
    eq(await rowOf('notfound').locator('.c-status').textContent(), '404', 'status column');
    eq(await rowOf('details').locator('.c-src .pod').textContent(), 'productpage-v1-7d6cfb7dfd-x2x4b', 'source pod');
    eq(await rowOf('details').locator('.c-src .ns').textContent(), 'bookinfo', 'source namespace');
    await page.screenshot({ path: `${shots}/list.png` });
  });

  for (const s of SEEDS) {
    await step(`seed query: ${s.q}`, async () => {
      if (s.how === 'menu') {
        await page.click('button:has-text("Examples")');
        await page.click(`.menu button:has-text("${s.label}")`);
      } else {
        await page.fill('#filter', s.q);
        if (s.how === 'apply') await page.click('button:has-text("Apply")');
        else await page.press('#filter', 'Enter');
      }
      await waitRows(s.want, s.q);
      eq(new URL(page.url()).searchParams.get('q'), s.q, 'filter in the URL');
      eq(await page.inputValue('#filter'), s.q, 'filter text');
    });
  }

  await step('the filter in the URL is applied when the page opens (shared view)', async () => {
    const q = 'redis and src.namespace == "guestbook"';
    await page.goto(`${collector.base}/?q=${encodeURIComponent(q)}`);
    await waitRows(['redis_get', 'redis_set', 'redis_err', 'redis_repl'], 'opened with ?q=');
    eq(await page.inputValue('#filter'), q, 'filter text from the URL');
  });

  await step('a wrong query shows the error with its position underlined', async () => {
    const before = (await rowTags()).sort();
    const bad = 'http and src.namespace == and dns';
    const { status, body } = await collector.get(`/api/v1/entries?q=${encodeURIComponent(bad)}`);
    eq(status, 400, 'collector status for the bad query');
    await page.fill('#filter', bad);
    await page.press('#filter', 'Enter');
    await page.waitForSelector('.ferrmsg', { timeout: 5000 });
    const msg = await page.textContent('.ferrmsg');
    assert(msg.includes(body.error), `message ${JSON.stringify(msg)} shows ${JSON.stringify(body.error)}`);
    const mark = page.locator('.ferr');
    eq(Number(await mark.getAttribute('data-pos')), body.position, 'underline position');
    eq(await mark.textContent(), bad.substr(body.position, body.length), 'underlined text');
    eq(await mark.textContent(), 'and', 'the underline is on the offending token');
    // The underline sits under those characters of the input: compare pixel offsets.
    const inputBox = await page.locator('#filter').boundingBox();
    const markBox = await mark.boundingBox();
    const charW = await page.evaluate(() => {
      const c = document.createElement('canvas').getContext('2d');
      c.font = getComputedStyle(document.querySelector('#filter')).font;
      return c.measureText('x').width;
    });
    assert(Math.abs(markBox.x - (inputBox.x + 2 + charW * body.position)) < charW, `underline x ${markBox.x} under character ${body.position}`);
    eq(await page.getAttribute('#filter', 'aria-invalid'), 'true', 'input marked invalid');
    eq((await rowTags()).sort(), before, 'rows kept after a wrong query');
    await page.screenshot({ path: `${shots}/filter-error.png` });
  });

  await step('add to filter and exclude from filter from a hovered value', async () => {
    await clearFilter();
    // Bring the row into view first: scrolling hides the popover, as it should.
    await rowOf('details').scrollIntoViewIfNeeded();
    await sleep(300);
    await rowOf('details').locator('.c-src .ns').hover();
    const add = page.locator('.vpop button.add');
    await add.waitFor({ timeout: 3000 });
    eq(await add.getAttribute('title'), 'src.namespace == "bookinfo"', 'offered expression');
    await page.screenshot({ path: `${shots}/add-to-filter.png` });
    await add.click();
    await waitRows(['details', 'reviews', 'ratings', 'post', 'notfound', 'error503', 'reset', 'dns_cname', 'dns_nx'], 'after add to filter');
    eq(await page.inputValue('#filter'), 'src.namespace == "bookinfo"', 'filter after add');
    await page.mouse.move(5, 5);
    await sleep(500);
    await rowOf('details').scrollIntoViewIfNeeded();
    await sleep(300);
    await rowOf('details').locator('.c-path .fv').hover();
    const exc = page.locator('.vpop button.exclude');
    await exc.waitFor({ timeout: 3000 });
    eq(await exc.getAttribute('title'), 'request.path != "/details/0"', 'offered exclusion');
    await exc.click();
    await waitRows(['reviews', 'ratings', 'post', 'notfound', 'error503', 'reset', 'dns_cname', 'dns_nx'], 'after exclude');
    eq(await page.inputValue('#filter'), 'src.namespace == "bookinfo" and request.path != "/details/0"', 'filter after exclude');
    await clearFilter();
  });

  async function open(tag) {
    await rowOf(tag).click();
    await page.waitForSelector(`.details[data-id="${idOf.get(tag)}"][data-loaded="1"]`, { timeout: 5000 });
  }
  const tab = (name) => page.click(`.details [role=tab]:has-text("${name}")`);
  const panelText = () => page.textContent('.details');

  await step('details of an HTTP entry: identities, headers, query string, JSON body, curl', async () => {
    await open('details');
    await tab('Overview');
    const t = await panelText();
    for (const s of ['GET /details/0', 'productpage-v1-7d6cfb7dfd-x2x4b', 'details-v1-5f4d584748-8mk9p', 'bookinfo-productpage',
      'app=productpage', 'version=v1', '10.1.0.13:9080', '2.4 ms']) assert(t.includes(s), `overview shows ${s}`);
    eq(await page.textContent('.details .d-status'), '200', 'status in the header');
    await page.screenshot({ path: `${shots}/details-http.png` });
    await tab('Request');
    const hdr = async (name) => page.locator('.details .headers tr', { has: page.locator(`th:text-is("${name}")`) }).locator('td').textContent();
    eq(await hdr('Host'), 'details:9080', 'Host header');
    eq(await hdr('Authorization'), '[REDACTED]', 'redacted header');
    const qs = await page.locator('.details table.kv tr', { has: page.locator('th:text-is("lang")') }).locator('td').textContent();
    eq(qs, 'en', 'query string');
    await tab('Response');
    const json = page.locator('.details .json');
    assert((await json.textContent()).includes('"William Shakespeare"'), 'JSON body pretty-printed');
    await page.screenshot({ path: `${shots}/details-http-response.png` });
    await json.locator('.j-toggle').first().click();
    assert((await json.textContent()).includes('9 keys'), 'JSON body folds');
    await json.locator('.j-toggle').first().click();
    await page.click('.details button:has-text("Copy as curl")');
    await page.waitForSelector('.details button:has-text("Copied")', { timeout: 3000 });
    const clip = await page.evaluate(() => navigator.clipboard.readText());
    assert(clip.startsWith("curl 'http://details:9080/details/0?lang=en'"), `curl command: ${clip}`);
    assert(clip.includes("-H 'Accept: application/json'"), 'curl keeps headers');
    assert(!clip.includes('REDACTED'), 'curl leaves redacted headers out');
  });

  await step('details of a gRPC entry: service, method, status', async () => {
    await open('grpc_unavail');
    await tab('Overview');
    const sec = await page.textContent('.details [data-section=grpc]');
    for (const s of ['hipstershop.PaymentService', 'Charge', '14', 'UNAVAILABLE', 'connection refused']) assert(sec.includes(s), `gRPC section shows ${s}`);
    eq(await page.textContent('.details .d-status'), 'UNAVAILABLE', 'gRPC status in the header');
    assert((await page.textContent('.details .errbox')).includes('gRPC 14 connection refused'), 'error shown');
    await page.screenshot({ path: `${shots}/details-grpc.png` });
  });

  await step('details of a Redis entry: command, key, reply', async () => {
    await open('redis_set');
    const sec = await page.textContent('.details [data-section=redis]');
    for (const s of ['SET', 'messages', 'simple', 'OK']) assert(sec.includes(s), `Redis section shows ${s}`);
    await page.screenshot({ path: `${shots}/details-redis.png` });
  });

  await step('details of a DNS entry: questions and answers', async () => {
    await open('dns_cname');
    const sec = page.locator('.details [data-section=dns]');
    const rows = await sec.locator('table.grid tbody tr').evaluateAll((trs) => trs.map((tr) => [...tr.cells].map((c) => c.textContent)));
    eq(rows, [['api.example.test', 'A', 'IN'], ['api.example.test', 'CNAME', '30', 'edge.example.test'], ['edge.example.test', 'A', '30', '203.0.113.9']], 'DNS questions and answers');
    assert((await sec.textContent()).includes('NOERROR'), 'rcode shown');
    await page.screenshot({ path: `${shots}/details-dns.png` });
  });

  await step('a binary body is shown as hex', async () => {
    await open('binary');
    await tab('Response');
    const hex = await page.textContent('.details pre.hex');
    assert(hex.startsWith('00000000  00 00 01 00 01 00 10 10  00 00 01 00 20 00 68 04'), `hex dump: ${hex.slice(0, 80)}`);
    await tab('Overview');
  });

  await step('keyboard: arrows move, Enter opens, Esc closes, / focuses the filter', async () => {
    await rowOf('h2').click();
    await page.keyboard.press('Escape');
    await page.waitForSelector('.details', { state: 'detached', timeout: 3000 });
    await rowOf('h2').focus();
    await page.keyboard.press('ArrowDown');
    await page.keyboard.press('ArrowDown');
    const focused = await page.evaluate(() => document.activeElement.dataset.id);
    eq(tagOf.get(focused), 'kafka', 'two rows down from the newest');
    await page.keyboard.press('Enter');
    await page.waitForSelector(`.details[data-id="${idOf.get('kafka')}"]`, { timeout: 3000 });
    assert((await page.textContent('.details [data-section=kafka]')).includes('orders'), 'Kafka section shows the topic');
    await page.keyboard.press('Escape');
    await page.waitForSelector('.details', { state: 'detached', timeout: 3000 });
    await page.keyboard.press('/');
    eq(await page.evaluate(() => document.activeElement.id), 'filter', '/ focuses the filter');
  });

  const mapNodes = () => page.evaluate(() => window.sidetapMap.nodes('.wl').map((n) => n.data('label')).sort());
  const mapEdges = () => page.evaluate(() => window.sidetapMap.edges().map((e) => e.id()).sort());
  async function waitMap(nodes) {
    for (let i = 0; i < 100; i++) {
      const got = await page.evaluate(() => window.sidetapMap && window.sidetapMap.nodes('.wl').length);
      if (got === nodes) return;
      await sleep(100);
    }
  }

  await step('service map: nodes and edges, following the filter', async () => {
    await page.fill('#filter', 'redis and src.namespace == "guestbook"');
    await page.press('#filter', 'Enter');
    await waitRows(['redis_get', 'redis_set', 'redis_err', 'redis_repl'], 'redis filter');
    await page.click('.tabs.main button:has-text("Service map")');
    await waitMap(3);
    eq(await mapNodes(), ['frontend', 'redis-follower', 'redis-leader'], 'filtered map nodes');
    eq((await mapEdges()).length, 3, 'filtered map edges');
    eq(new URL(page.url()).searchParams.get('view'), 'map', 'view in the URL');
    await page.fill('#filter', '');
    await page.press('#filter', 'Enter');
    await waitMap(14);
    eq(await mapNodes(), ['10.1.0.1', 'api.stripe.test', 'checkoutservice', 'details-v1', 'frontend', 'kafka', 'kube-dns',
      'paymentservice', 'productcatalogservice', 'productpage-v1', 'ratings-v1', 'redis-follower', 'redis-leader', 'reviews-v2'], 'map nodes');
    const api = (await collector.get('/api/v1/servicemap?window=15m')).body;
    eq(await mapEdges(), api.edges.map((e) => e.id).sort(), 'map edges are the collector\'s');
    const parent = await page.evaluate(() => window.sidetapMap.getElementById('bookinfo/details-v1').parent().id());
    eq(parent, 'ns:bookinfo', 'nodes grouped by namespace');
    const widths = await page.evaluate(() => {
      const e = window.sidetapMap.edges();
      return Object.fromEntries(e.map((x) => [x.id(), x.data('width')]));
    });
    const heavy = Object.keys(widths).find((k) => k.startsWith('bookinfo/productpage-v1->bookinfo/details-v1'));
    const light = Object.keys(widths).find((k) => k.startsWith('bookinfo/reviews-v2->bookinfo/ratings-v1'));
    assert(widths[heavy] > widths[light], 'edge width follows requests');
    await page.screenshot({ path: `${shots}/map.png` });
  });

  await step('service map: hovering an edge shows its top paths, clicking it filters the list', async () => {
    const id = await page.evaluate(() => window.sidetapMap.edges().filter((e) => e.id().startsWith('bookinfo/productpage-v1->bookinfo/details-v1')).id());
    const mid = await page.evaluate((i) => window.sidetapMap.getElementById(i).renderedMidpoint(), id);
    const box = await page.locator('.map-canvas').boundingBox();
    await page.mouse.move(box.x + mid.x, box.y + mid.y);
    await page.waitForSelector('.maptip', { timeout: 3000 });
    const tip = await page.textContent('.maptip');
    for (const s of ['GET /details/0', 'GET /details/99', 'GET /details/2', '3 requests']) assert(tip.includes(s), `tooltip shows ${s}: ${tip}`);
    await page.screenshot({ path: `${shots}/map-hover.png` });
    await page.mouse.click(box.x + mid.x, box.y + mid.y);
    await page.waitForSelector('.pane.api:not([hidden])', { timeout: 3000 });
    await waitRows(['details', 'notfound', 'reset'], 'after clicking the edge');
    const q = await page.inputValue('#filter');
    eq(q, 'src.workload == "productpage-v1" and src.namespace == "bookinfo" and dst.workload == "details-v1" and dst.namespace == "bookinfo" and http', 'edge filter');
  });

  await step('service map: clicking a node filters the list to its calls', async () => {
    await clearFilter();
    await page.click('.tabs.main button:has-text("Service map")');
    await waitMap(14);
    const pos = await page.evaluate(() => window.sidetapMap.getElementById('shop/kafka').renderedPosition());
    const box = await page.locator('.map-canvas').boundingBox();
    await page.mouse.click(box.x + pos.x, box.y + pos.y);
    await page.waitForSelector('.pane.api:not([hidden])', { timeout: 3000 });
    await waitRows(['kafka'], 'after clicking the kafka node');
    await clearFilter();
  });

  await step('dark theme', async () => {
    await page.click('button.theme');
    await page.waitForFunction(() => document.documentElement.dataset.theme === 'dark', null, { timeout: 3000 });
    eq(await page.evaluate(() => localStorage.getItem('sidetap.theme')), 'dark', 'theme remembered');
    await open('details');
    await page.screenshot({ path: `${shots}/dark.png` });
    await page.keyboard.press('Escape');
    await page.click('.tabs.main button:has-text("Service map")');
    await waitMap(14);
    await sleep(300);
    await page.screenshot({ path: `${shots}/map-dark.png` });
    await page.click('.tabs.main button:has-text("API calls")');
    await page.click('button.theme');
  });

  await step('pause stops new rows; resume adds them', async () => {
    const before = (await rowIds()).length;
    await page.click('button:has-text("Pause")');
    await page.waitForSelector('.live.paused', { timeout: 3000 });
    const more = [fx.entries[0], fx.entries[16]].map((e, i) => ({ ...e, src: { ...e.src, port: 60000 + i }, timestamp: Date.now() }));
    await collector.post(more);
    await page.waitForSelector('[data-testid=paused-new]', { timeout: 5000 });
    await sleep(1000);
    eq((await rowIds()).length, before, 'rows while paused');
    eq(await page.textContent('[data-testid=paused-new]'), '2', 'new entries counted while paused');
    await page.screenshot({ path: `${shots}/paused.png` });
    await page.click('button:has-text("Resume")');
    for (let i = 0; i < 50 && (await rowIds()).length < before + 2; i++) await sleep(100);
    eq((await rowIds()).length, before + 2, 'rows after resume');
    const top = await page.$$eval('.scroller .row', (els) => els.slice(0, 2).map((e) => e.querySelector('.c-path').textContent));
    eq(top.sort(), ['/details/0', 'redis-leader.guestbook.svc.cluster.local'], 'resumed rows on top');
  });

  await step('no page errors', async () => eq(pageErrors, [], 'uncaught page errors'));
} catch (e) {
  failed++;
  console.log(`not ok - harness: ${e && e.stack || e}`);
} finally {
  if (ctx) await ctx.cleanup();
  const res = await collector.stop();
  if (res && (res.code !== 0 && res.code !== null)) {
    failed++;
    console.log(`not ok - sidetap-collector exited with ${JSON.stringify(res)}\n${collector.log.slice(-4000)}`);
  }
}
console.log(`${passed} passed, ${failed} failed`);
process.exit(failed ? 1 : 0);
