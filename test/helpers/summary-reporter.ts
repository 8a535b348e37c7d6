import type { Reporter, RunnerTask, RunnerTestFile } from 'vitest';

/** Ends the run with the plain line "N passed, N failed, N skipped" that CI reads. */
export default class SummaryReporter implements Reporter {
  onFinished(files: RunnerTestFile[] = []): void {
    const count = { passed: 0, failed: 0, skipped: 0 };
    const walk = (task: RunnerTask) => {
      if (task.type === 'suite') {
        for (const child of task.tasks) walk(child);
        return;
      }
      if (task.result?.state === 'pass') count.passed++;
      else if (task.result?.state === 'fail') count.failed++;
      else count.skipped++;
    };
    for (const file of files) walk(file);
    console.log(`\n${count.passed} passed, ${count.failed} failed, ${count.skipped} skipped`);
  }
}
