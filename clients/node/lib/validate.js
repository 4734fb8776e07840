/**
 * Request validation against a model's feature set, with the Python runtime's rules.
 *
 * A row is a plain object with exactly the model's features, each a finite number (no coercion:
 * `"0.5"`, `true`, `null` are rejected) inside its declared range. When a row has several
 * problems the first in this order is reported: shape, unknown, missing, type, non-finite, range
 * (features in model order).
 */

import {InvalidInputError} from './errors.js'

/** The largest float32: the model computes in float32, so a value beyond it is infinite there. */
const FLOAT32_MAX = 3.4028234663852886e38

/**
 * @typedef {Record<string, number>} Row
 *   One match: feature name -> value.
 *
 * @typedef Schema
 *   A compiled feature set.
 * @property {ReadonlyArray<string>} names
 *   Feature names in model (ONNX column) order.
 * @property {ReadonlySet<string>} nameSet
 * @property {Float64Array} min
 *   Declared minimum per feature, `-Infinity` when none.
 * @property {Float64Array} max
 *   Declared maximum per feature, `Infinity` when none.
 *
 * @typedef {Float32Array | Float64Array} Values
 */

/**
 * @param {ReadonlyArray<{name: string, min?: number | null, max?: number | null}>} features
 * @returns {Schema}
 */
export function compileSchema(features) {
  const names = Object.freeze(features.map((f) => f.name))
  return {
    names,
    nameSet: new Set(names),
    min: Float64Array.from(features, (f) => (typeof f.min === 'number' ? f.min : -Infinity)),
    max: Float64Array.from(features, (f) => (typeof f.max === 'number' ? f.max : Infinity))
  }
}

/**
 * Check one row and write its values, in feature order, to `out` from `offset`.
 *
 * @param {Schema} schema
 * @param {unknown} row
 * @param {Values} out
 * @param {number} offset
 * @param {number | undefined} index
 *   The row's index in a batch, for the error message; undefined for a single row.
 * @throws {InvalidInputError}
 */
export function readRow(schema, row, out, offset, index) {
  if (!isRowObject(row)) {
    throw new InvalidInputError(`expected an object of features, got ${kind(row)}`, {
      reason: 'shape',
      row: index
    })
  }
  const {names, min, max} = schema
  const n = names.length
  let keys = 0
  for (const _ in row) keys++
  let present = 0
  for (let i = 0; i < n; i++) if (Object.hasOwn(row, names[i])) present++
  if (keys !== n || present !== n) structuralError(schema, row, index)

  for (let i = 0; i < n; i++) {
    const value = row[names[i]]
    if (typeof value !== 'number' || !Number.isFinite(value)) throw valueError(names[i], value, index)
    if (Math.abs(value) > FLOAT32_MAX) {
      throw new InvalidInputError(
        `feature \`${names[i]}\`: value ${value} is not a finite number in float32, which the model computes in`,
        {reason: 'non-finite', field: names[i], row: index}
      )
    }
    if (value < min[i] || value > max[i]) {
      throw new InvalidInputError(`feature \`${names[i]}\`: value ${value} is ${rangeText(min[i], max[i])}`, {
        reason: 'range',
        field: names[i],
        row: index
      })
    }
    out[offset + i] = value
  }
}

/**
 * Check a batch and return its values as one row-major `[rows.length, n]` array.
 *
 * @template {Values} T
 * @param {Schema} schema
 * @param {unknown} rows
 * @param {new (length: number) => T} ArrayType
 * @returns {T}
 * @throws {InvalidInputError}
 */
export function readRows(schema, rows, ArrayType) {
  if (!Array.isArray(rows) || rows.length === 0) {
    const got = Array.isArray(rows) ? 'an empty list' : kind(rows)
    throw new InvalidInputError(`expected a non-empty list of rows, got ${got}`, {reason: 'shape'})
  }
  const n = schema.names.length
  const out = new ArrayType(rows.length * n)
  for (let r = 0; r < rows.length; r++) readRow(schema, rows[r], out, r * n, r)
  return out
}

/**
 * @param {Schema} schema
 * @param {Record<string, unknown>} row
 * @param {number | undefined} index
 * @returns {never}
 */
function structuralError(schema, row, index) {
  const n = schema.names.length
  const unknown = Object.keys(row).filter((key) => !schema.nameSet.has(key))
  if (unknown.length > 0) {
    throw new InvalidInputError(`unknown ${listed(unknown)} (the model has ${n} features)`, {
      reason: 'unknown',
      field: unknown[0],
      fields: unknown,
      row: index
    })
  }
  const missing = schema.names.filter((name) => !Object.hasOwn(row, name))
  if (missing.length > 0) {
    throw new InvalidInputError(
      `missing ${listed(missing)} (expected ${n} features, got ${Object.keys(row).length})`,
      {reason: 'missing', field: missing[0], fields: missing, row: index}
    )
  }
  // Every feature present as an own key and no unknown one, yet the counts differ: some key is
  // non-enumerable or inherited, which JSON cannot express.
  throw new InvalidInputError('expected a plain object of features', {reason: 'shape', row: index})
}

/**
 * `feature `a`` or `features `a`, `b``, at most ten named (the Python runtime's wording).
 *
 * @param {ReadonlyArray<string>} names
 */
