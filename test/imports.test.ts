import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { dirname, join, relative, resolve, sep } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

// The layering rule, read from the real source: a folder of src-main never imports a folder that imports it
// back, directly or through others, and the renderer reaches src-main only through the contract.

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const MAIN = join(root, 'src-main');
const RENDERER = join(root, 'src-renderer');
const SOURCE = /\.(ts|mts|mjs|js|svelte)$/;

function sourceFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((entry) => {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) return sourceFiles(path);
    return SOURCE.test(entry.name) && !entry.name.endsWith('.d.ts') ? [path] : [];
  });
}

/** Relative specifiers of static imports, re-exports, side-effect imports and dynamic import(). */
function specifiers(text: string): string[] {
  const patterns = [
    /^\s*(?:import|export)\b[^'"`;]*?\bfrom\s*['"]([^'"]+)['"]/gm,
    /^\s*import\s*['"]([^'"]+)['"]/gm,
    /\bimport\(\s*['"]([^'"]+)['"]\s*\)/g,
  ];
  return patterns
    .flatMap((p) => [...text.matchAll(p)].map((m) => m[1] as string))
    .filter((s) => s.startsWith('.'));
}

/** "engine/api" for src-main/engine/api/engine.ts; "src-renderer/lib" for the renderer's files. */
function folderOf(file: string): string | null {
  const dir = dirname(file);
  if (dir === MAIN || dir.startsWith(MAIN + sep)) return relative(MAIN, dir).split(sep).join('/') || '.';
  if (dir === RENDERER || dir.startsWith(RENDERER + sep)) return relative(root, dir).split(sep).join('/');
  return null;
}

interface Edge {
  from: string;
  to: string;
  /** One import that makes the edge, for the failure message. */
  example: string;
}

function importEdges(): { edges: Edge[]; unresolved: string[] } {
  const edges = new Map<string, Edge>();
  const unresolved: string[] = [];
  for (const file of [...sourceFiles(MAIN), ...sourceFiles(RENDERER)]) {
    const from = folderOf(file) as string;
    for (const spec of specifiers(readFileSync(file, 'utf8'))) {
      const target = resolve(dirname(file), spec);
      const shown = `${relative(root, file)} → ${spec}`;
      if (!existsSync(target)) {
        unresolved.push(shown);
        continue;
      }
      const to = folderOf(target);
      if (to === null || to === from) continue;
      const key = `${from}\0${to}`;
      if (!edges.has(key)) edges.set(key, { from, to, example: shown });
    }
  }
  return { edges: [...edges.values()], unresolved };
}

/** Tarjan's strongly connected components; each one of more than one folder is a cycle. */
function cycles(edges: Edge[]): string[][] {
  const next = new Map<string, string[]>();
  for (const { from, to } of edges) {
    next.set(from, [...(next.get(from) ?? []), to]);
    if (!next.has(to)) next.set(to, []);
  }
  const index = new Map<string, number>();
  const low = new Map<string, number>();
  const stack: string[] = [];
  const onStack = new Set<string>();
  const found: string[][] = [];
  const visit = (v: string): void => {
    index.set(v, index.size);
    low.set(v, index.get(v) as number);
    stack.push(v);
    onStack.add(v);
    for (const w of next.get(v) ?? []) {
      if (!index.has(w)) {
        visit(w);
        low.set(v, Math.min(low.get(v) as number, low.get(w) as number));
      } else if (onStack.has(w)) {
        low.set(v, Math.min(low.get(v) as number, index.get(w) as number));
      }
    }
    if (low.get(v) !== index.get(v)) return;
    const component: string[] = [];
    let w: string;
    do {
      w = stack.pop() as string;
      onStack.delete(w);
      component.push(w);
    } while (w !== v);
    if (component.length > 1) found.push(component.sort());
  };
  for (const v of [...next.keys()].sort()) if (!index.has(v)) visit(v);
  return found.sort((a, b) => (a[0] as string).localeCompare(b[0] as string));
}

describe('imports', () => {
  const { edges, unresolved } = importEdges();

  it('reads a real graph: every relative import resolves to a file', () => {
    expect(unresolved).toEqual([]);
    expect(edges.some((e) => e.from === 'server' && e.to.startsWith('engine'))).toBe(true);
  });

  it('finds a cycle where there is one', () => {
    const made = [
      { from: 'a', to: 'b', example: '' },
      { from: 'b', to: 'c', example: '' },
      { from: 'c', to: 'a', example: '' },
      { from: 'c', to: 'd', example: '' },
    ];
    expect(cycles(made)).toEqual([['a', 'b', 'c']]);
  });

  it('no folder of src-main imports a folder that imports it back, directly or through others', () => {
    const inCycle = cycles(edges).map((folders) => ({
      folders,
      edges: edges.filter((e) => folders.includes(e.from) && folders.includes(e.to)).map((e) => e.example),
    }));
    expect(inCycle).toEqual([]);
  });

  it('the renderer reaches src-main only through the contract', () => {
    const outside = edges
      .filter((e) => e.from.startsWith('src-renderer') && !e.to.startsWith('src-renderer'))
      .filter((e) => e.to !== 'contract')
      .map((e) => e.example);
    expect(outside).toEqual([]);
  });
});
