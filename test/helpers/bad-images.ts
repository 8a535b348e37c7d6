/**
 * Generates the image fixtures at test time, so no binary file is committed: each is made by sharp (or
 * crafted byte by byte where sharp cannot make the fault), then checked to really be what its name says,
 * since a fixture that silently isn't (a GIF with one frame, a JPEG without the EXIF tag) tests nothing.
 */
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import sharp from 'sharp';

type Rgb = readonly [number, number, number];

/** Colours the tests look for in the decoded pixels. */
export const COLOURS = {
  // Inside the CMYK gamut: the sRGB -> CMYK -> sRGB round trip moves it by at most 9 per channel.
  cmyk: [180, 120, 90],
  png16: [30, 120, 220],
  gifFirstFrame: [255, 0, 0],
  gifSecondFrame: [0, 0, 255],
  alphaOpaque: [0, 0, 255],
  exifBackground: [0, 0, 255],
  exifMarker: [255, 0, 0],
  webp: [10, 200, 30],
  tiff: [250, 200, 0],
  avif: [120, 40, 160],
} as const satisfies Record<string, Rgb>;

/** The EXIF-rotated JPEG as stored: landscape, with the marker in its stored top-left corner. */
export const EXIF_STORED = { width: 300, height: 200, marker: 60 } as const;

/** What the crafted PNG's header claims; the pixels behind it are 16x16. */
export const HUGE_PNG_SIDE = 30_000;

export interface ImageFixtures {
  dir: string;
  goodJpeg: string;
  zeroByte: string;
  truncatedJpeg: string;
  textAsJpeg: string;
  svg: string;
  fakeHeic: string;
  hugePng: string;
  cmykJpeg: string;
  png16: string;
  grayJpeg: string;
  animatedGif: string;
  alphaPng: string;
  exifRotatedJpeg: string;
  webp: string;
  tiff: string;
  avif: string;
}

export async function writeImageFixtures(dir: string): Promise<ImageFixtures> {
  const put = async (name: string, bytes: Uint8Array | string) => {
    const file = join(dir, name);
    await writeFile(file, bytes);
    return file;
  };
  const noiseJpeg = await noise(600, 400).jpeg({ quality: 90 }).toBuffer();
  return {
    dir,
    goodJpeg: await put('good.jpg', noiseJpeg),
    zeroByte: await put('zero-bytes.jpg', new Uint8Array(0)),
    // Half of a noise JPEG: the cut lands inside the entropy-coded scan, past a valid header.
    truncatedJpeg: await put('truncated.jpg', noiseJpeg.subarray(0, noiseJpeg.length >> 1)),
    textAsJpeg: await put('notes.jpg', 'These are notes about the trip, not a photo.\n'),
    svg: await put(
      'drawing.jpg',
      '<svg xmlns="http://www.w3.org/2000/svg" width="64" height="64"><rect width="64" height="64" fill="red"/></svg>',
    ),
    fakeHeic: await put('phone.heic', fakeHeic()),
    hugePng: await put('huge.png', await hugePng()),
    cmykJpeg: await put('cmyk.jpg', await cmykJpeg()),
    png16: await put('deep.png', await png16()),
    grayJpeg: await put('gray.jpg', await grayJpeg()),
    animatedGif: await put('animated.gif', await animatedGif()),
    alphaPng: await put('alpha.png', await alphaPng()),
    exifRotatedJpeg: await put('rotated.jpg', await exifRotatedJpeg()),
    webp: await put('photo.webp', await solid(COLOURS.webp).webp({ lossless: true }).toBuffer()),
    tiff: await put('photo.tiff', await solid(COLOURS.tiff).tiff().toBuffer()),
    avif: await put(
      'photo.avif',
      await asFormat(solid(COLOURS.avif).avif({ quality: 90 }).toBuffer(), 'heif'),
    ),
  };
}

function solid([r, g, b]: Rgb, width = 64, height = 64) {
  return sharp({ create: { width, height, channels: 3, background: { r, g, b } } });
}

function noise(width: number, height: number) {
  return sharp({
    create: {
      width,
      height,
      channels: 3,
      background: '#000',
      noise: { type: 'gaussian', mean: 128, sigma: 60 },
    },
  });
}

async function asFormat(bytes: Promise<Buffer>, format: string): Promise<Buffer> {
  const buffer = await bytes;
  const { format: actual } = await sharp(buffer).metadata();
  if (actual !== format) throw new Error(`fixture came out as ${actual}, not ${format}`);
  return buffer;
}

async function cmykJpeg(): Promise<Buffer> {
  const bytes = await solid(COLOURS.cmyk).toColourspace('cmyk').jpeg({ quality: 95 }).toBuffer();
  const { space, channels } = await sharp(bytes).metadata();
  if (space !== 'cmyk' || channels !== 4)
    throw new Error(`CMYK fixture is ${space} with ${channels} channels`);
  return bytes;
}

async function png16(): Promise<Buffer> {
  const bytes = await solid(COLOURS.png16).toColourspace('rgb16').png().toBuffer();
  const { depth, bitsPerSample } = await sharp(bytes).metadata();
  if (depth !== 'ushort' || bitsPerSample !== 16)
    throw new Error(`16-bit PNG fixture is ${depth}/${bitsPerSample}`);
  return bytes;
}

