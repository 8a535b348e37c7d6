import { mkdir, mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { SagasuError } from '../src-main/engine/errors.ts';
import { detectLang, loadEvalDataset } from '../src-main/engine/eval/index.ts';

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'sagasu-eval-data-'));
});

async function write(name: string, text: string): Promise<string> {
  const file = join(dir, name);
  await mkdir(join(file, '..'), { recursive: true });
  await writeFile(file, text);
  return file;
}

/** The SagasuError a promise rejects with (subject and message), or a failure when it resolves. */
async function refusal(
  promise: Promise<unknown>,
): Promise<{ subject: string; message: string; code: string }> {
  try {
    await promise;
  } catch (error) {
    expect(error).toBeInstanceOf(SagasuError);
    const e = error as SagasuError;
    return { subject: e.subject, message: e.message, code: e.code };
  }
  throw new Error('expected a refusal');
}

describe('CSV and TSV data sets', () => {
  it('reads one row per caption, paths relative to the file, other columns ignored, images in first-seen order', async () => {
    const file = await write(
      'shop/captions.csv',
      [
        'id,image,caption,photographer',
        '1,img/b.jpg,"a red bag, leather",ann',
        '2,img/a.jpg,a blue cup,bob',
        '3,img/b.jpg,"a bag with ""gold"" buckles",ann',
        '',
        '4,../other/c.png,a lamp,carl',
      ].join('\n'),
    );
    const data = await loadEvalDataset(file);
    expect(data.format).toBe('csv');
    expect(data.images).toEqual([
      join(dir, 'shop/img/b.jpg'),
      join(dir, 'shop/img/a.jpg'),
      join(dir, 'other/c.png'),
    ]);
    expect(data.captions.map((c) => [c.text, c.image, c.where])).toEqual([
      ['a red bag, leather', 0, `${file}:2`],
      ['a blue cup', 1, `${file}:3`],
      ['a bag with "gold" buckles', 0, `${file}:4`],
      ['a lamp', 2, `${file}:6`],
    ]);
  });

  it('reads a TSV whose captions hold quote marks without quoting, header in any case, BOM first', async () => {
    const file = await write('t/list.tsv', '\uFEFFCaption\tImage\nthe "best" dog\tdog.jpg\na cat\tcat.jpg\n');
    const data = await loadEvalDataset(file);
    expect(data.format).toBe('tsv');
    expect(data.captions.map((c) => c.text)).toEqual(['the "best" dog', 'a cat']);
    expect(data.images).toEqual([join(dir, 't/dog.jpg'), join(dir, 't/cat.jpg')]);
  });

  it('keeps an empty caption (the run reports it) but refuses a row without an image, naming the line', async () => {
    const file = await write('e.csv', 'image,caption\na.jpg,\n,no image here\n');
    const r = await refusal(loadEvalDataset(file));
    expect(r.subject).toBe(`${file}:3`);
    expect(r.message).toContain('image column is empty');
    const ok = await write('e2.csv', 'image,caption\na.jpg,\n');
    expect((await loadEvalDataset(ok)).captions).toEqual([{ text: '', image: 0, where: `${ok}:2` }]);
  });

  it('names the missing column of the header', async () => {
    const file = await write('h.csv', 'picture,caption\na.jpg,x\n');
    const r = await refusal(loadEvalDataset(file));
    expect(r.subject).toBe(`${file}:1`);
    expect(r.message).toContain('"image" column');
  });

  it('names the line of a row with the wrong number of fields and of an unclosed quote', async () => {
    const file = await write('n.csv', 'image,caption\na.jpg,one\nb.jpg,two,three\n');
    expect((await refusal(loadEvalDataset(file))).subject).toBe(`${file}:3`);
    const quote = await write('q.csv', 'image,caption\na.jpg,one\nb.jpg,"two\n');
    expect((await refusal(loadEvalDataset(quote))).subject).toMatch(new RegExp(`^${quote}:\\d+$`));
  });

  it('refuses a header with no rows and an empty file', async () => {
    expect((await refusal(loadEvalDataset(await write('only.csv', 'image,caption\n')))).message).toContain(
      'no caption rows',
    );
    expect((await refusal(loadEvalDataset(await write('empty.csv', '')))).message).toContain('is empty');
  });
});

