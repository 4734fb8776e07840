/**
 * The prediction ledger's rows, as the Python runtime makes them (`ml_matching.contract.ledger`,
 * `LedgerRow`: camelCase, defaults omitted), marked `source: "node"`.
 *
 * A row says what was scored (`features`, in the serving version's feature order, the values the
 * model saw: float32 for an ONNX model), by which `version`, with which `probability` (0 to 1),
 * and, under an experiment, for which `arm` at what `weight`, the `unit` as its salted SHA-256 (never
 * the key itself) and the `hash` that assigned it. Under the long-lived holdout a keyed row also
 * names the `holdout`: a held unit's row has `arm: "holdout"` and no experiment, a live unit's
 * its experiment's fields, or `arm: "live"` outside one. The trainer keeps it beside the outcomes,
 * so an outcome sent later as `{predictionId, outcome}` joins the very score it judges.
 */

import {HASH_VERSION} from './assignment.js'

/**
 * @typedef {import('./contract.js').ShadowScore} ShadowScore
 *   A shadow version's score of the same row (`{version, probability}`), or why there is none
 *   (`{version, error}`).
 * @typedef {import('./contract.js').LedgerRow} LedgerRow
 *   One prediction as it was served (its type is generated from the repository's
 *   `schemas/predictions.request.schema.json`).
 *
 * @typedef {'experiments' | 'all' | 'off'} LedgerMode
 *   Which in-process predictions are recorded: those under an experiment or the holdout (the
 *   default), all, none.
 *
 * @typedef Route
 *   What serves one row, and the experiment's (or the holdout's) record of it: no `arm` outside
 *   both, no `experiment` outside an experiment.
 * @property {string} [experiment]
 * @property {number} [revision]
 * @property {string} [arm]
 * @property {number} [weight]
 * @property {string} [unit]
 * @property {boolean} [fallback]
 * @property {string} [error]
 *   Why the arm's own version did not serve (with `fallback`).
 * @property {string} [holdout]
 *   The holdout that placed the unit (its arm is then `holdout`, the experiment's, or `live`).
 */

/** The values `LEDGER` (and the client's `ledger` option) takes. */
export const LEDGER_MODES = /** @type {const} */ (['experiments', 'all', 'off'])

/**
 * One ledger row, its keys in the runtime's order.
 *
 * @param {string} predictionId
 * @param {string} at
 * @param {string} version
 * @param {number} probability
 * @param {Record<string, number>} features
 * @param {Route} route
 * @param {number} ms
 * @returns {LedgerRow}
 */
export function ledgerRow(predictionId, at, version, probability, features, route, ms) {
  if (route.arm === undefined) {
    return {predictionId, at, version, probability, features, ms, source: 'node'}
  }
  return {
    predictionId,
    at,
    version,
    probability,
    features,
    // A held or live unit outside any experiment: no experiment, so no revision either.
    ...(route.experiment === undefined
      ? {}
      : {experiment: route.experiment, revision: /** @type {number} */ (route.revision)}),
    arm: route.arm,
    weight: /** @type {number} */ (route.weight),
    unit: /** @type {string} */ (route.unit),
    hash: HASH_VERSION,
    ...(route.fallback ? {fallback: /** @type {const} */ (true)} : {}),
    ...(route.error === undefined ? {} : {error: route.error}),
    ms,
    source: 'node',
    ...(route.holdout === undefined ? {} : {holdout: route.holdout})
  }
}

/**
 * The row with its shadow scores (before `source` and `holdout`, where the runtime has them).
 *
 * @param {LedgerRow} row
 * @param {Array<ShadowScore>} shadow
 * @returns {LedgerRow}
 */
export function withShadow(row, shadow) {
  const {source = 'node', holdout, ...rest} = row
  return {...rest, shadow, source, ...(holdout == null ? {} : {holdout})}
}

/**
 * A row's values by feature name (what `features` holds).
 *
 * @param {ReadonlyArray<string>} names
 * @param {ArrayLike<number>} x
 *   Row-major values.
 * @param {number} offset
 */
export function featuresOf(names, x, offset) {
  /** @type {Record<string, number>} */
  const features = {}
  for (let i = 0; i < names.length; i++) features[names[i]] = x[offset + i]
  return features
}