async function grayJpeg(): Promise<Buffer> {
  // A horizontal ramp, so R=G=B is checked on many grey levels, not one.
  const width = 256;
  const ramp = new Uint8Array(width * 64);
  for (let i = 0; i < ramp.length; i++) ramp[i] = i % width;
  const bytes = await sharp(ramp, { raw: { width, height: 64, channels: 1 } })
    .toColourspace('b-w')
    .jpeg()
    .toBuffer();
  const { channels, space } = await sharp(bytes).metadata();
  if (channels !== 1) throw new Error(`grayscale JPEG fixture has ${channels} channels (${space})`);
  return bytes;
}

async function animatedGif(): Promise<Buffer> {
  // Frames stacked vertically with pageHeight make a multi-page image, which GIF saves as an animation.
  const side = 64;
  const frames = new Uint8Array(side * side * 2 * 3);
  for (let i = 0; i < side * side * 2; i++) {
    frames.set(i < side * side ? COLOURS.gifFirstFrame : COLOURS.gifSecondFrame, i * 3);
  }
  const bytes = await sharp(frames, { raw: { width: side, height: side * 2, channels: 3, pageHeight: side } })
    .gif({ delay: [100, 100] })
    .toBuffer();
  const { pages } = await sharp(bytes).metadata();
  if (pages !== 2) throw new Error(`animated GIF fixture has ${pages} pages`);
  return bytes;
}

async function alphaPng(): Promise<Buffer> {
  // Left half fully transparent with black colour values underneath: a decoder that drops alpha instead of
  // flattening shows black there, one that flattens shows white.
  const side = 64;
  const rgba = new Uint8Array(side * side * 4);
  for (let y = 0; y < side; y++) {
    for (let x = 0; x < side; x++) {
      if (x >= side / 2) rgba.set([...COLOURS.alphaOpaque, 255], (y * side + x) * 4);
    }
  }
  const bytes = await sharp(rgba, { raw: { width: side, height: side, channels: 4 } })
    .png()
    .toBuffer();
  if (!(await sharp(bytes).metadata()).hasAlpha) throw new Error('alpha PNG fixture has no alpha');
  return bytes;
}

async function exifRotatedJpeg(): Promise<Buffer> {
  const { width, height, marker } = EXIF_STORED;
  const markerPng = await solid(COLOURS.exifMarker, marker, marker).png().toBuffer();
  const bytes = await solid(COLOURS.exifBackground, width, height)
    .composite([{ input: markerPng, left: 0, top: 0 }])
    .withMetadata({ orientation: 6 })
    .jpeg({ quality: 95 })
    .toBuffer();
  const meta = await sharp(bytes).metadata();
  if (meta.orientation !== 6 || meta.width !== width) {
    throw new Error(`EXIF fixture has orientation ${meta.orientation}, width ${meta.width}`);
  }
  return bytes;
}

/**
 * A real PNG whose IHDR is rewritten to claim 30000 x 30000 (with a correct CRC, so it is a valid header):
 * the pixel limit must refuse it from the header, before 2.7 GB of pixels would be allocated.
 */
async function hugePng(): Promise<Buffer> {
  const bytes = Buffer.from(await solid([1, 2, 3], 16, 16).png().toBuffer());
  // Signature (8), IHDR length (4), then 'IHDR' at 12, width at 16, height at 20, CRC of type+data at 29.
  if (bytes.toString('latin1', 12, 16) !== 'IHDR') throw new Error('PNG does not start with IHDR');
  bytes.writeUInt32BE(HUGE_PNG_SIDE, 16);
  bytes.writeUInt32BE(HUGE_PNG_SIDE, 20);
  bytes.writeUInt32BE(crc32(bytes.subarray(12, 29)), 29);
  const meta = await sharp(bytes, { limitInputPixels: false }).metadata();
  if (meta.width !== HUGE_PNG_SIDE || meta.height !== HUGE_PNG_SIDE)
    throw new Error('crafted PNG header not read back');
  return bytes;
}

/**
 * The start of an HEIC file, an ISO-BMFF 'ftyp' box with HEVC brands and no image behind it: sharp's prebuilt
 * libvips cannot encode (nor decode) HEVC, so a real HEIC cannot be made here.
 */
function fakeHeic(): Buffer {
  const ftyp = Buffer.alloc(24);
  ftyp.writeUInt32BE(24, 0);
  ftyp.write('ftypheic', 4, 'latin1');
  ftyp.writeUInt32BE(0, 12);
  ftyp.write('mif1heic', 16, 'latin1');
  return Buffer.concat([ftyp, Buffer.alloc(256)]);
}

/** CRC-32 as PNG uses it; node:zlib has crc32 only from Node 20.15, and package.json admits 20.9. */
export function crc32(bytes: Uint8Array): number {
  let crc = 0xffffffff;
  for (const byte of bytes) {
    crc ^= byte;
    for (let bit = 0; bit < 8; bit++) crc = (crc >>> 1) ^ (0xedb88320 & -(crc & 1));
  }
  return (crc ^ 0xffffffff) >>> 0;
}