describe('COCO captions JSON', () => {
  const coco = {
    info: { description: 'ignored' },
    images: [
      { id: 7, file_name: 'x/seven.jpg', width: 1 },
      { id: 3, file_name: 'three.jpg' },
    ],
    annotations: [
      { id: 1, image_id: 3, caption: 'a tree' },
      { id: 2, image_id: 7, caption: 'a boat' },
      { id: 3, image_id: 3, caption: 'a tall tree' },
    ],
  };

  it('reads images in file order and captions in annotation order, images under --images', async () => {
    const file = await write('captions_val.json', JSON.stringify(coco, null, 2));
    const data = await loadEvalDataset(file, { images: join(dir, 'coco-images') });
    expect(data.format).toBe('coco');
    expect(data.images).toEqual([join(dir, 'coco-images/x/seven.jpg'), join(dir, 'coco-images/three.jpg')]);
    expect(data.captions.map((c) => [c.text, c.image])).toEqual([
      ['a tree', 1],
      ['a boat', 0],
      ['a tall tree', 1],
    ]);
    // Each caption names the line it sits on.
    const lines = JSON.stringify(coco, null, 2).split('\n');
    for (const c of data.captions) {
      const line = Number(c.where.split(':').at(-1));
      expect(lines[line - 1]).toContain(JSON.stringify(c.text));
    }
  });

  it('needs --images', async () => {
    const file = await write('captions_a.json', JSON.stringify(coco));
    const r = await refusal(loadEvalDataset(file));
    expect(r.subject).toBe('--images');
  });

  it('names the file and line of a caption whose image is not listed, of a wrong field and of bad JSON', async () => {
    const bad = structuredClone(coco);
    (bad.annotations[2] as { image_id: number }).image_id = 99;
    const text = JSON.stringify(bad, null, 2);
    const file = await write('captions_b.json', text);
    const r = await refusal(loadEvalDataset(file, { images: dir }));
    const line = text.split('\n').findIndex((l) => l.includes('"a tall tree"')) + 1;
    expect(r.subject).toBe(`${file}:${line}`);
    expect(r.message).toContain('image_id 99');

    const wrong = structuredClone(coco) as unknown as { annotations: Array<{ caption: unknown }> };
    (wrong.annotations[1] as { caption: unknown }).caption = 5;
    const wrongText = JSON.stringify(wrong, null, 2);
    const wrongFile = await write('captions_c.json', wrongText);
    const w = await refusal(loadEvalDataset(wrongFile, { images: dir }));
    expect(w.subject).toBe(
      `${wrongFile}:${wrongText.split('\n').findIndex((l) => l.includes('"caption": 5')) + 1}`,
    );
    expect(w.message).toContain('annotations[1].caption');

    const syntax = await write('captions_d.json', '{\n  "images": [\n    {"id": 1,,}\n  ]\n}\n');
    expect((await refusal(loadEvalDataset(syntax, { images: dir }))).subject).toBe(`${syntax}:3`);
  });
});

describe('Flickr8k-style folders', () => {
  let root: string;
  beforeAll(async () => {
    root = join(dir, 'flickr');
    await write(
      'flickr/Flickr8k.token.txt',
      [
        'b_1.jpg#0\tA dog .',
        'a_2.jpg#0\tA cat .',
        'c_3.jpg#0\tA bird .',
        'b_1.jpg#1\tA brown dog .',
        '2258277193_586949ec62.jpg.1#0\tthe bogus id .',
      ].join('\n'),
    );
    await write(
      'flickr/Flickr8k.token.ja.txt',
      ['[b_1.jpg#0]\t犬。', '[a_2.jpg#0]\t猫。', '[2258277193_586949ec62.jpg.1#0]\t偽物。'].join('\n'),
    );
    await write('flickr/Flickr_8k.testImages.txt', 'b_1.jpg\na_2.jpg\n');
    await write('flickr/Flickr_8k.devImages.txt', 'c_3.jpg\n');
    await write('flickr/Flickr_8k.trainImages.txt', '');
  });

  it('reads the split in file-name order with its captions in token-file order', async () => {
    const data = await loadEvalDataset(root);
    expect(data).toMatchObject({ format: 'flickr8k', split: 'test', lang: 'en' });
    expect(data.images).toEqual([join(root, 'images/a_2.jpg'), join(root, 'images/b_1.jpg')]);
    expect(data.captions.map((c) => [c.text, c.image, c.where])).toEqual([
      ['A dog .', 1, `${join(root, 'Flickr8k.token.txt')}:1`],
      ['A cat .', 0, `${join(root, 'Flickr8k.token.txt')}:2`],
      ['A brown dog .', 1, `${join(root, 'Flickr8k.token.txt')}:4`],
    ]);
    const val = await loadEvalDataset(root, { split: 'val' });
    expect(val.captions.map((c) => c.text)).toEqual(['A bird .']);
  });

  it('--lang ja reads Flickr8k.token.ja.txt with its bracketed keys', async () => {
    const data = await loadEvalDataset(root, { lang: 'ja' });
    expect(data.lang).toBe('ja');
    expect(data.captions.map((c) => [c.text, c.image])).toEqual([
      ['犬。', 1],
      ['猫。', 0],
    ]);
  });

  it('names the file and line of a malformed key', async () => {
    const bad = join(dir, 'flickr-bad');
    await write('flickr-bad/Flickr8k.token.ja.txt', '[a.jpg#0]\tよし\nb.jpg#0\tだめ\n');
    await write('flickr-bad/Flickr_8k.testImages.txt', 'a.jpg\n');
    await write('flickr-bad/Flickr8k.token.txt', 'a.jpg#0\tok\nb.jpg#0 no tab here\n');
    const ja = await refusal(loadEvalDataset(bad, { lang: 'ja' }));
    expect(ja.subject).toBe(`${join(bad, 'Flickr8k.token.ja.txt')}:2`);
    const en = await refusal(loadEvalDataset(bad));
    expect(en.subject).toBe(`${join(bad, 'Flickr8k.token.txt')}:2`);
  });

  it('refuses a folder without a token file, and a path of an unknown kind', async () => {
    const empty = join(dir, 'nothing');
    await mkdir(empty, { recursive: true });
    expect((await refusal(loadEvalDataset(empty))).message).toContain('Flickr8k.token.txt');
    expect((await refusal(loadEvalDataset(await write('x.xlsx', 'x')))).subject).toBe('--dataset');
    expect((await refusal(loadEvalDataset(join(dir, 'absent.csv')))).code).toBe('missing-dataset');
  });
});

