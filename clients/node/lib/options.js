/**
 * What `createClient` accepts, and the checks that turn a bad option into a `SettingsError`
 * naming it, at construction: a typo in a timeout must not surface as an outage hours later.
 */

import {SettingsError} from './errors.js'
import {LEDGER_MODES} from './ledger.js'

/** @import {LocalScorer} from './runtime-client.js' */
/** @import {LedgerMode} from './ledger.js' */

/**
 * @typedef Logger
 *   Where state changes are reported (`console` fits; so does a wrapper around a framework's logger).
 * @property {(message: string) => void} warn
 *   Called when the client turns to the local scorer.
 * @property {(message: string) => void} info
 *   Called when the service is back.
 *
 * @typedef ClientOptions
 * @property {string | URL} baseUrl
 *   The runtime's address, e.g. `http://ml-matching:8000` (a path prefix is kept).
 * @property {number} [timeoutMs=2000]
 *   Time allowed for one request, answer body included.
 * @property {string} [adminToken]
 *   Bearer token for `loadVersion`.
 * @property {LocalScorer} [local]
 *   Scores while the service is unreachable; without it such a failure throws.
 * @property {number} [healthIntervalMs=5000]
 *   While degraded, the least time between two readiness probes.
 * @property {number} [downloadTimeoutMs=60000]
 *   Time allowed for downloading one file of a version (`downloadVersion`, `fetchModel`).
 * @property {Logger} [logger=console]
 * @property {() => number} [now=performance.now]
 *   The clock, in milliseconds, that paces the readiness probes (tests pass their own).
 * @property {string | URL} [trainerUrl]
 *   The trainer's address (`ml-matching trainer`), for `recordOutcome`, `train`, `status`.
 * @property {string} [spoolFile]
 *   A JSON Lines file keeping the outcomes and prediction-ledger rows that wait for the trainer,
 *   so a restart loses none.
 * @property {number} [queueLimit=10000]
 *   Most outcomes kept while the trainer is unreachable; past it `recordOutcome` throws.
 * @property {number} [retryMs=5000]
 *   While outcomes wait, how often to try the trainer again.
 * @property {number} [trainTimeoutMs=330000]
 *   How long `train()` waits for the trainer's answer (it waits up to its TRAIN_WAIT_SECONDS, 300 s).
 * @property {LedgerMode} [ledger='experiments']
 *   Which predictions scored in-process (`followModel`) are recorded in the trainer's prediction
 *   ledger: those under an experiment or the holdout (every keyed one), all, or none (the
 *   runtime's `LEDGER`).
 * @property {number} [ledgerLimit=100000]
 *   Most ledger rows kept while the trainer is unreachable; past it new rows are dropped and
 *   counted (`predictionsDropped`): scoring never waits on the trainer.
 *
 * @typedef Settings
 *   The options checked, with their defaults filled in.
 * @property {string} runtimeUrl
 * @property {number} timeoutMs
 * @property {number} healthIntervalMs
 * @property {number} downloadTimeoutMs
 * @property {string | undefined} adminToken
 * @property {LocalScorer | undefined} local
 * @property {Logger} logger
 * @property {() => number} now
 * @property {string | undefined} trainerUrl
 * @property {number} retryMs
 * @property {number} trainTimeoutMs
 * @property {number} queueLimit
 * @property {string | undefined} spoolFile
 * @property {LedgerMode} ledger
 * @property {number} ledgerLimit
 */

/**
 * Check `options` in the order they are documented; the first bad one throws.
 *
 * @param {ClientOptions} options
 * @returns {Settings}
 * @throws {SettingsError} an option that cannot be used, named.
 */
