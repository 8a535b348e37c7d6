import { type Answer, type Method, methods, toApiError } from '../contract/index.ts';
import type { EngineHost } from '../engine/api/index.ts';

/**
 * One call as a door receives it, a method name and an input from outside, answered as data (errors do not
 * survive IPC as thrown objects, nor HTTP). The input goes to the engine as it came: Engine.invoke validates
 * it against the contract, once, and its refusal names the field.
 */
export async function callMethod(
  engine: Pick<EngineHost, 'invoke'>,
  method: unknown,
  input: unknown,
): Promise<Answer> {
  if (typeof method !== 'string' || !Object.hasOwn(methods, method)) {
    return {
      ok: false,
      error: {
        code: 'unknown-method',
        subject: 'method',
        message: `there is no method ${JSON.stringify(method)}`,
      },
    };
  }
  try {
    return { ok: true, result: await engine.invoke(method as Method, input as never) };
  } catch (error) {
    return { ok: false, error: toApiError(error) };
  }
}
