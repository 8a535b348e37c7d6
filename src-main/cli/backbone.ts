import { InvalidArgumentError } from 'commander';
import { CNN_BACKBONES, type CnnBackbone } from '../engine/cnn/index.ts';

/** The parser of a --backbone option (data:prepare, stats:compute): one of CNN_BACKBONES. */
export function backboneArg(value: string): CnnBackbone {
  if (!(CNN_BACKBONES as readonly string[]).includes(value))
    throw new InvalidArgumentError(`expected ${CNN_BACKBONES.join(' or ')}`);
  return value as CnnBackbone;
}
