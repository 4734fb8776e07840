/**
 * The sidecar (`model.json`): the parts of it this package reads, and a structural check.
 *
 * The full format is `schemas/model.schema.json` in the repository (generated from
 * `src/ml_matching/contract/sidecar.py`); only what scoring and verification need is checked here.
 */

import {readFile} from 'node:fs/promises'
import path from 'node:path'
import {ArtifactCorruptError} from './errors.js'

export const SIDECAR_FILE = 'model.json'

/**
 * @typedef {import('./contract.js').Sidecar} Sidecar
 *   `model.json` (its type is generated from the runtime's `schemas/model.schema.json`).
 * @typedef {import('./contract.js').Feature} Feature
 *   One input column; `min`/`max` are the declared range, when there is one.
 */

/**
 * Read and check `<versionDir>/model.json`.
 *
 * @param {string} versionDir
 *   A version folder of an artifact store, e.g. `artifacts/20261126_143000`.
 * @returns {Promise<Sidecar>}
 * @throws {ArtifactCorruptError}
 *   (`check: 'sidecar'`) when the file is unreadable, incomplete, or names another version.
 */
export async function readSidecar(versionDir) {
  let text
  try {
    text = await readFile(path.join(versionDir, SIDECAR_FILE), 'utf8')
  } catch (error) {
    throw new ArtifactCorruptError('sidecar', `cannot read ${SIDECAR_FILE}: ${describe(error)}`)
  }
  /** @type {unknown} */
  let data
  try {
    data = JSON.parse(text)
  } catch (error) {
    throw new ArtifactCorruptError('sidecar', `${SIDECAR_FILE} is not JSON: ${describe(error)}`)
  }
  const sidecar = checkSidecar(data)
  const folder = path.basename(path.resolve(versionDir))
  if (sidecar.version !== folder) {
    throw new ArtifactCorruptError('sidecar', `sidecar names version ${sidecar.version}, folder is ${folder}`)
  }
  return sidecar
}

/**
 * Check that a parsed `model.json` has what scoring needs.
 *
 * @param {unknown} data
 * @returns {Sidecar}
 * @throws {ArtifactCorruptError}
 *   (`check: 'sidecar'`) naming the first missing or mistyped field.
 */
export function checkSidecar(data) {
  const root = object(data, 'model.json')
  string(root.version, 'version')
  const features = nonEmptyArray(root.features, 'features')
  const seen = new Set()
  for (const [i, item] of features.entries()) {
    const feature = object(item, `features[${i}]`)
    const name = string(feature.name, `features[${i}].name`)
    if (seen.has(name)) fail(`feature \`${name}\` appears twice`)
    seen.add(name)
    optionalNumber(feature.min, `features[${i}].min`)
    optionalNumber(feature.max, `features[${i}].max`)
  }

  const onnx = object(root.onnx, 'onnx')
  for (const key of ['sha256', 'inputName', 'labelOutput', 'probabilitiesOutput']) {
    string(onnx[key], `onnx.${key}`)
  }
  integer(onnx.bytes, 'onnx.bytes')
  integer(onnx.positiveClassIndex, 'onnx.positiveClassIndex')
  numberRecord(object(root.featureImportance, 'featureImportance').impurity, 'featureImportance.impurity')

  const baseline = object(root.baseline, 'baseline')
  number(baseline.intercept, 'baseline.intercept')
  numberRecord(baseline.coefficients, 'baseline.coefficients')

  for (const [i, item] of nonEmptyArray(root.goldenRows, 'goldenRows').entries()) {
    const row = object(item, `goldenRows[${i}]`)
    numberRecord(row.features, `goldenRows[${i}].features`)
    number(row.probability, `goldenRows[${i}].probability`)
    number(row.baselineProbability, `goldenRows[${i}].baselineProbability`)
  }

  const stats = object(object(root.trainingData, 'trainingData').features, 'trainingData.features')
  for (const name of seen) {
    const item = object(stats[name], `trainingData.features.${name}`)
    number(item.min, `trainingData.features.${name}.min`)
    number(item.max, `trainingData.features.${name}.max`)
  }
  return /** @type {Sidecar} */ (/** @type {unknown} */ (root))
}

/**
 * @param {string} message
 * @returns {never}
 */
function fail(message) {
  throw new ArtifactCorruptError('sidecar', message)
}

/**
 * @param {unknown} value
 * @param {string} where
 * @returns {Record<string, unknown>}
 */
function object(value, where) {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    fail(`\`${where}\` must be an object`)
  }
  return /** @type {Record<string, unknown>} */ (value)
}

/**
 * @param {unknown} value
 * @param {string} where
 * @returns {Array<unknown>}
 */
function nonEmptyArray(value, where) {
  if (!Array.isArray(value) || value.length === 0) fail(`\`${where}\` must be a non-empty list`)
  return value
}

/**
 * @param {unknown} value
 * @param {string} where
 * @returns {string}
 */
function string(value, where) {
  if (typeof value !== 'string' || value === '') fail(`\`${where}\` must be a non-empty string`)
  return value
}

/**
 * @param {unknown} value
 * @param {string} where
 */
function number(value, where) {
  if (typeof value !== 'number' || !Number.isFinite(value)) fail(`\`${where}\` must be a finite number`)
}

/**
 * @param {unknown} value
 * @param {string} where
 */
function optionalNumber(value, where) {
  if (value !== undefined && value !== null) number(value, where)
}

/**
 * @param {unknown} value
 * @param {string} where
 */
function integer(value, where) {
  if (!Number.isSafeInteger(value) || /** @type {number} */ (value) < 0) {
    fail(`\`${where}\` must be a non-negative integer`)
  }
}

/**
 * @param {unknown} value
 * @param {string} where
 */
function numberRecord(value, where) {
  for (const [key, item] of Object.entries(object(value, where))) number(item, `${where}.${key}`)
}

/**
 * @param {unknown} error
 * @returns {string}
 */
export function describe(error) {
  return error instanceof Error ? error.message : String(error)
}

/**
 * The golden row farthest from its expected value (a NaN counts as farthest).
 *
 * @param {ArrayLike<number>} got
 *   What this runtime computed, one value per golden row.
 * @param {ReadonlyArray<number>} expected
 * @returns {{row: number, diff: number}}
 */
export function worstGoldenRow(got, expected) {
  let row = 0
  let diff = 0
  for (const [i, want] of expected.entries()) {
    const d = Math.abs(got[i] - want)
    if (Number.isNaN(d)) return {row: i, diff: d}
    if (d > diff) [row, diff] = [i, d]
  }
  return {row, diff}
}
