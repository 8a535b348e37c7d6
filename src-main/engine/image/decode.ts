import sharp, { type Metadata, type OutputInfo, type SharpOptions } from 'sharp';
import { ArgumentError, ImageError } from '../errors.ts';
import { readPhotoFile } from './read.ts';

/** The CNN's input side: MobileNetV2 1.0/224 takes 224x224 RGB. */
export const CNN_SIZE = 224;

/**
 * sharp's own default, 16383 x 16383 (the largest WebP). It admits every camera photo in use,
 * 200 MP phone sensors included (16320 x 12240 = 199.8 MP); larger inputs are mostly stitched
 * panoramas or decompression bombs, and a caller that wants panoramas can pass a higher maxPixels.
 */
export const DEFAULT_MAX_PIXELS = 16383 * 16383;

export interface DecodeOptions {
  /** Refuse images whose header claims more pixels than this (width x height), before decoding. */
  maxPixels?: number;
}

export interface DecodedImage {
  /** The path (or, for buffers, the name) that errors name. */
  file: string;
  /** CNN_SIZE x CNN_SIZE x 3 bytes: sRGB, uint8, row-major HWC. */
  pixels: Uint8Array;
  /** Size of the original once its EXIF orientation is applied. */
  width: number;
  height: number;
  /** jpeg, png, webp, tiff, gif, avif or heic. */
  format: string;
}

/** The formats a photo library holds; anything else libvips could open (SVG, PDF, FITS...) is refused. */
const PHOTO_FORMATS = new Set(['jpeg', 'png', 'webp', 'tiff', 'gif', 'heif']);
const SUPPORTED_LIST = 'JPEG, PNG, WebP, TIFF, GIF, AVIF or HEIC';

/**
 * Resize kernel, chosen by measurement (mean absolute difference per byte, 0-255 scale, mean / max over photos):
 *
 *   kernel     10 reference photos vs TFLite input.u8   125 Flickr8k originals vs stored 224 copies (q90)
 *   nearest    4.56 / 6.89                              8.53 / 21.51
 *   linear     0.22 / 0.37                              4.31 /  7.81
 *   mitchell   0.44 / 0.62                              4.32 /  7.88
 *   cubic      1.25 / 1.83                              4.36 /  8.06
 *   lanczos3   1.87 / 2.74                              4.80 /  9.18
 *   (all with embedded ICC profiles ignored; honouring them, linear gives 0.77 / 5.64 and 4.50 / 12.57)
 *
 * 'linear' is closest on both. The Flickr8k floor is high because the copies were re-encoded at JPEG q90
 * 4:2:0: re-encoding our own decode that way alone costs 3.14 / 5.75. A JS area-average gets 4.04 / 7.34 there,
 * so the copies were probably made with a box filter, a skew the CNN's reference pipeline doesn't share.
 * fastShrinkOnLoad on or off gave identical numbers (every photo here is <= 640 px, too small to shrink on
 * load); on a 12 MP JPEG it is 34 ms vs 50 ms per decode for a 0.26 difference, so it stays on (sharp's default).
 */
const KERNEL = 'linear';

export async function decodeForCnn(file: string, options?: DecodeOptions): Promise<DecodedImage> {
  return decodeBufferForCnn(await readPhotoFile(file), file, options);
}

export async function decodeBufferForCnn(
  buffer: Uint8Array,
  name: string,
  options?: DecodeOptions,
): Promise<DecodedImage> {
  const maxPixels = options?.maxPixels ?? DEFAULT_MAX_PIXELS;
  if (!Number.isSafeInteger(maxPixels) || maxPixels < 1) {
    throw new ArgumentError('maxPixels', `must be a positive integer, got ${maxPixels}`);
  }
  if (buffer.length === 0) {
    throw new ImageError(
      'empty-file',
      name,
      'the file is empty (0 bytes); it may be an unfinished download or copy',
    );
  }
  const heic = isHeic(buffer);
  if (heic && !heicDecodable()) throw heicUnavailable(name);

  const input = {
    limitInputPixels: maxPixels,
    // GIF and WebP animations: the first frame is the photo; multi-page TIFF: the first page.
    pages: 1,
    // 'error' refuses truncated files and hard decode errors (with 'none' a truncated JPEG comes out grey
    // below the cut). Damage that libjpeg only warns about (a corrupt stretch of scan data) decodes the way
    // viewers show it, and the photo stays findable by what survives; 'warning' would drop it from the index.
    // Measured on a 600x400 JPEG: cut in half fails at 'truncated' and up; 200 scrambled scan bytes fail only
    // at 'warning'.
    failOn: 'error',
    autoOrient: true,
    // Both the TFLite reference inputs and the Flickr8k copies were made from the stored values, without
    // colour management (as TensorFlow's and PIL's decoders do); honouring embedded ICC profiles moved our
    // decode away from them by up to 5.6 and 12.6 per byte (see KERNEL). CMYK still becomes RGB, through
    // libvips' built-in CMYK profile.
    ignoreIcc: true,
  } satisfies SharpOptions;

  let metadata: Metadata;
  try {
    // Header only, so no limit here: the check below can then say how many pixels the image has.
    metadata = await sharp(buffer, { ...input, limitInputPixels: false }).metadata();
  } catch (error) {
    throw decodeError(name, error, maxPixels, heic);
  }
  if (!PHOTO_FORMATS.has(metadata.format)) {
    throw new ImageError(
      'unsupported-format',
      name,
      `${metadata.format.toUpperCase()} is not a photo format Sagasu reads; it reads ${SUPPORTED_LIST}`,
    );
  }
  // The header is enough to refuse a bomb, with numbers a person can check, before anything is decoded.
  const pixelCount = metadata.width * metadata.height;
  if (pixelCount > maxPixels) throw tooManyPixels(name, maxPixels, metadata.width, metadata.height);

  let raw: { data: Buffer; info: OutputInfo };
  try {
    raw = await sharp(buffer, input)
      .resize(CNN_SIZE, CNN_SIZE, { fit: 'fill', kernel: KERNEL })
      .flatten({ background: '#ffffff' })
      .toColourspace('srgb')
      .removeAlpha()
      .raw({ depth: 'uchar' })
      .toBuffer({ resolveWithObject: true });
  } catch (error) {
    throw decodeError(name, error, maxPixels, heic);
  }
  const { data, info } = raw;
  if (
    info.width !== CNN_SIZE ||
    info.height !== CNN_SIZE ||
    info.channels !== 3 ||
    data.length !== CNN_SIZE * CNN_SIZE * 3
  ) {
    throw new Error(
      `${name}: decode produced ${info.width}x${info.height}x${info.channels}, expected ${CNN_SIZE}x${CNN_SIZE}x3`,
    );
  }
  return {
    file: name,
    pixels: new Uint8Array(data.buffer, data.byteOffset, data.length),
    width: metadata.autoOrient.width,
    height: metadata.autoOrient.height,
    format: formatName(metadata),
  };
}

