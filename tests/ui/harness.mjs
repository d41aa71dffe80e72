// Shared by the UI browser tests and benchmarks: starts a real sidetap-collector on a free
// loopback port, feeds it entry fixtures over its ingest API, and drives Debian's chromium
// with playwright-core. Everything started here is stopped by stop(), even on failure.
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
export const CHROMIUM = process.env.SIDETAP_CHROMIUM || '/usr/bin/chromium';
export const SKIP = 77; // meson's exit code for a skipped test

export async function loadPlaywright() {
  try {
    return await import(join(here, 'node_modules', 'playwright-core', 'index.mjs'));
  } catch (_) {
    return null;
  }
}

export function freePort() {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.on('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });
}

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

export class Collector {
  constructor(exe, extraArgs = []) {
    this.exe = exe;
    this.extraArgs = extraArgs;
    this.log = '';
  }

  async start() {
    this.port = await freePort();
    this.base = `http://127.0.0.1:${this.port}`;
    this.proc = spawn(this.exe, ['--listen', `127.0.0.1:${this.port}`, '--no-auth', '--no-k8s',
      '--dedup-hold', '0', ...this.extraArgs], { stdio: ['ignore', 'pipe', 'pipe'] });
    this.exited = new Promise((resolve) => this.proc.on('exit', (code, sig) => resolve({ code, sig })));
    const keep = (d) => { this.log += d.toString(); if (this.log.length > 200000) this.log = this.log.slice(-100000); };
    this.proc.stdout.on('data', keep);
    this.proc.stderr.on('data', keep);
    for (let i = 0; i < 200; i++) {
      try {
        const r = await fetch(`${this.base}/readyz`);
        if (r.ok) return this;
      } catch (_) { /* not up yet */ }
      if (this.proc.exitCode !== null) break;
      await sleep(50);
    }
    throw new Error(`sidetap-collector did not become ready on ${this.base}:\n${this.log}`);
  }

  async post(entries) {
    const r = await fetch(`${this.base}/api/v1/entries`, {
      method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify({ entries }),
    });
    const body = await r.json();
    if (r.status !== 200 || body.accepted !== entries.length) {
      throw new Error(`ingest answered ${r.status}: ${JSON.stringify(body).slice(0, 500)}`);
    }
    return body;
  }

  async get(path) {
    const r = await fetch(`${this.base}${path}`);
    return { status: r.status, body: await r.json() };
  }

  // SIGTERM, then wait: the sanitizer build reports leaks at exit, which fails the run.
  async stop() {
    if (!this.proc || this.proc.exitCode !== null) return this.proc ? { code: this.proc.exitCode } : null;
    this.proc.kill('SIGTERM');
    const t = setTimeout(() => this.proc.kill('SIGKILL'), 10000);
    const res = await this.exited;
    clearTimeout(t);
    return res;
  }
}

// Fixtures with timestamps moved so the newest is `endMs`, spaced as recorded.
export function fixtures(endMs = Date.now()) {
  const d = JSON.parse(readFileSync(join(here, 'fixtures', 'entries.json'), 'utf8'));
  const last = d.entries[d.entries.length - 1].timestamp;
  for (const e of d.entries) e.timestamp = endMs - (last - e.timestamp);
  return d;
}

export async function launchBrowser(pw) {
  const userDataDir = mkdtempSync(join(tmpdir(), 'sidetap-ui-chromium-'));
  const ctx = await pw.chromium.launchPersistentContext(userDataDir, {
    executablePath: CHROMIUM,
    headless: true,
    viewport: { width: 1280, height: 800 },
    args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
      '--disable-component-update', '--disable-sync'],
  });
  ctx.cleanup = async () => {
    await ctx.close().catch(() => {});
    rmSync(userDataDir, { recursive: true, force: true });
  };
  return ctx;
}

export function screenshotDir(dir) {
  mkdirSync(dir, { recursive: true });
  return dir;
}

export function preflight(exe) {
  if (!exe || !existsSync(exe)) return `no sidetap-collector at ${exe}`;
  if (!existsSync(CHROMIUM)) return `no chromium at ${CHROMIUM} (apt-get install chromium)`;
  if (!existsSync(join(here, 'node_modules', 'playwright-core'))) return 'playwright-core missing: run npm ci in tests/ui';
  return null;
}
