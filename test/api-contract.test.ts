import { describe, expect, it } from 'vitest';
import { FILE_TYPES, parseInput, photoMime, photoType } from '../src-main/contract/index.ts';
import { ArgumentError, ERROR_CODES, exitCode, httpStatus } from '../src-main/engine/errors.ts';

describe('contract: dates', () => {
  const search = (filters: Record<string, unknown>) => parseInput('search', { query: 'a dog', filters });

  it('takes real calendar days, leap days included', () => {
    expect(search({ from: '2024-02-29', to: '2024-12-31' }).filters).toEqual({
      from: '2024-02-29',
      to: '2024-12-31',
    });
  });

  it.each([
    ['from', '2024-02-31'],
    ['from', '2023-02-29'],
    ['to', '2024-04-31'],
    ['to', '2024-13-01'],
    ['from', '2024-00-10'],
    ['to', '2024-01-00'],
  ])('refuses an impossible %s date %s with an ArgumentError naming the argument', (field, value) => {
    const call = () => search({ [field]: value });
    expect(call).toThrow(ArgumentError);
    expect(call).toThrow(`search.filters.${field}: ${value} is not a day of the calendar`);
  });

  it('still refuses what is not YYYY-MM-DD', () => {
    expect(() => search({ from: '31/02/2024' })).toThrow(
      'search.filters.from: expected a date as YYYY-MM-DD',
    );
  });
});

describe('contract: error codes', () => {
  it('every code has an HTTP status (4xx or 5xx) and a CLI exit code', () => {
    expect(ERROR_CODES).toContain('model-switched');
    for (const code of ERROR_CODES) {
      expect(httpStatus(code), code).toBeGreaterThanOrEqual(400);
      expect(httpStatus(code), code).toBeLessThan(600);
      expect(exitCode(code), code).toBe(1);
    }
  });
});

describe('contract: photo files', () => {
  it('knows every photo extension with its type and MIME type, .jpe and .heif too', () => {
    expect(photoMime('/photos/scan.jpe')).toBe('image/jpeg');
    expect(photoMime('C:\\photos\\IMG_0001.HEIF')).toBe('image/heif');
    expect(photoMime('/photos/IMG_0002.heic')).toBe('image/heic');
    expect(photoType('/photos/scan.JPE')).toBe('jpeg');
    expect(photoType('/photos/IMG_0001.heif')).toBe('heic');
    for (const name of ['/photos/notes.txt', '/photos/.jpg', '/photos.jpg/readme', 'jpg']) {
      expect(photoType(name), name).toBeNull();
      expect(photoMime(name), name).toBeNull();
    }
    const extensions = ['.jpg', '.jpeg', '.png', '.webp', '.tif', '.tiff', '.gif', '.avif', '.heic'];
    for (const extension of extensions) expect(photoMime(`a${extension}`)).toMatch(/^image\//);
    expect(new Set(extensions.map((extension) => photoType(`a${extension}`)))).toEqual(new Set(FILE_TYPES));
  });
});
