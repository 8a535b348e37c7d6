/**
 * Named moments inside indexing where the crash test (test/library-crash.test.ts, through its child process)
 * stops the process and kills it: a kill then lands exactly there however busy the machine is, instead of
 * after a delay that a slow machine turns into another moment. Without a hook (everywhere but that test) a
 * point is one call that does nothing.
 *   walked       the roots were walked, nothing written yet
 *   reconciling  inside the walk's catalog transaction, before its commit
 *   embedded     a batch's vectors are committed to the catalog, not yet in the HNSW graph
 *   saving       the new index file is written beside the old one, not yet renamed over it
 *   saved        the new index file is in place, the catalog still describes the previous one
 *   switching    a batch of the chosen model set's vectors is committed beside the served set's
 *   swapping     inside the swap's transaction (the chosen set becomes the served one), before its commit
 */
export type HaltPoint = 'walked' | 'reconciling' | 'embedded' | 'saving' | 'saved' | 'switching' | 'swapping';

let hook: ((point: HaltPoint) => void) | undefined;

export function onHaltPoint(fn: ((point: HaltPoint) => void) | undefined): void {
  hook = fn;
}

export function haltPoint(point: HaltPoint): void {
  hook?.(point);
}