function formatName(metadata: Metadata): string {
  if (metadata.format !== 'heif') return metadata.format;
  return metadata.compression === 'av1' ? 'avif' : 'heic';
}

function decodeError(name: string, error: unknown, maxPixels: number, heic: boolean): ImageError {
  const message = error instanceof Error ? error.message : String(error);
  // A system libheif can know the HEIC container yet lack an HEVC decoder plugin.
  if (heic && /plugin|unsupported (codec|feature)|unsupported image format/i.test(message)) {
    return heicUnavailable(name, error);
  }
  if (/unsupported image format/i.test(message)) {
    return new ImageError(
      'unsupported-format',
      name,
      `not an image Sagasu can read: the content is not ${SUPPORTED_LIST} (whatever the file name's extension says)`,
      { cause: error },
    );
  }
  if (/pixel limit/i.test(message)) return tooManyPixels(name, maxPixels, undefined, undefined, error);
  // libvips reports one line per retry; the last names the actual fault.
  const detail = message.split('\n').filter(Boolean).at(-1)?.trim() ?? message;
  return new ImageError(
    'corrupt',
    name,
    `the image data is damaged or incomplete (decoder: ${detail}); copy or export the photo again`,
    { cause: error },
  );
}

function tooManyPixels(
  name: string,
  maxPixels: number,
  width: number | undefined,
  height: number | undefined,
  cause?: unknown,
): ImageError {
  const size =
    width !== undefined && height !== undefined
      ? `${width} x ${height} = ${(width * height).toLocaleString('en-US')} pixels`
      : 'the image';
  return new ImageError(
    'too-many-pixels',
    name,
    `${size} exceeds the limit of ${maxPixels.toLocaleString('en-US')} pixels; pass a larger maxPixels to decode it`,
    cause === undefined ? undefined : { cause },
  );
}

/** HEVC-coded HEIF brands; AVIF files carry 'avif'/'avis' and are decodable. */
const HEIC_BRANDS = new Set(['heic', 'heix', 'heim', 'heis', 'hevc', 'hevx', 'hevm', 'hevs']);

/** Reads the ISO-BMFF 'ftyp' box: its major and compatible brands say HEIC vs AVIF before any decoder runs. */
function isHeic(buffer: Uint8Array): boolean {
  if (buffer.length < 16) return false;
  const ascii = (at: number) => String.fromCharCode(...buffer.subarray(at, at + 4));
  if (ascii(4) !== 'ftyp') return false;
  const view = new DataView(buffer.buffer, buffer.byteOffset, buffer.byteLength);
  const boxEnd = Math.min(view.getUint32(0), buffer.length);
  const brands = [ascii(8)];
  for (let at = 16; at + 4 <= boxEnd; at += 4) brands.push(ascii(at));
  if (brands.includes('avif') || brands.includes('avis')) return false;
  return brands.some((brand) => HEIC_BRANDS.has(brand));
}

function heicUnavailable(name: string, cause?: unknown): ImageError {
  return new ImageError(
    'unsupported-format',
    name,
    "HEIC decoding isn't available in this build: its libvips/libheif decodes AVIF but not HEVC-coded HEIC; " +
      'convert the photo to JPEG, or install sharp against a system libvips whose libheif has an HEVC decoder',
    cause === undefined ? undefined : { cause },
  );
}

/**
 * sharp's prebuilt libvips ships libheif with an AV1 decoder only (HEVC is patent-encumbered), and its heifload
 * lists just '.avif' as a suffix (seen in sharp 0.35.5); upstream libvips lists '.heic' too. A system libvips
 * that lists '.heic' but lacks the decoder plugin is caught from the error in decodeError.
 */
function heicDecodable(): boolean {
  const suffixes = (sharp.format.heif?.input as { fileSuffix?: string[] } | undefined)?.fileSuffix ?? [];
  return suffixes.includes('.heic');
}