function listed(names) {
  const shown = names
    .slice(0, 10)
    .map((name) => `\`${name}\``)
    .join(', ')
  const more = names.length > 10 ? ` and ${names.length - 10} more` : ''
  return `feature${names.length > 1 ? 's' : ''} ${shown}${more}`
}

/**
 * A row as the runtime receives it: any object but an array, its own enumerable properties (what
 * JSON.stringify sends). A class instance (a NestJS DTO) was scored remotely and refused locally.
 *
 * @param {unknown} value
 * @returns {value is Record<string, unknown>}
 */
function isRowObject(value) {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return false
  // Built-ins whose content JSON does not send as fields (a Map goes as `{}`): named as the wrong shape.
  return !(NOT_ROWS.some((type) => value instanceof type) || ArrayBuffer.isView(value))
}

const NOT_ROWS = [Map, Set, WeakMap, WeakSet, Date, RegExp, Number, String, Boolean, Promise, Error]

/**
 * Refuse, in the local scorer's words, the values a row loses on its way to the runtime as JSON:
 * `NaN` and `±Infinity` become `null`, `undefined` disappears (the runtime then said "got null" or
 * "missing"), a `bigint` cannot be written at all (a TypeError).
 *
 * @param {unknown} row
 * @param {number | undefined} [index]
 * @throws {InvalidInputError}
 */
export function checkJsonRow(row, index) {
  if (!isRowObject(row)) return // the runtime answers the shape, in its words
  for (const name of Object.keys(row)) {
    const value = row[name]
    const lost =
      typeof value === 'number' ? !Number.isFinite(value) : value === undefined || typeof value === 'bigint'
    if (lost) throw valueError(name, value, index)
  }
}

/**
 * A feature's value that is not a finite number, refused in the Python runtime's words.
 *
 * @param {string} name
 * @param {unknown} value
 * @param {number | undefined} [index] the row's, in a batch
 * @param {string} [prefix] the call's name, where the message starts with it
 */
export function valueError(name, value, index, prefix = '') {
  const notNumber = typeof value !== 'number'
  const text = notNumber ? `expected a number, got ${kind(value)}` : `value ${value} is not a finite number`
  return new InvalidInputError(`${prefix}feature \`${name}\`: ${text}`, {
    reason: notNumber ? 'type' : 'non-finite',
    field: name,
    row: index
  })
}

/**
 * @param {unknown} value
 * @returns {value is Record<string, unknown>}
 */
function isPlainObject(value) {
  if (typeof value !== 'object' || value === null) return false
  const proto = Object.getPrototypeOf(value)
  return proto === Object.prototype || proto === null
}

/**
 * `outside [0, 1]`, or `below the minimum 0` / `above the maximum 1` for one bound: the same
 * words as training and the Python runtime.
 *
 * @param {number} min
 * @param {number} max
 */
function rangeText(min, max) {
  if (min === -Infinity) return `above the maximum ${max}`
  if (max === Infinity) return `below the minimum ${min}`
  return `outside [${min}, ${max}]`
}

/**
 * Why a version scoring `features` cannot stand beside one scoring `reference` (`named`, as
 * `control 20260101_000000`), or undefined; the Python runtime's words. Versions that answer one
 * request (an experiment's arms, the holdout's two sides) must check it alike: other features
 * cannot score it, and a feature declared over another range would refuse on one side a request
 * the other answers.
 *
 * @param {ReadonlyArray<{name: string, min?: number | null, max?: number | null}>} features
 * @param {ReadonlyArray<{name: string, min?: number | null, max?: number | null}>} reference
 * @param {string} named
 * @returns {string | undefined}
 */
export function featureMismatch(features, reference, named) {
  if (features.length !== reference.length || features.some((f, i) => f.name !== reference[i].name))
    return `it scores other features than ${named}`
  for (const [i, mine] of features.entries()) {
    const theirs = reference[i]
    if ((mine.min ?? null) !== (theirs.min ?? null) || (mine.max ?? null) !== (theirs.max ?? null))
      return (
        `it declares \`${mine.name}\` over ${intervalText(mine)}, where ${named} ` +
        `declares ${intervalText(theirs)}`
      )
  }
  return undefined
}

/**
 * `[0, 1]`, `[0, Infinity)`, `(-Infinity, 1]`: a declared range, as the Python runtime writes it.
 *
 * @param {{min?: number | null, max?: number | null}} feature
 */
function intervalText({min, max}) {
  return `${min == null ? '(-Infinity' : `[${min}`}, ${max == null ? 'Infinity)' : `${max}]`}`
}

/**
 * How a value reads in an error message: its kind, and a short form of strings (the Python
 * runtime's `kind`).
 *
 * @param {unknown} value
 */
export function kind(value) {
  if (value === null) return 'null'
  if (Array.isArray(value)) return 'an array'
  if (typeof value === 'string') {
    const text = JSON.stringify(value.length > 40 ? value.slice(0, 40) + '…' : value)
    return `a string ${text}`
  }
  if (typeof value === 'object')
    return isPlainObject(value) ? 'an object' : `an object (${value.constructor?.name ?? 'no prototype'})`
  return typeof value === 'undefined' ? 'undefined' : `a ${typeof value}`
}
