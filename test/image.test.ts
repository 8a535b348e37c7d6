import { execFile } from 'node:child_process';
import { chmod, mkdir, mkdtemp, readdir, readFile, rm, unlink, writeFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { promisify } from 'node:util';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ArgumentError, ImageError, type ImageErrorCode } from '../src-main/engine/errors.ts';
import {
  CNN_SIZE,
  DEFAULT_MAX_PIXELS,
  type DecodedImage,
  decodeBufferForCnn,
  decodeForCnn,
} from '../src-main/engine/image/index.ts';
import { sharedDir } from '../src-main/engine/paths.ts';
import {
  COLOURS,
  EXIF_STORED,
  HUGE_PNG_SIDE,
  type ImageFixtures,
  writeImageFixtures,
} from './helpers/bad-images.ts';

const BYTES = CNN_SIZE * CNN_SIZE * 3;

let dir: string;
let fx: ImageFixtures;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'sagasu-image-'));
  fx = await writeImageFixtures(dir);
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

/** Runs the decode and returns the ImageError it must throw, failing the test on success or on any other error. */
async function imageError(run: Promise<unknown>): Promise<ImageError> {
  const error = await run.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(error, 'decode should have failed').toBeInstanceOf(ImageError);
  return error as ImageError;
}

async function expectImageError(file: string, code: ImageErrorCode): Promise<ImageError> {
  const error = await imageError(decodeForCnn(file));
  expect(error.code).toBe(code);
  expect(error.subject).toBe(file);
  expect(error.file).toBe(file);
  expect(error.message).toContain(file);
  // The reason must say more than the path.
  expect(error.reason.length).toBeGreaterThan(15);
  return error;
}

function pixel(image: DecodedImage, x: number, y: number): [number, number, number] {
  const at = (y * CNN_SIZE + x) * 3;
  return [image.pixels[at] ?? -1, image.pixels[at + 1] ?? -1, image.pixels[at + 2] ?? -1];
}

function meanColour(image: DecodedImage): [number, number, number] {
  const sum = [0, 0, 0];
  image.pixels.forEach((value, i) => {
    sum[i % 3] = (sum[i % 3] ?? 0) + value;
  });
  return sum.map((s) => s / (CNN_SIZE * CNN_SIZE)) as [number, number, number];
}

function expectNear(actual: readonly number[], expected: readonly number[], tolerance: number) {
  for (let c = 0; c < 3; c++) {
    expect(
      Math.abs((actual[c] ?? Number.NaN) - (expected[c] ?? Number.NaN)),
      `channel ${c} of ${actual}`,
    ).toBeLessThanOrEqual(tolerance);
  }
}

function expectCnnInput(image: DecodedImage, file: string) {
  expect(image.file).toBe(file);
  expect(image.pixels).toBeInstanceOf(Uint8Array);
  expect(image.pixels.length).toBe(BYTES);
}

