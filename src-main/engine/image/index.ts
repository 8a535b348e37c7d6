/**
 * The image room: a photo file (or its bytes) in, the CNN's 224x224 RGB uint8 input out.
 * Every failure a photo can cause is an ImageError naming the file; anything else is a bug.
 */
export {
  CNN_SIZE,
  DEFAULT_MAX_PIXELS,
  type DecodedImage,
  type DecodeOptions,
  decodeBufferForCnn,
  decodeForCnn,
} from './decode.ts';
export { readPhotoFile } from './read.ts';
