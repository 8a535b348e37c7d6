import { readFile } from 'node:fs/promises';
import { ModelError } from '../errors.ts';

/** The model's 1001 outputs: ImageNet's 1000 classes after a "background" class at index 0. */
const IMAGENET_CLASS_COUNT = 1001;

/**
 * Short class names from imagenet_labels.txt ("tench, Tinca tinca" -> "tench"). Deriving them from the file
 * the engine already downloads and verifies spares a second, unpinned label download; the result equals
 * TensorFlow's labels_mobilenet_quant_v1_224.txt line for line.
 */
export function parseImagenetLabels(text: string, file: string): string[] {
  const body = text.startsWith('\uFEFF') ? text.slice(1) : text;
  const lines = body.split(/\r?\n/);
  if (lines.length > 0 && lines[lines.length - 1] === '') lines.pop();
  if (lines.length !== IMAGENET_CLASS_COUNT) {
    throw new ModelError(
      'invalid-model',
      file,
      `is not an ImageNet label file for this model: it has ${lines.length} lines, expected ${IMAGENET_CLASS_COUNT} ` +
        `("background" and then the 1000 ImageNet classes, one per line)`,
    );
  }
  const names = lines.map((line) => (line.split(',')[0] ?? '').trim());
  // A shifted file would mislabel every class without any other symptom, so check the anchor and the gaps.
  if (names[0] !== 'background') {
    throw new ModelError('invalid-model', file, `line 1 is "${names[0]}", expected "background"`);
  }
  const empty = names.indexOf('');
  if (empty !== -1) {
    throw new ModelError('invalid-model', file, `line ${empty + 1} has no class name`);
  }
  return names;
}

export async function loadLabels(path: string): Promise<string[]> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    throw new ModelError(
      code === 'ENOENT' ? 'missing' : 'invalid-model',
      path,
      `cannot read the label file: ${(err as Error).message}`,
      { cause: err },
    );
  }
  return parseImagenetLabels(text, path);
}

/** ImageNet's classes, in ../shared/models/imagenet_synsets.txt order: what class index i means everywhere. */
export const IMAGENET_CLASSES = 1000;

/**
 * The one place a CNN's classifier outputs become class probabilities 0..999: MobileNetV2 puts a
 * "background" output first (class i = output i + 1), a 1000-way backbone (ResNet-50) does not. Anything
 * else is a model this engine cannot label.
 */
export function imagenetClassProbs(outputs: Float32Array): Float32Array {
  if (outputs.length === IMAGENET_CLASSES) return outputs;
  if (outputs.length === IMAGENET_CLASS_COUNT) return outputs.subarray(1);
  throw new ModelError(
    'invalid-model',
    'probs',
    `the classifier has ${outputs.length} outputs; expected ${IMAGENET_CLASSES} ImageNet classes, or ${IMAGENET_CLASS_COUNT} with background first`,
  );
}