describe('inputs that cannot become pixels', () => {
  it('a zero-byte file is empty-file', async () => {
    await expectImageError(fx.zeroByte, 'empty-file');
  });

  it('a JPEG cut in half is corrupt, not grey pixels below the cut', async () => {
    const error = await expectImageError(fx.truncatedJpeg, 'corrupt');
    expect(error.message).toMatch(/damaged or incomplete/);
  });

  it('a text file named .jpg is unsupported-format', async () => {
    const error = await expectImageError(fx.textAsJpeg, 'unsupported-format');
    expect(error.message).toMatch(/JPEG, PNG/);
  });

  it('an SVG, which libvips could render, is refused as not a photo format', async () => {
    const error = await expectImageError(fx.svg, 'unsupported-format');
    expect(error.message).toContain('SVG');
  });

  it.runIf(!sharp.format.heif.input.fileSuffix?.includes('.heic'))(
    'an HEIC file says HEIC decoding is not available in this build',
    async () => {
      const error = await expectImageError(fx.fakeHeic, 'unsupported-format');
      expect(error.message).toMatch(/HEIC decoding isn't available in this build/);
    },
  );

  it('a PNG whose header claims 30000 x 30000 is refused from its header, naming the pixel count and limit', async () => {
    const error = await expectImageError(fx.hugePng, 'too-many-pixels');
    expect(error.message).toContain(`${HUGE_PNG_SIDE} x ${HUGE_PNG_SIDE}`);
    expect(error.message).toContain('900,000,000');
    expect(error.message).toContain(DEFAULT_MAX_PIXELS.toLocaleString('en-US'));
  });

  it('maxPixels lowers the limit', async () => {
    const error = await imageError(decodeForCnn(fx.webp, { maxPixels: 1000 }));
    expect(error.code).toBe('too-many-pixels');
    expect(error.message).toContain('4,096 pixels exceeds the limit of 1,000');
    await expect(decodeForCnn(fx.webp, { maxPixels: 64 * 64 })).resolves.toMatchObject({ width: 64 });
  });

  it('a missing file is not-found', async () => {
    await expectImageError(join(dir, 'never-existed.jpg'), 'not-found');
  });

  it('a file deleted between listing and reading is not-found, naming the file', async () => {
    const folder = join(dir, 'vanishing');
    await mkdir(folder);
    await writeFile(join(folder, 'photo.jpg'), await readFile(fx.goodJpeg));
    const listed = (await readdir(folder)).map((name) => join(folder, name));
    expect(listed).toEqual([join(folder, 'photo.jpg')]);
    // Another process (a sync client, the user) removes it while the indexer works through the listing.
    await unlink(join(folder, 'photo.jpg'));
    const error = await expectImageError(listed[0] ?? '', 'not-found');
    expect(error.message).toMatch(/moved or deleted/);
  });

  it('a directory passed as a file is not-a-file', async () => {
    const folder = join(dir, 'holiday.jpg');
    await mkdir(folder);
    await expectImageError(folder, 'not-a-file');
  });

  it.skipIf(process.platform === 'win32')('a named pipe is not-a-file, without blocking on it', async () => {
    const fifo = join(dir, 'pipe.jpg');
    await promisify(execFile)('mkfifo', [fifo]);
    await expectImageError(fifo, 'not-a-file');
  });

  it('an invalid maxPixels is an argument error, not an image error', async () => {
    await expect(decodeForCnn(fx.webp, { maxPixels: 0 })).rejects.toBeInstanceOf(ArgumentError);
  });

  it('decodeBufferForCnn names the given name in its errors', async () => {
    const name = 'upload:notes.jpg';
    const error = await imageError(decodeBufferForCnn(await readFile(fx.textAsJpeg), name));
    expect(error.code).toBe('unsupported-format');
    expect(error.subject).toBe(name);
    expect(error.message).toContain(name);
    expect((await imageError(decodeBufferForCnn(new Uint8Array(0), name))).code).toBe('empty-file');
  });

  it('a batch goes on after a bad file', async () => {
    const files = [fx.goodJpeg, fx.truncatedJpeg, fx.webp, fx.zeroByte, fx.avif];
    const results = await Promise.allSettled(files.map((file) => decodeForCnn(file)));
    expect(results.map((r) => r.status)).toEqual([
      'fulfilled',
      'rejected',
      'fulfilled',
      'rejected',
      'fulfilled',
    ]);
    for (const [i, result] of results.entries()) {
      if (result.status === 'fulfilled') expectCnnInput(result.value, files[i] ?? '');
      else expect((result.reason as ImageError).subject).toBe(files[i]);
    }
  });
});

describe('a file this user may not read', () => {
  const isRoot = process.getuid?.() === 0;

  it.skipIf(process.platform === 'win32')(
    isRoot
      ? 'is permission-denied (checked in a child without CAP_DAC_OVERRIDE, since root reads mode 000)'
      : 'is permission-denied',
    async () => {
      const folder = join(dir, 'private');
      await mkdir(folder);
      const file = join(folder, 'secret.jpg');
      await writeFile(file, await readFile(fx.goodJpeg));
      await chmod(file, 0o000);
      if (!isRoot) {
        await expectImageError(file, 'permission-denied');
        return;
      }
      const result = await decodeWithoutPermissionOverride(file);
      expect(result).toEqual({
        code: 'permission-denied',
        subject: file,
        message: expect.stringContaining(file),
      });
      // The same file is readable to root: the child really was refused for want of permission.
      expectCnnInput(await decodeForCnn(file), file);
    },
  );
});

async function decodeWithoutPermissionOverride(file: string): Promise<unknown> {
  const tsxLoader = pathToFileURL(createRequire(import.meta.url).resolve('tsx')).href;
  const script = fileURLToPath(new URL('./helpers/decode-in-child.ts', import.meta.url));
  // Still root (so the checkout is readable wherever it lives), but unable to override file modes.
  const drop = '-dac_override,-dac_read_search';
  const child = await promisify(execFile)(
    'setpriv',
    [`--inh-caps=${drop}`, `--bounding-set=${drop}`, process.execPath, '--import', tsxLoader, script, file],
    { timeout: 60_000 },
  ).catch((error: { stdout?: string; stderr?: string; message: string }) => {
    throw new Error(
      `child without CAP_DAC_OVERRIDE failed: ${error.message}\n${error.stdout ?? ''}\n${error.stderr ?? ''}`,
    );
  });
  const line = child.stdout.trim().split('\n').at(-1) ?? '';
  return JSON.parse(line);
}

describe('unusual but valid photos decode to the CNN input', () => {
  it('a plain JPEG: 224x224x3 bytes, the original size, format jpeg', async () => {
    const image = await decodeForCnn(fx.goodJpeg);
    expectCnnInput(image, fx.goodJpeg);
    expect(image).toMatchObject({ width: 600, height: 400, format: 'jpeg' });
    // Noise around 128: neither black nor a flat fill.
    expectNear(meanColour(image), [128, 128, 128], 6);
    expect(new Set(image.pixels).size).toBeGreaterThan(50);
  });

  it('a CMYK JPEG of a known colour lands near that RGB', async () => {
    const image = await decodeForCnn(fx.cmykJpeg);
    expectCnnInput(image, fx.cmykJpeg);
    expectNear(meanColour(image), COLOURS.cmyk, 16);
  });

  it('a 16-bit PNG becomes 8-bit values of the same colour', async () => {
    const image = await decodeForCnn(fx.png16);
    expectCnnInput(image, fx.png16);
    expect(image.format).toBe('png');
    expectNear(meanColour(image), COLOURS.png16, 1);
  });

  it('a grayscale JPEG gives R = G = B, across the grey ramp', async () => {
    const image = await decodeForCnn(fx.grayJpeg);
    expectCnnInput(image, fx.grayJpeg);
    let unequal = 0;
    for (let i = 0; i < BYTES; i += 3) {
      if (image.pixels[i + 1] !== image.pixels[i] || image.pixels[i + 2] !== image.pixels[i]) unequal++;
    }
    expect(unequal, 'pixels whose R, G, B differ').toBe(0);
    expect(pixel(image, 2, 100)[0]).toBeLessThan(10);
    expect(pixel(image, 221, 100)[0]).toBeGreaterThan(245);
  });

  it("an animated GIF gives its first frame's colour and size", async () => {
    const image = await decodeForCnn(fx.animatedGif);
    expectCnnInput(image, fx.animatedGif);
    expect(image).toMatchObject({ width: 64, height: 64, format: 'gif' });
    expectNear(meanColour(image), COLOURS.gifFirstFrame, 1);
  });

  it('alpha is flattened onto white, not dropped to the black beneath', async () => {
    const image = await decodeForCnn(fx.alphaPng);
    expectCnnInput(image, fx.alphaPng);
    expectNear(pixel(image, 10, 100), [255, 255, 255], 1);
    expectNear(pixel(image, 210, 100), COLOURS.alphaOpaque, 1);
  });

  it('EXIF orientation 6 is applied: size swapped, the stored top-left marker lands top-right', async () => {
    const image = await decodeForCnn(fx.exifRotatedJpeg);
    expectCnnInput(image, fx.exifRotatedJpeg);
    expect(image).toMatchObject({ width: EXIF_STORED.height, height: EXIF_STORED.width });
    // Displayed 200 wide x 300 high; the 60 px marker covers x >= 140 of 200 and y < 60 of 300,
    // i.e. x >= 157 and y < 45 of 224.
    expectNear(pixel(image, 215, 10), COLOURS.exifMarker, 12);
    expectNear(pixel(image, 10, 10), COLOURS.exifBackground, 12);
    expectNear(pixel(image, 215, 215), COLOURS.exifBackground, 12);
    expectNear(pixel(image, 10, 215), COLOURS.exifBackground, 12);
  });

  it.each([
    ['webp', 'webp', COLOURS.webp, 1],
    ['tiff', 'tiff', COLOURS.tiff, 2],
    ['avif', 'avif', COLOURS.avif, 4],
  ] as const)('%s decodes with its colour', async (key, format, colour, tolerance) => {
    const image = await decodeForCnn(fx[key]);
    expectCnnInput(image, fx[key]);
    expect(image).toMatchObject({ width: 64, height: 64, format });
    expectNear(meanColour(image), colour, tolerance);
  });

  it('decodeBufferForCnn gives the same pixels as decodeForCnn', async () => {
    const fromFile = await decodeForCnn(fx.goodJpeg);
    const fromBuffer = await decodeBufferForCnn(await readFile(fx.goodJpeg), 'good.jpg');
    expect(fromBuffer.file).toBe('good.jpg');
    expect(Buffer.from(fromBuffer.pixels).equals(Buffer.from(fromFile.pixels))).toBe(true);
  });
});

function meanAbsoluteDifference(a: Uint8Array, b: Uint8Array): number {
  expect(a.length).toBe(b.length);
  let sum = 0;
  for (let i = 0; i < a.length; i++) sum += Math.abs((a[i] ?? 0) - (b[i] ?? 0));
  return sum / a.length;
}

const shared = sharedDir();
describe.skipIf(!shared)(
  `train/serve skew against the shared reference inputs${shared ? '' : ' (skipped: no shared folder; set SAGASU_SHARED)'}`,
  () => {
    const root = shared ?? '';

    // Measured with the chosen pipeline (linear kernel, ICC ignored): mean 0.22, max 0.37 per byte over the
    // 10 photos; bound = max plus a margin for libvips/libjpeg version drift. Honouring ICC profiles gave a max
    // of 5.64, and the nearest kernel 6.89, so a regression to either fails here.
    it('the 10 reference photos land within 0.5 per byte of the TFLite reference input', async () => {
      const photos = join(root, 'models', 'reference', 'photos');
      const names = (await readdir(photos)).filter((name) => /\.(png|jpg)$/.test(name));
      expect(names).toHaveLength(10);
      for (const name of names) {
        const expected = await readFile(
          join(root, 'models', 'reference', 'expected', `${name.replace(/\.\w+$/, '')}.input.u8`),
        );
        const image = await decodeForCnn(join(photos, name));
        expect(meanAbsoluteDifference(image.pixels, expected), name).toBeLessThan(0.5);
      }
    });

    // Measured: mean 4.31, max 7.81 per byte over the 125 originals; the stored copies carry JPEG q90 4:2:0
    // noise (3.14 on average by itself) and an unknown (likely box) resampler. Bounds: max 8.5, mean 4.6.
    // Honouring ICC profiles gave a max of 12.57, the nearest kernel 21.51.
    it('the 125 Flickr8k originals land near their stored 224x224 copies', async () => {
      const originals = join(root, 'data', 'flickr8k', 'originals');
      const names = await readdir(originals);
      expect(names).toHaveLength(125);
      const differences: number[] = [];
      for (const name of names) {
        const image = await decodeForCnn(join(originals, name));
        const { data } = await sharp(join(root, 'data', 'flickr8k', 'images', name))
          .raw()
          .toBuffer({ resolveWithObject: true });
        const difference = meanAbsoluteDifference(image.pixels, data);
        expect(difference, basename(name)).toBeLessThan(8.5);
        differences.push(difference);
      }
      expect(differences.reduce((a, b) => a + b, 0) / differences.length).toBeLessThan(4.6);
    });
  },
);
