import { resolve } from 'node:path';
import type { Status } from '../../contract/index.ts';
import type { CnnBackbone } from '../cnn/index.ts';
import { FneExtractor } from '../fne/index.ts';
import { JointModel, type ModelSet } from '../joint/index.ts';
import type { Catalog } from './catalog.ts';

/** What status shows of the model sets (the contract's Status.modelSets). */
export type ModelSetStatus = Status['modelSets'];

/**
 * Which model set serves search, which one the person chose (its vectors made beside the served ones until
 * the swap), and their models, opened once and closed with the library.
 */
export class ModelChoice {
  /** The set the person chose, while its vectors are being made beside the active set's; null when none is. */
  target: ModelSet | null = null;
  /** Called with the chosen set's models before the swap (see Library.onSwitch). */
  switched: ((model: JointModel, extractor: FneExtractor) => Promise<() => void>) | undefined;
  /** Open models by set version and extractors by backbone; the ones opened here are closed with the library. */
  private readonly models = new Map<string, Promise<JointModel>>();
  private readonly extractors = new Map<CnnBackbone, Promise<FneExtractor>>();
  private readonly owned: Array<Promise<{ close(): Promise<void> }>> = [];

  constructor(
    private readonly catalog: Catalog,
    readonly sets: readonly ModelSet[],
    /** The model set whose vectors and classes serve search. */
    public active: ModelSet,
    given: { model?: JointModel; extractor?: FneExtractor },
  ) {
    const model = given.model;
    const set = model && sets.find((s) => resolve(s.jointDir) === resolve(model.dir));
    if (model && set) this.models.set(set.version, Promise.resolve(model));
    if (given.extractor) this.extractors.set(given.extractor.backbone, Promise.resolve(given.extractor));
  }

  /** Moves toward this set: its rows are kept beside the served set's, every other set's dropped. */
  choose(target: ModelSet): void {
    this.target = target.version === this.active.version ? null : target;
    const kept = this.target ? [this.active.version, this.target.version] : [this.active.version];
    this.catalog.transaction(() => {
      this.catalog.setMeta('vectors', this.active.version);
      this.catalog.keepModels(kept);
      this.catalog.requeueOtherModels(this.active.version);
    });
  }

  status(): ModelSetStatus {
    return modelSetStatus(this.catalog, this.sets, this.active, this.target ?? this.active);
  }

  extractor(backbone = this.active.backbone): Promise<FneExtractor> {
    let extractor = this.extractors.get(backbone);
    if (!extractor) {
      extractor = FneExtractor.open({ backbone });
      this.extractors.set(backbone, extractor);
      this.owned.push(extractor);
      // A failed open is not kept: the next run tries again.
      extractor.catch(() => this.extractors.delete(backbone));
    }
    return extractor;
  }

  model(set = this.active): Promise<JointModel> {
    let model = this.models.get(set.version);
    if (!model) {
      model = JointModel.open(set.jointDir);
      this.models.set(set.version, model);
      this.owned.push(model);
      model.catch(() => this.models.delete(set.version));
    }
    return model;
  }

  /** The models of a set swapped out are closed only here: a call that began before the swap may still use them. */
  async close(): Promise<void> {
    const owned = await Promise.allSettled(this.owned);
    await Promise.all(owned.flatMap((r) => (r.status === 'fulfilled' ? [r.value.close()] : [])));
  }
}

export function modelSetStatus(
  catalog: Catalog | null,
  sets: readonly ModelSet[],
  active: ModelSet,
  chosen: ModelSet,
): ModelSetStatus {
  const indexed = (set: ModelSet) => catalog?.counts(set.version).indexed ?? 0;
  return {
    active: active.name,
    chosen: chosen.name,
    pending: chosen === active ? 0 : indexed(active) - indexed(chosen),
    available: sets.map((s) => ({
      name: s.name,
      backbone: s.backbone,
      languages: s.jaDir ? ['en', 'ja'] : ['en'],
    })),
  };
}
