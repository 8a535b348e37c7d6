/**
 * The export room: a library's captions and tags leaving the app, as XMP sidecars beside the photos (through
 * ExifTool) and as CSV or JSON rows.
 */
export { type ExportFormat, type ExportRow, exportRows } from './rows.ts';
export {
  readXmpSidecar,
  sidecarPath,
  writeXmpSidecar,
  type XmpContent,
  XmpError,
  type XmpErrorCode,
  type XmpNaming,
  type XmpSidecar,
  type XmpWriteOptions,
  XmpWriter,
} from './xmp.ts';
