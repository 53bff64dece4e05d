// Short definitions of the numbers a comparison shows, written once: the app's inline
// help and the exported reports use these texts, so a label means the same everywhere.

export type MetricTopic = 'relErr' | 'kl' | 'top1' | 'pplRatio' | 'pareto' | 'storeShare' | 'totalShare' | 'outsideSpan' | 'firstDivergence';

export interface MetricHelp {
  /** The label the number carries wherever it is shown. */
  label: string;
  /** One or two sentences for a person. */
  text: string;
}

export const METRIC_HELP: Record<MetricTopic, MetricHelp> = {
  relErr: {
    label: 'relative error',
    text: '‖X − X_exact‖ / ‖X_exact‖ of the rebuilt K or V against the adapter\'s own (exact) K or V, over the document\'s tokens and KV heads. 0 is identical; 1 is as far off as the values are large.',
  },
  kl: {
    label: 'mean KL (nats)',
    text: 'KL(p_exact ‖ p_strategy): how much the next-token distribution moves when the cache is rebuilt, in nats (natural log), teacher-forced on exact\'s continuation and averaged over its positions. 0 means the same distribution; 0.01 is barely visible; above 1 the model predicts differently.',
  },
  top1: {
    label: 'top-1 agreement',
    text: 'Share of the continuation positions where the strategy\'s most likely next token is exact\'s (teacher-forced). 100% means greedy decoding picks the same token at every step.',
  },
  pplRatio: {
    label: 'perplexity ratio',
    text: 'Perplexity of exact\'s continuation under the strategy divided by its perplexity under exact. 1 is the same; 2 means the strategy finds the text twice as surprising. Below 1 is a difference too.',
  },
  pareto: {
    label: 'Pareto',
    text: 'A point is on the Pareto front of its adapter when no other strategy of the same adapter stores fewer bytes and is at least as close to exact (lower KL, higher top-1, perplexity ratio nearer 1).',
  },
  storeShare: {
    label: 'store ÷ exact',
    text: 'What one adapter\'s store keeps, as a share of that adapter\'s exact K/V cache. The shared base cache is not in it: it is held once for all adapters.',
  },
  totalShare: {
    label: 'all adapters ÷ exact (base once)',
    text: 'Cache memory of serving every adapter of the run from this strategy (the shared base cache once plus each adapter\'s store) divided by what their exact caches take.',
  },
  outsideSpan: {
    label: 'outside span(B_v)',
    text: 'Share of the adapter\'s V difference that lies outside the span of B_v, which seed-minikv cannot represent: ‖(I − B Bᐩ) ΔV‖² / ‖ΔV‖² per layer.',
  },
  firstDivergence: {
    label: 'first divergence',
    text: 'Index of the first generated token that differs from exact\'s free-running generation (none: the same text).',
  },
};
