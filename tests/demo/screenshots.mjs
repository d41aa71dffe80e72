// Opens the running demo's UI in Debian's chromium (playwright-core from tests/ui) and
// saves screenshots of the API list and the service map. Fails if the list stays empty
// or the map has no edges. Usage: node screenshots.mjs BASE_URL OUT_DIR
import { launchBrowser, loadPlaywright, screenshotDir, sleep, SKIP } from '../ui/harness.mjs';

const [base, outArg] = process.argv.slice(2);
const out = screenshotDir(outArg);
const pw = await loadPlaywright();
if (!pw) {
  console.log('playwright-core is not installed (npm ci in tests/ui): skipped');
  process.exit(SKIP);
}
const ctx = await launchBrowser(pw);
let failed = false;
try {
  const page = await ctx.newPage();
  await page.goto(`${base}/?q=${encodeURIComponent('!dns')}`);
  let rows = 0;
  for (let i = 0; i < 100 && rows < 5; i++) {
    rows = await page.locator('.scroller .row').count();
    await sleep(200);
  }
  console.log(`API list rows: ${rows}`);
  if (rows < 5) failed = true;
  await page.screenshot({ path: `${out}/demo-list.png` });
  await page.click('.tabs.main button:has-text("Service map")');
  let edges = 0;
  for (let i = 0; i < 100 && edges < 5; i++) {
    edges = await page.evaluate(() => (window.sidetapMap ? window.sidetapMap.edges().length : 0));
    await sleep(200);
  }
  await sleep(1500); // let the layout settle before the picture
  console.log(`service map edges: ${edges}`);
  if (edges < 5) failed = true;
  await page.screenshot({ path: `${out}/demo-map.png` });
  console.log(`screenshots in ${out}`);
} finally {
  await ctx.cleanup();
}
process.exit(failed ? 1 : 0);
