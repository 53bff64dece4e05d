/** A request that cannot run (bad input, too long, too big): raised before anything is allocated. */
export class CompareInputError extends Error {
  override readonly name = 'CompareInputError';
}
