/**
 * Child-process half of the permission test: root reads a mode-000 file regardless, so the test runs this
 * script as root without the capabilities that override file permissions, and reads back what
 * decodeForCnn did as one JSON line on stdout.
 * Usage: node --import <tsx loader URL> decode-in-child.ts <file>
 */
import { ImageError } from '../../src-main/engine/errors.ts';
import { decodeForCnn } from '../../src-main/engine/image/index.ts';

const file = process.argv[2];
if (!file) throw new Error('usage: decode-in-child.ts <file>');
try {
  const decoded = await decodeForCnn(file);
  console.log(JSON.stringify({ ok: true, bytes: decoded.pixels.length }));
} catch (error) {
  if (!(error instanceof ImageError)) throw error;
  console.log(JSON.stringify({ code: error.code, subject: error.subject, message: error.message }));
}