export function readOptions(options) {
  if (options === null || typeof options !== 'object') {
    throw new SettingsError(
      `createClient needs an options object with at least baseUrl, got ${describe(options)}`
    )
  }
  const unknown = Object.keys(options).filter((key) => !OPTIONS.includes(key))
  if (unknown.length > 0) {
    // Plain JavaScript has no type checker: `timeout` for `timeoutMs` would be ignored for good.
    throw new SettingsError(`unknown option ${unknown.join(', ')} (the options are ${OPTIONS.join(', ')})`)
  }
  const runtimeUrl = serviceUrl(options.baseUrl, 'baseUrl')
  const timeoutMs = positive(options.timeoutMs ?? 2000, 'timeoutMs')
  const healthIntervalMs = positive(options.healthIntervalMs ?? 5000, 'healthIntervalMs')
  const downloadTimeoutMs = positive(options.downloadTimeoutMs ?? 60_000, 'downloadTimeoutMs')
  const trainerUrl =
    options.trainerUrl === undefined ? undefined : serviceUrl(options.trainerUrl, 'trainerUrl')
  const spoolFile = options.spoolFile
  if (spoolFile !== undefined && (typeof spoolFile !== 'string' || spoolFile === '')) {
    throw new SettingsError(`spoolFile must be a file's path, got ${describe(spoolFile)}`)
  }
  checkShape(options.logger, 'logger', ['warn', 'info'], 'console, or an object with warn and info methods')
  checkShape(
    options.local,
    'local',
    ['predict', 'predictBatch'],
    'a model from loadModel, weightedModel or followModel'
  )
  const retryMs = positive(options.retryMs ?? 5000, 'retryMs')
  const trainTimeoutMs = positive(options.trainTimeoutMs ?? 330_000, 'trainTimeoutMs')
  const queueLimit = count(options.queueLimit ?? 10_000, 'queueLimit')
  const ledger = options.ledger ?? 'experiments'
  if (!LEDGER_MODES.includes(ledger)) {
    throw new SettingsError(`ledger must be one of ${LEDGER_MODES.join(', ')}, got ${JSON.stringify(ledger)}`)
  }
  const ledgerLimit = count(options.ledgerLimit ?? 100_000, 'ledgerLimit')
  return {
    runtimeUrl,
    timeoutMs,
    healthIntervalMs,
    downloadTimeoutMs,
    adminToken: options.adminToken,
    local: options.local,
    logger: options.logger ?? console,
    now: options.now ?? (() => performance.now()),
    trainerUrl,
    retryMs,
    trainTimeoutMs,
    queueLimit,
    spoolFile,
    ledger,
    ledgerLimit
  }
}

/** Every option `createClient` takes (ClientOptions). */
const OPTIONS = [
  'baseUrl',
  'timeoutMs',
  'adminToken',
  'local',
  'healthIntervalMs',
  'downloadTimeoutMs',
  'logger',
  'now',
  'trainerUrl',
  'spoolFile',
  'queueLimit',
  'retryMs',
  'trainTimeoutMs',
  'ledger',
  'ledgerLimit'
]

/**
 * @param {unknown} value
 * @param {string} name
 */
function count(value, name) {
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < 1) {
    throw new SettingsError(`${name} must be a positive integer, got ${describe(value)}`)
  }
  return value
}

/**
 * @param {unknown} value
 * @param {string} name
 */
function positive(value, name) {
  if (typeof value !== 'number' || !(value > 0) || !Number.isFinite(value)) {
    throw new SettingsError(`${name} must be a positive number of milliseconds, got ${describe(value)}`)
  }
  return value
}

/**
 * An object option the client calls methods of: checked now, or a typo fails at the first outage.
 *
 * @param {unknown} value
 * @param {string} name
 * @param {string[]} methods
 * @param {string} expected
 */
function checkShape(value, name, methods, expected) {
  if (value === undefined) return
  const missing =
    value === null || typeof value !== 'object'
      ? methods
      : methods.filter((m) => typeof (/** @type {any} */ (value)[m]) !== 'function')
  if (missing.length > 0) {
    throw new SettingsError(
      `${name} must be ${expected}; got ${describe(value)} without ${missing.join(', ')}`
    )
  }
}

/**
 * @param {string | URL} value
 * @param {string} name the option that gave it
 * @returns {string} the URL without trailing slashes
 */
function serviceUrl(value, name) {
  let url
  try {
    url = new URL(String(value))
  } catch {
    throw new SettingsError(`${name} must be an http(s) URL, got ${describe(value)}`)
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') {
    throw new SettingsError(
      `${name} must be an http(s) URL such as http://ml-matching:8000, got ${describe(value)}`
    )
  }
  return url.href.replace(/\/+$/, '')
}

/**
 * A value as an error names it: its text and, where that could mislead, its type.
 *
 * @param {unknown} value
 */
function describe(value) {
  if (typeof value === 'string') return `${JSON.stringify(value)} (a string)`
  if (value === null || value === undefined || typeof value !== 'object') return String(value)
  return value.constructor?.name ? `an object (${value.constructor.name})` : 'an object'
}
