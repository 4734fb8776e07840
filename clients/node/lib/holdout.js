/**
 * The long-lived holdout, as the Python runtime places units in it (`ml_matching.contract.holdout`):
 * a frozen version serves the units whose bucket, salted with the holdout's own salt, is below its
 * weight, for as long as the holdout lasts; those units never enter an experiment. Every other
 * unit is on the `live` side: served by the experiment's arm, or by the served version.
 *
 * The bucket is the experiments' (`./assignment.js`) with the holdout's salt, checked before any
 * experiment's: a held unit's key never reaches an experiment's salt.
 */

import {bucketOf, unitDigest} from './assignment.js'

/**
 * @typedef {import('./contract.js').Holdout} Holdout
 *   What the runtime follows (`GET /holdout`; the store's `HOLDOUT`): `id`, the frozen `version`,
 *   its `weight` (basis points of the units), `salt`, `horizonDays`, `createdAt`, `hash`. A holdout
 *   never changes once created: another id is another holdout. Its type is generated from the
 *   repository's `schemas/holdout.schema.json`.
 */

/** The ledger's arm of a held unit. */
export const HOLDOUT = 'holdout'
/** The ledger's arm of a unit outside the holdout and outside any running experiment. */
export const LIVE = 'live'

/**
 * Whether unit `key` is held out, and its salted digest (hex: what the ledger keeps).
 *
 * @param {Pick<Holdout, 'salt' | 'weight'>} holdout
 * @param {string} key
 * @returns {{held: boolean, unit: string}}
 * @throws {import('./errors.js').InvalidInputError} a key the runtime refuses.
 */
export function place(holdout, key) {
  const unit = unitDigest(holdout.salt, key)
  return {held: bucketOf(unit) < holdout.weight, unit}
}
