import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    testTimeout: 120_000,
    hookTimeout: 300_000,
    // The CNN tests each hold an onnxruntime session; two cores, so two workers at most.
    poolOptions: { forks: { maxForks: 2, minForks: 1 } },
    pool: 'forks',
    reporters: ['default', './test/helpers/summary-reporter.ts'],
  },
});
