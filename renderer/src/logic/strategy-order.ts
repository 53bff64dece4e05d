// The order strategies are shown in and their colours: one definition for the app and
// the exported reports (shared/chart-style.ts).
export { ADAPTER_SYMBOLS, orderStrategies, strategyColor } from '../../../shared/chart-style.js';
