// Bundles the web UI with esbuild into OUTDIR: index.html plus hashed assets under assets/.
// Usage: node build.mjs OUTDIR [--dev]   (writes OUTDIR/meta.json, the esbuild metafile,
// which gen_assets.py reads to list the inputs for ninja's depfile).
import * as esbuild from 'esbuild';
import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { basename, dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const out = resolve(process.argv[2] || join(here, 'dist'));
const dev = process.argv.includes('--dev');

rmSync(out, { recursive: true, force: true });
mkdirSync(join(out, 'assets'), { recursive: true });

const result = await esbuild.build({
  absWorkingDir: here,
  entryPoints: ['src/main.jsx'],
  bundle: true,
  minify: !dev,
  sourcemap: false,
  format: 'esm',
  splitting: true, // the service map (cytoscape) is a chunk loaded on demand
  target: ['es2020'],
  jsx: 'automatic',
  jsxImportSource: 'preact',
  entryNames: '[name]-[hash]',
  chunkNames: '[name]-[hash]',
  assetNames: '[name]-[hash]',
  outdir: join(out, 'assets'),
  metafile: true,
  legalComments: 'none',
  logLevel: 'warning',
  define: { 'process.env.NODE_ENV': dev ? '"development"' : '"production"' },
});

let js = '', css = '';
const preload = [];
for (const [file, out] of Object.entries(result.metafile.outputs)) {
  const name = basename(file);
  if (name.endsWith('.js') && out.entryPoint === 'src/main.jsx') {
    js = name;
    for (const imp of out.imports) if (imp.kind === 'import-statement') preload.push(basename(imp.path));
  }
  if (name.endsWith('.css')) css = name;
}
if (!js) throw new Error('esbuild produced no JavaScript');

const html = readFileSync(join(here, 'src/index.html'), 'utf8')
  .replace('%CSS%', css ? `<link rel="stylesheet" href="/assets/${css}">` : '')
  .replace('%JS%', preload.map((p) => `<link rel="modulepreload" href="/assets/${p}">\n`).join('') +
    `<script type="module" src="/assets/${js}"></script>`);
writeFileSync(join(out, 'index.html'), html);
writeFileSync(join(out, 'meta.json'), JSON.stringify(result.metafile));