describe('a demo-library folder (attribution.json)', () => {
  it('reads one caption per photo, its `shows` line, photos in list order', async () => {
    const folder = join(dir, 'demo');
    const list = [
      { file: 'b.jpg', shows: 'a small lighthouse tower against a blue sky', license: 'CC0' },
      { file: 'a.jpg', shows: 'a koala sitting in a eucalyptus tree' },
    ];
    await write('demo/attribution.json', JSON.stringify(list, null, 2));
    const data = await loadEvalDataset(folder);
    expect(data.format).toBe('demo');
    expect(data.images).toEqual([join(folder, 'b.jpg'), join(folder, 'a.jpg')]);
    expect(data.captions.map((c) => [c.text, c.image])).toEqual([
      ['a small lighthouse tower against a blue sky', 0],
      ['a koala sitting in a eucalyptus tree', 1],
    ]);
    expect(data.captions[1]?.where).toBe(`${join(folder, 'attribution.json')}:8`);
  });

  it('names the file and line of an entry without `shows`, of a photo listed twice and of bad JSON', async () => {
    const folder = join(dir, 'demo-bad');
    const file = await write(
      'demo-bad/attribution.json',
      JSON.stringify([{ file: 'a.jpg', shows: 'x' }, { file: 'b.jpg' }], null, 2),
    );
    const missing = await refusal(loadEvalDataset(folder));
    expect(missing.subject).toBe(`${file}:7`);
    expect(missing.message).toMatch(/\[1\]\.shows/);
    await write(
      'demo-bad/attribution.json',
      JSON.stringify(
        [
          { file: 'a.jpg', shows: 'x' },
          { file: 'a.jpg', shows: 'y' },
        ],
        null,
        2,
      ),
    );
    const twice = await refusal(loadEvalDataset(folder));
    expect(twice.subject).toBe(`${file}:7`);
    expect(twice.message).toContain('a.jpg is listed twice');
    await write('demo-bad/attribution.json', '[{"file": "a.jpg",\n "shows": }]');
    const json = await refusal(loadEvalDataset(folder));
    expect(json.code).toBe('dataset-damaged');
    expect(json.subject.startsWith(file)).toBe(true);
    expect(json.message).toMatch(/not JSON/);
  });
});

describe('caption language by script', () => {
  it('is Japanese when most captions hold kana or kanji', () => {
    expect(detectLang(['犬が走る', 'a dog', '猫'])).toBe('ja');
    expect(detectLang(['a dog', 'a cat', '猫'])).toBe('en');
    expect(detectLang([])).toBe('en');
    // Captions with no letters have no script: they do not vote.
    expect(detectLang(['犬が走る', '...', '!!!', 'a dog', '猫'])).toBe('ja');
  });
});
