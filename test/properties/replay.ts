/**
 * fc.assert with a fixed seed, so every run is the same unless asked otherwise: FC_SEED=<seed>
 * and FC_PATH=<path> replay a failure (both are printed), FC_RUNS changes the number of runs,
 * FC_NO_SHRINK=1 reports the first failure without shrinking it.
 */
import fc from 'fast-check';

export async function assertProperty<T>(property: fc.IAsyncProperty<T>, numRuns: number, defaultSeed: number): Promise<void> {
  const seed = process.env.FC_SEED ? Number(process.env.FC_SEED) : defaultSeed;
  try {
    await fc.assert(property, {
      seed,
      path: process.env.FC_PATH || undefined,
      numRuns: process.env.FC_RUNS ? Number(process.env.FC_RUNS) : numRuns,
      endOnFailure: process.env.FC_NO_SHRINK === '1',
    });
  } catch (error) {
    console.error(`property failed; replay with FC_SEED=${seed} and FC_PATH=<the "path" in the message>`);
    throw error;
  }
}
