/**
 * Everything the tests share: fixture paths, temporary folders, waiting for a condition, an
 * injected clock, a logger that remembers, fakes of the runtime and the trainer, and the real
 * Python services.
 *
 * The fakes answer as the real services do (statuses, error codes and words, headers, answer
 * shapes, scores from the same fixture versions): runtime.test.js and trainer.test.js hold them to
 * that against the real ones. Their `mode`s add what the real services never do themselves but a
 * network, a proxy or an older runtime does (hang, reset, non-JSON pages, tampered files).
 */

import assert from 'node:assert/strict'
import {spawn} from 'node:child_process'
import {createHash, randomUUID} from 'node:crypto'
import {once} from 'node:events'
import {readFileSync} from 'node:fs'
import {cp, mkdtemp, readFile, readdir, rm, writeFile} from 'node:fs/promises'
import http from 'node:http'
import net from 'node:net'
import {test} from 'node:test'
import os from 'node:os'
import path from 'node:path'
import {setTimeout as sleep} from 'node:timers/promises'
import {fileURLToPath} from 'node:url'
import {ExplanationUnavailableError, InvalidInputError, loadModel} from '../index.js'
import {BUCKETS, CONTROL, armOf} from '../lib/assignment.js'
import {UUID7, isPredictionId, newPredictionId} from '../lib/ids.js'
import {Scorer} from '../lib/scorer.js'
import {compileSchema, kind, readRow} from '../lib/validate.js'

/** @import {ChildProcess} from 'node:child_process' */
/** @import {TestContext} from 'node:test' */
/** @import {Experiment, OnnxModel, Sidecar} from '../index.js' */

const here = path.dirname(fileURLToPath(import.meta.url))

// ---------------------------------------------------------------------------------------------
// Fixtures

/** The repository's root. */
export const REPO = path.resolve(here, '../../..')
/** The repository's committed fixture store (three small versions; ACTIVE names RF). */
export const STORE = path.join(REPO, 'tests/fixtures/store')
/** The random forest version, ACTIVE in the store. */
export const RF = '20260101_000000'
/** The gradient boosting version. */
export const GB = '20260102_000000'
/** A random forest on another feature set (5 features, other ranges). */
export const OTHER = '20260103_000000'
/** Where `scripts/node_parity_fixture.py` writes Python's scores. */
export const PARITY_FIXTURES = path.join(here, 'fixtures')
/** The original service's example row (`schemas/examples/predict.request.json`). */
export const EXAMPLE_ROW = /** @type {Record<string, number>} */ (
  JSON.parse(readFileSync(path.join(REPO, 'schemas/examples/predict.request.json'), 'utf8'))
)
/** The admin token the fakes accept (the real services get it as ML_SERVICE_ADMIN_TOKEN). */
export const ADMIN_TOKEN = 'test-admin-token'

/** @param {string} version */
export function versionDir(version) {
  return path.join(STORE, version)
}

/**
 * @param {string} version
 * @returns {Promise<Sidecar>}
 */
export async function sidecarOf(version) {
  return JSON.parse(await readFile(path.join(versionDir(version), 'model.json'), 'utf8'))
}

/**
 * `test`, skipped with the reason `unavailable()` gives when there is one (a Python runtime these
 * tests need that could not start, say): for the tests of a suite that all need it.
 *
 * @param {() => string | undefined} unavailable
 * @returns {(name: string, body: (t: TestContext) => Promise<void>) => void}
 */
export function testWhen(unavailable) {
  return (name, body) =>
    test(name, async (t) => {
      const why = unavailable()
      if (why) return t.skip(why)
      await body(t)
    })
}

/**
 * Wrap method `name` of `proto` for the rest of test `t`: `wrap` runs as the method, with `this`
 * the instance and, first, the original bound to it.
 *
 * @param {TestContext} t
 * @param {any} proto
 * @param {string} name
 * @param {(this: any, original: (...args: any[]) => any, ...args: any[]) => any} wrap
 */
export function around(t, proto, name, wrap) {
  const original = proto[name]
  t.mock.method(
    proto,
    name,
    /** @this {any} */ function (/** @type {any[]} */ ...args) {
      return wrap.call(this, (/** @type {any[]} */ ...a) => original.apply(this, a), ...args)
    }
  )
}

/**
 * Make `version`'s in-process scoring throw for the rest of test `t`, as a lost onnxruntime session
 * would: every one-row call, and the batches `batches` picks (all by default).
 *
 * @param {TestContext} t
 * @param {string} version
 * @param {(rows: unknown[]) => boolean} [batches]
 */
export function breakScoring(t, version, batches = () => true) {
  const gone = () => new RangeError('the session is gone')
  around(t, Scorer.prototype, 'scoredOne', function (one, row, options) {
    if (this.version === version) throw gone()
    return one(row, options)
  })
  around(t, Scorer.prototype, 'scored', function (many, rows, options) {
    if (this.version === version && batches(rows)) return Promise.reject(gone())
    return many(rows, options)
  })
}

/**
 * A row with every feature of `names` set to `value`, then `changes` applied.
 *
 * @param {ReadonlyArray<string>} names
 * @param {number} value
 * @param {Record<string, unknown>} [changes]
 * @returns {Record<string, number>}
 */
export function uniformRow(names, value, changes = {}) {
  return /** @type {Record<string, number>} */ ({
    ...Object.fromEntries(names.map((name) => [name, value])),
    ...changes
  })
}

/**
 * Deterministic in-range float32 rows (a small LCG: the tests need no randomness of their own).
 *
 * @param {ReadonlyArray<string>} names
 * @param {number} count
 * @param {number} [seed]
 * @returns {Array<Record<string, number>>}
 */
export function rowsOf(names, count, seed = 12345) {
  let state = seed
  const next = () => {
    state = (Math.imul(state, 1103515245) + 12345) >>> 0
    return Math.fround(state / 2 ** 32)
  }
  return Array.from({length: count}, () => Object.fromEntries(names.map((name) => [name, next()])))
}

/**
 * A fresh temporary folder, removed when `t` ends (or by the caller, without `t`).
 *
 * @param {string} name
 * @param {TestContext} [t]
 */
export async function tempDir(name, t) {
  const dir = await mkdtemp(path.join(os.tmpdir(), `ml-matching-${name}-`))
  t?.after(() => rm(dir, {recursive: true, force: true}))
  return dir
}

/**
 * Copy a version folder into a fresh temporary store; `edit` may change its files first.
 *
 * @param {string} version
 * @param {(dir: string) => Promise<void>} [edit]
 * @returns {Promise<{dir: string, cleanup: () => Promise<void>}>}
 */
export async function copyVersion(version, edit) {
  const root = await tempDir('node')
  const dir = path.join(root, version)
  await cp(versionDir(version), dir, {recursive: true})
  if (edit) await edit(dir)
  return {dir, cleanup: () => rm(root, {recursive: true, force: true})}
}

/**
 * Rewrite `dir/model.json` through `change`.
 *
 * @param {string} dir
 * @param {(sidecar: any) => void} change
 */
export async function editSidecar(dir, change) {
  const file = path.join(dir, 'model.json')
  const sidecar = JSON.parse(await readFile(file, 'utf8'))
  change(sidecar)
  await writeFile(file, JSON.stringify(sidecar, null, 2) + '\n')
}

/**
 * An experiment as the trainer writes it to the store's `EXPERIMENT` (and the runtime answers it at
 * `GET /experiment`): RF as control, GB as candidate `gb` on half the buckets and as a shadow (as
 * in the trainer's shadow step of a ramp). OTHER scores other features: a runtime refuses it in an
 * experiment of RF.
 *
 * @param {Partial<Experiment>} [changes]
 * @returns {Experiment}
 */
export function experimentOf(changes = {}) {
  return {
    id: 'exp-gb-vs-rf',
    name: 'gb-vs-rf',
    state: 'running',
    control: RF,
    candidates: [{arm: 'gb', version: GB, weight: 5000}],
    shadow: [GB],
    salt: 'exp-golden',
    horizonDays: 30,
    createdAt: '2026-11-30T10:00:00.000Z',
    revision: 1,
    hash: 'sha256-v1',
    ...changes
  }
}

/**
 * An answer without its prediction ids (on it and on each of its predictions), each checked to be
 * a UUIDv7 first: what is left is what a model's answer for the same rows is.
 *
 * @param {any} answer
 * @returns {any}
 */
export function withoutIds(answer) {
  /** @param {any} item */
  const strip = (item) => {
    const {predictionId, ...rest} = item
    assert.ok(isPredictionId(predictionId), `predictionId ${predictionId} is a UUIDv7`)
    return rest
  }
  if (!Array.isArray(answer.predictions)) return strip(answer)
  return {...answer, predictions: answer.predictions.map(strip)}
}

// ---------------------------------------------------------------------------------------------
// Time: wait for what is awaited, or move an injected clock

/**
 * Call `check` until it gives a truthy value, and return that value. A poll, not a guess: the
 * interval only paces the checks, the condition is what is waited for.
 *
 * @template T
 * @param {() => T | Promise<T>} check
 *   May throw to stop waiting (e.g. the process being waited on exited).
 * @param {{timeoutMs?: number, intervalMs?: number, what?: string}} [options]
 * @returns {Promise<NonNullable<T>>}
 */
export async function waitFor(check, {timeoutMs = 10_000, intervalMs = 50, what = 'the condition'} = {}) {
  const deadline = performance.now() + timeoutMs
  for (;;) {
    const value = await check()
    if (value) return /** @type {NonNullable<T>} */ (value)
    if (performance.now() >= deadline) throw new Error(`${what} did not happen within ${timeoutMs} ms`)
    await sleep(intervalMs)
  }
}

/**
 * Let Node finish the current turn: a promise rejected with no handler is reported
 * (`unhandledRejection`) by then.
 */
export function nextTurn() {
  return new Promise((resolve) => setImmediate(resolve))
}

/** A clock the tests move by hand (the client's `now` option). */
export function manualClock() {
  let now = 0
  return {
    now: () => now,
    /** @param {number} ms */
    advance: (ms) => void (now += ms)
  }
}

/** A logger (the client's `logger` option) that remembers what it was told, as `[level, message]`. */
export function memoryLogger() {
  /** @type {Array<['warn' | 'info', string]>} */
  const lines = []
  return {
    lines,
    /** @param {string} message */
    warn: (message) => void lines.push(['warn', message]),
    /** @param {string} message */
    info: (message) => void lines.push(['info', message])
  }
}

/** @returns {Promise<number>} a TCP port free on 127.0.0.1 now (for a process that needs one given) */
export async function freePort() {
  const server = net.createServer().listen(0, '127.0.0.1')
  await once(server, 'listening')
  const {port} = /** @type {net.AddressInfo} */ (server.address())
  server.close()
  await once(server, 'close')
  return port
}

// ---------------------------------------------------------------------------------------------
// Comparing two services' answers

/**
 * Assert that `actual` is `expected` as JSON: the same keys in the same order, the same types and
 * values; numbers within `tolerance`; the keys in `loose` (at any depth) compared by type only, for
 * what differs between two runs (times, job ids, counts left by earlier tests). `values: false`
 * compares the structure only (keys, their order, types), for answers made of made-up numbers.
 *
 * @param {unknown} actual
 * @param {unknown} expected
 * @param {{tolerance?: number, loose?: ReadonlyArray<string>, values?: boolean, where?: string}} [options]
 */
export function assertSameAnswer(actual, expected, options = {}) {
  const {tolerance = 0, loose = [], values = true, where = 'answer'} = options
  const type = (/** @type {unknown} */ v) => (v === null ? 'null' : Array.isArray(v) ? 'array' : typeof v)
  assert.equal(type(actual), type(expected), `${where}: type`)
  if (Array.isArray(actual) && Array.isArray(expected)) {
    if (values) assert.equal(actual.length, expected.length, `${where}: length`)
    const count = values ? expected.length : Math.min(actual.length, expected.length)
    for (let i = 0; i < count; i++)
      assertSameAnswer(actual[i], expected[i], {...options, where: `${where}[${i}]`})
  } else if (type(actual) === 'object') {
    const a = /** @type {Record<string, unknown>} */ (actual)
    const e = /** @type {Record<string, unknown>} */ (expected)
    assert.deepEqual(Object.keys(a), Object.keys(e), `${where}: keys`)
    for (const key of Object.keys(e)) {
      const at = `${where}.${key}`
      if (loose.includes(key)) assert.equal(type(a[key]), type(e[key]), `${at}: type`)
      else assertSameAnswer(a[key], e[key], {...options, where: at})
    }
  } else if (!values) {
    return
  } else if (typeof actual === 'number' && typeof expected === 'number') {
    assert.ok(Math.abs(actual - expected) <= tolerance, `${where}: ${actual} vs ${expected}`)
  } else {
    assert.equal(actual, expected, where)
  }
}

/** The headers the client reads or a caller may: compared between a fake and the real service. */
const ANSWER_HEADERS = ['content-type', 'repr-digest', 'etag', 'content-disposition', 'www-authenticate']

/**
 * One request, and what comparing two services' answers needs: the status, the headers of
 * ANSWER_HEADERS, and the body (parsed when it is JSON, else its bytes).
 *
 * @param {string} base
 * @param {string} method
 * @param {string} path
 * @param {{body?: unknown, headers?: Record<string, string>}} [options]
 *   `body`: sent as JSON (`content-type: application/json` unless `headers` says otherwise).
 */
export async function exchange(base, method, path, {body, headers = {}} = {}) {
  const response = await fetch(base + path, {
    method,
    headers: {...(body === undefined ? {} : {'content-type': 'application/json'}), ...headers},
    ...(body === undefined ? {} : {body: JSON.stringify(body)})
  })
  const bytes = Buffer.from(await response.arrayBuffer())
  const type = response.headers.get('content-type') ?? ''
  return {
    status: response.status,
    headers: Object.fromEntries(
      ANSWER_HEADERS.flatMap((name) => {
        const value = response.headers.get(name)
        return value === null ? [] : [[name, value]]
      })
    ),
    location: response.headers.get('location'),
    body: type.startsWith('application/json') ? JSON.parse(bytes.toString('utf8')) : bytes
  }
}

// ---------------------------------------------------------------------------------------------
// HTTP fakes of the services

/**
 * A node:http server on 127.0.0.1: `start()` listens (on `port`, or a free one the first time),
 * `stop()` closes it and its connections, and `start()` again reuses the port, as a restarted
 * service would. Subclasses answer in `handle`.
 */
export class LocalServer {
  port = 0
  /** @type {Array<string>} requests seen, as `METHOD /path?query` */
  requests = []
  /** @type {http.Server | undefined} */
  #server

  get baseUrl() {
    return `http://127.0.0.1:${this.port}`
  }

  /** @returns {Promise<void>} */
  start() {
    const server = http.createServer((request, response) => void this.#answer(request, response))
    this.#server = server
    return new Promise((resolve, reject) => {
      server.once('error', reject)
      server.listen(this.port, '127.0.0.1', () => {
        this.port = /** @type {net.AddressInfo} */ (server.address()).port
        resolve()
      })
    })
  }

  /** @returns {Promise<void>} */
  stop() {
    const server = this.#server
    this.#server = undefined
    if (!server) return Promise.resolve()
    return new Promise((resolve) => {
      server.close(() => resolve())
      server.closeAllConnections()
    })
  }

  /**
   * @param {http.IncomingMessage} request
   * @param {http.ServerResponse} response
   */
  async #answer(request, response) {
    let text = ''
    for await (const chunk of request) text += chunk
    this.requests.push(`${request.method} ${request.url}`)
    try {
      await this.handle(request, response, text)
    } catch (error) {
      // A fake's own bug answers 500, with its message, where a test's client reports it.
      if (!response.headersSent)
        send(response, 500, {statusCode: 500, error: 'internal_error', detail: String(error)})
    }
  }

  /**
   * @param {http.IncomingMessage} request
   * @param {http.ServerResponse} response
   * @param {string} body
   * @returns {Promise<unknown>}
   */
  async handle(request, response, body) {
    return send(response, 501, {})
  }
}

/**
 * Answer JSON (a string is sent as it is).
 *
 * @param {http.ServerResponse} response
 * @param {number} status
 * @param {unknown} body
 * @param {Record<string, string>} [headers]
 */
function send(response, status, body, headers = {}) {
  if (response.destroyed) return
  response.writeHead(status, {...headers, 'content-type': 'application/json'})
  response.end(typeof body === 'string' ? body : JSON.stringify(body))
}

/**
 * The services' error body (`schemas/error.schema.json`).
 *
 * @param {http.ServerResponse} response
 * @param {number} status
 * @param {string} error
 * @param {string} detail
 * @param {Record<string, string>} [headers]
 */
function fail(response, status, error, detail, headers) {
  send(response, status, {statusCode: status, error, detail}, headers)
}

/**
 * As both services check a bearer token: 401 with a challenge when it is missing or wrong.
 *
 * @param {http.IncomingMessage} request
 * @param {http.ServerResponse} response
 * @param {string} token
 */
function authorized(request, response, token) {
  if (request.headers.authorization === `Bearer ${token}`) return true
  const detail = 'missing or wrong bearer token (Authorization: Bearer <ML_SERVICE_ADMIN_TOKEN>)'
  fail(response, 401, 'unauthorized', detail, {'www-authenticate': 'Bearer'})
  return false
}

/**
 * As both services require a JSON body: 415 naming the content type sent.
 *
 * @param {http.IncomingMessage} request
 * @param {http.ServerResponse} response
 */
function json(request, response) {
  const type = request.headers['content-type'] ?? ''
  if (type.split(';')[0].trim() === 'application/json') return true
  const detail = `expected a JSON body (Content-Type: application/json), got \`${type}\``
  fail(response, 415, 'unsupported_media_type', detail)
  return false
}

/**
 * @param {string} text
 * @returns {any} the JSON value, or undefined when the text is not JSON
 */
function parse(text) {
  try {
    return JSON.parse(text)
  } catch {
    return undefined
  }
}

/** Both services refuse a body that is not JSON with 400; their detail is msgspec's, this is shorter. */
const MALFORMED = 'malformed JSON'
/** What the runtime answers when no model is loaded (its HOW_TO_TRAIN, for the fixture store). */
const NO_MODEL =
  'no model is loaded: train one with `ml-matching synth --rows 5000 --out data.json && ' +
  `ml-matching fit --data data.json --artifacts ${STORE}\` (training needs the train extra: ` +
  "`pip install 'ml-matching[train]'`, or `uv sync --extra train` in a checkout of ml-matching)"
const VERSION_NAME = /^\d{8}_\d{6}(?:-[1-9]\d{0,5})?$/
const FILE_NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/
const MEDIA_TYPES = /** @type {Record<string, string>} */ ({
  json: 'application/json',
  onnx: 'application/octet-stream',
  md: 'text/markdown',
  html: 'text/html',
  svg: 'image/svg+xml'
})

/** What the runtime answers `GET /experiment` when it follows none. */
const NO_EXPERIMENT = 'this service follows no experiment (the store has no running one)'
const NO_HOLDOUT = 'this service follows no holdout (the store has none, or it refused it)'

/**
 * The `ML-Unit-Key` header's key, as the runtime decodes it (its `unit_key`): percent-encoded
 * UTF-8 decoded; an empty key or bytes that are not UTF-8 are refused in its words.
 *
 * @param {string} raw
 * @returns {string}
 * @throws {InvalidInputError}
 */
function unitKey(raw) {
  let key = raw
  if (raw.includes('%')) {
    // Python's unquote: each %XX a byte, anything else as it is (a `%` not followed by two hex digits too).
    const bytes = []
    for (let i = 0; i < raw.length; i++) {
      const hex = raw.slice(i + 1, i + 3)
      if (raw[i] === '%' && /^[0-9a-fA-F]{2}$/.test(hex)) {
        bytes.push(parseInt(hex, 16))
        i += 2
      } else bytes.push(...Buffer.from(raw[i], 'utf8'))
    }
    try {
      key = new TextDecoder('utf-8', {fatal: true}).decode(Uint8Array.from(bytes))
    } catch {
      throw new InvalidInputError(
        'header `ML-Unit-Key`: not valid percent-encoded UTF-8 (encode non-ASCII keys as UTF-8, ' +
          'then percent-encode the bytes)',
        {reason: 'unit'}
      )
    }
  }
  if (!key) {
    throw new InvalidInputError("header `ML-Unit-Key` is empty: send the unit's key, or no header at all", {
      reason: 'unit'
    })
  }
  return key
}

/**
 * The experiment as `GET /health` shows it (the runtime's `ExperimentView`), every version loaded.
 *
 * @param {Experiment} experiment
 */
function experimentView(experiment) {
  const weights = experiment.candidates.reduce((sum, c) => sum + c.weight, 0)
  const refused = FakeRuntime.refused(experiment)
  const why = (/** @type {string} */ version) => (refused.has(version) ? {refused: refused.get(version)} : {})
  return {
    id: experiment.id,
    name: experiment.name,
    state: experiment.state,
    revision: experiment.revision,
    control: experiment.control,
    arms: [
      {arm: CONTROL, version: experiment.control, weight: BUCKETS - weights},
      ...experiment.candidates.map(({arm, version, weight}) => ({arm, version, weight, ...why(version)}))
    ],
    shadow: experiment.shadow.map((version, i) => ({
      arm: `shadow-${i + 1}`,
      version,
      weight: 0,
      ...why(version)
    }))
  }
}

/** `YYYY-MM-DDTHH:MM:SS+00:00`, as Python's `isoformat(timespec="seconds")` gives it. */
function pythonNow() {
  return new Date().toISOString().slice(0, 19) + '+00:00'
}

/**
 * The runtime (`ml-matching serve`) over the committed fixture store: the routes the client uses,
 * answered as the runtime answers them, scores computed by onnxruntime-node from the same versions.
 * It serves `served` (RF by default); `loadVersion` swaps, in memory only (the store is never written).
 */
export class FakeRuntime extends LocalServer {
  /**
   * `ok`, or what breaks: `no-model` (the runtime before its first training: 503 model_not_ready),
   * `slow` (every answer after `slowMs`), `hang` (none ever), `reset` (the connection is cut),
   * `not-json` and `off-contract` (a proxy's 200 page, a 200 of another shape), `tampered`
   * (model.onnx changed in transit), `before-explanations` (a runtime that ignores `?explain`).
   * @type {'ok' | 'no-model' | 'slow' | 'hang' | 'reset' | 'not-json' | 'off-contract' | 'tampered' | 'before-explanations'}
   */
  mode = 'ok'
  slowMs = 5000
  /**
   * The store's `EXPERIMENT`: followed unless `stopped` (as the runtime follows it once its
   * versions verified; `tampered` names versions whose `model.onnx` download is corrupted).
   * @type {Experiment | null}
   */
  experiment = null
  /** @type {Set<string>} versions whose `model.onnx` is changed in transit (as `mode: 'tampered'` does for all) */
  tampered = new Set()
  /** @type {Array<{path: string, headers: http.IncomingHttpHeaders, body: any}>} */
  posts = []
  /** @type {Map<string, Promise<OnnxModel>>} */
  #models = new Map()

  /** @param {{served?: string, token?: string}} [options] */
  constructor({served = RF, token = ADMIN_TOKEN} = {}) {
    super()
    /** The version scoring; `loadVersion` changes it. */
    this.served = served
    this.token = token
  }

  /** Stop, and free the models' sessions. */
  async close() {
    await this.stop()
    for (const model of this.#models.values()) await (await model).close()
    this.#models.clear()
  }

  /**
   * @param {http.IncomingMessage} request
   * @param {http.ServerResponse} response
   * @param {string} text
   */
  async handle(request, response, text) {
    const url = new URL(request.url ?? '/', 'http://fake')
    const route = `${request.method} ${url.pathname}`
    if (request.method === 'POST') {
      this.posts.push({path: request.url ?? '', headers: request.headers, body: parse(text)})
    }
    if (this.mode === 'hang') return // the request is read; no answer ever comes
    if (this.mode === 'reset') return response.socket?.resetAndDestroy()
    if (this.mode === 'slow') {
      // Until slowMs, or until the client gives up: nothing keeps the test process waiting.
      const gone = new AbortController()
      response.once('close', () => gone.abort())
      await sleep(this.slowMs, undefined, {signal: gone.signal}).catch(() => {})
    }
    if (request.method === 'POST' && this.mode === 'not-json')
      return send(response, 200, '<html>proxy</html>')
    if (request.method === 'POST' && this.mode === 'off-contract')
      return send(response, 200, {hello: 'world'})
    const ready = this.mode !== 'no-model'
    const experiment = this.#followed()
    if (route === 'GET /health') {
      return send(response, 200, {
        status: 'healthy',
        service: 'ml-matching',
        modelLoaded: ready,
        modelVersion: ready ? this.served : null,
        timestamp: pythonNow(),
        activeVersion: this.served,
        ...(experiment ? {experiment: experimentView(experiment)} : {}),
        ledger: {mode: 'experiments', queued: 0, sent: 0, dropped: 0}
      })
    }
    if (route === 'GET /health/ready') {
      if (!ready) return fail(response, 503, 'model_not_ready', NO_MODEL)
      return send(response, 200, {status: 'ready', modelVersion: this.served})
    }
    if (route === 'GET /experiment') {
      if (!experiment) return fail(response, 404, 'experiment_not_found', NO_EXPERIMENT)
      return send(response, 200, experiment)
    }
    // Like a runtime whose store has no HOLDOUT: this fake follows none.
    if (route === 'GET /holdout') return fail(response, 404, 'holdout_not_found', NO_HOLDOUT)
    if (route === 'GET /models') return send(response, 200, await this.#listing())
    if (route === 'POST /predict' || route === 'POST /predict/batch') {
      if (!json(request, response)) return
      if (!ready) return fail(response, 503, 'model_not_ready', NO_MODEL)
      const body = parse(text)
      if (body === undefined) return fail(response, 400, 'invalid_input', MALFORMED)
      const key = request.headers['ml-unit-key']
      return this.#score(response, url, body, typeof key === 'string' ? key : undefined)
    }
    const load = /^POST \/models\/([^/]+)\/load$/.exec(route)
    if (load && !authorized(request, response, this.token)) return
    const model = /^(?:GET|POST) \/models\/([^/]+)(?:\/(load|files\/(.+)))?$/.exec(route)
    if (model) {
      const version = decodeURIComponent(model[1])
      if (!VERSION_NAME.test(version)) {
        const detail = `version '${version}' is not a version name (expected YYYYMMDD_HHMMSS or YYYYMMDD_HHMMSS-N)`
        return fail(response, 400, 'invalid_input', detail)
      }
      if (model[3] !== undefined) return this.#sendFile(response, version, decodeURIComponent(model[3]))
      const sidecar = await readFile(path.join(versionDir(version), 'model.json')).catch(() => undefined)
      if (!sidecar)
        return fail(response, 404, 'version_not_found', `version ${version} not found in ${STORE}`)
      if (request.method === 'GET' && !model[2]) return send(response, 200, sidecar.toString('utf8'))
      if (model[2] === 'load') {
        const previousVersion = this.served
        await this.#model(version) // the runtime verifies a version before it serves it
        this.served = version
        return send(response, 200, {status: 'success', version, previousVersion, persisted: true})
      }
    }
    return fail(response, 404, 'not_found', `no route for ${request.method} ${url.pathname}`)
  }

  /** The experiment the runtime follows (the store's, unless stopped), or null. */
  #followed() {
    return this.experiment && this.experiment.state !== 'stopped' ? this.experiment : null
  }

  /**
   * The versions of `experiment` the runtime does not use, and why: those scoring other features
   * than control (every version of the fixture store verifies).
   *
   * @param {Experiment} experiment
   * @returns {Map<string, string>}
   */
  static refused(experiment) {
    const features = (/** @type {string} */ version) =>
      JSON.parse(readFileSync(path.join(versionDir(version), 'model.json'), 'utf8'))
        .features.map((/** @type {{name: string}} */ f) => f.name)
        .join()
    const control = features(experiment.control)
    const refused = new Map()
    for (const version of [...experiment.candidates.map((c) => c.version), ...experiment.shadow]) {
      if (features(version) !== control)
        refused.set(version, `it scores other features than control ${experiment.control}`)
    }
    return refused
  }

  /**
   * What serves a row with unit `key` (the runtime's `Serving.route`): the version, and the
   * answer's `experiment` and `arm` (none outside the experiment).
   *
   * @param {string | undefined} key
   * @returns {{version: string, experiment?: string, arm?: string}}
   */
  #route(key) {
    const experiment = this.#followed()
    if (!experiment || experiment.state !== 'running') return {version: this.served}
    if (key === undefined) return {version: experiment.control}
    const {arm, version} = armOf(experiment, key)
    const served = FakeRuntime.refused(experiment).has(version) ? experiment.control : version
    return {version: served, experiment: experiment.id, arm}
  }

  /**
   * `POST /predict` or `/predict/batch`, scored by the served version, or under a running
   * experiment by the unit's arm; a bad row is refused in the runtime's words (the local model's
   * words are the runtime's: runtime.test.js holds them equal).
   *
   * @param {http.ServerResponse} response
   * @param {URL} url
   * @param {any} body
   * @param {string | undefined} header
   *   `ML-Unit-Key`, as sent.
   */
  async #score(response, url, body, header) {
    const asked = url.searchParams.getAll('explain')
    const explain = ['true', '1'].includes(asked[0]?.toLowerCase()) && this.mode !== 'before-explanations'
    try {
      if (url.pathname === '/predict') {
        const key = header === undefined ? undefined : unitKey(header)
        const route = this.#route(key)
        const model = await this.#model(route.version)
        const {contributions, baseValue, explanationScale, ...plain} = await model.predict(body, {explain})
        return send(response, 200, {
          ...plain,
          predictionId: newPredictionId(),
          ...(route.experiment ? {experiment: route.experiment, arm: route.arm} : {}),
          ...(contributions ? {contributions, baseValue, explanationScale} : {})
        })
      }
      const rows = body?.instances
      if (Array.isArray(rows) && rows.length === 0) {
        return fail(response, 400, 'invalid_input', '`instances` is empty: send at least 1 row')
      }
      const units = body?.units
      if (Array.isArray(units) && Array.isArray(rows) && units.length !== rows.length) {
        const detail = `\`units\` has ${units.length} keys for ${rows.length} instances: one per row, in order`
        return fail(response, 400, 'invalid_input', detail)
      }
      const control = this.#route(undefined)
      const model = await this.#model(control.version)
      const checked = await model.predictBatch(rows, {explain}) // the runtime decodes with control's
      const running = this.#followed()?.state === 'running'
      if (!Array.isArray(units) || !running) {
        const {predictions, ...shared} = checked
        const served = predictions.map(({contributions, ...score}) => ({
          ...score,
          predictionId: newPredictionId(),
          ...(contributions ? {contributions} : {})
        }))
        return send(response, 200, {predictions: served, ...shared})
      }
      /** @type {Array<any>} */
      const predictions = []
      /** @type {Map<string, {baseValue: unknown, explanationScale: unknown}>} each version's explanation */
      const explained = new Map()
      for (const [i, row] of rows.entries()) {
        const route = this.#route(unitKey(units[i]))
        const answer = await (await this.#model(route.version)).predictBatch([row], {explain})
        const {contributions, ...score} = answer.predictions[0]
        predictions.push({
          ...score,
          predictionId: newPredictionId(),
          arm: route.arm,
          modelVersion: route.version,
          // As the runtime answers: in an experiment each explained row has its version's base.
          ...(contributions ? {contributions, baseValue: answer.baseValue} : {})
        })
        if (!explained.has(route.version))
          explained.set(route.version, {
            baseValue: answer.baseValue,
            explanationScale: answer.explanationScale
          })
      }
      const shared = explained.get(control.version) ?? [...explained.values()][0]
      return send(response, 200, {
        predictions,
        featureImportance: checked.featureImportance,
        modelVersion: checked.modelVersion,
        experiment: this.#followed()?.id,
        ...(explain ? /** @type {object} */ (shared) : {})
      })
    } catch (error) {
      if (error instanceof InvalidInputError) return fail(response, 400, 'invalid_input', error.message)
      if (error instanceof ExplanationUnavailableError) {
        return fail(response, 409, 'explanation_unavailable', error.message)
      }
      throw error
    }
  }

  /** `GET /models`: every version of the store, as the runtime lists it. */
  async #listing() {
    const versions = (await readdir(STORE)).filter((name) => VERSION_NAME.test(name)).sort()
    return Promise.all(
      versions.map(async (version) => {
        const s = /** @type {any} */ (await sidecarOf(version))
        const metrics = {crossValidation: s.metrics.crossValidation.mean, holdout: s.metrics.holdout}
        return {
          version,
          active: version === this.served,
          timestamp: s.createdAt,
          algorithm: s.algorithm,
          metrics
        }
      })
    )
  }

  /**
   * `GET /models/{version}/files/{name}`: a file the sidecar lists (or the sidecar itself), with
   * its sha256 in `Repr-Digest` and `ETag`.
   *
   * @param {http.ServerResponse} response
   * @param {string} version
   * @param {string} name
   */
  async #sendFile(response, version, name) {
    if (!FILE_NAME.test(name) || name.includes('..')) {
      const detail = `file name '${name}' is not a plain file name (letters, digits, \`.\`, \`_\`, \`-\`)`
      return fail(response, 400, 'invalid_input', detail)
    }
    const sidecar = await sidecarOf(version).catch(() => undefined)
    if (!sidecar) return fail(response, 404, 'version_not_found', `version ${version} not found in ${STORE}`)
    const files = /** @type {Record<string, {mediaType?: string}>} */ (sidecar.files ?? {})
    const listed = ['model.onnx', 'model.json', ...Object.keys(files)]
    if (!listed.includes(name)) {
      const have = [...new Set(listed)].sort().join(', ')
      return fail(
        response,
        404,
        'file_not_found',
        `version ${version} has no file \`${name}\` (it has ${have})`
      )
    }
    let bytes = await readFile(path.join(versionDir(version), name))
    const digest = createHash('sha256').update(bytes).digest()
    const tampered = this.mode === 'tampered' || this.tampered.has(version)
    if (tampered && name === 'model.onnx') bytes = Buffer.concat([bytes, Buffer.from([0])])
    const media =
      files[name]?.mediaType ?? MEDIA_TYPES[name.split('.').pop() ?? ''] ?? 'application/octet-stream'
    response.writeHead(200, {
      'repr-digest': `sha-256=:${digest.toString('base64')}:`,
      etag: `"${digest.toString('hex')}"`,
      'content-type': media.startsWith('text/') ? `${media}; charset=utf-8` : media,
      'content-disposition': `inline; filename="${name}"`
    })
    response.end(bytes)
  }

  /** @param {string} version */
  #model(version) {
    let model = this.#models.get(version)
    if (!model) this.#models.set(version, (model = loadModel(versionDir(version))))
    return model
  }
}

/** The trainer's feature set: the default one (`schemas/features.default.json`). */
const TRAINER_FEATURES = compileSchema(
  JSON.parse(readFileSync(path.join(REPO, 'schemas/features.default.json'), 'utf8')).features
)
/** Where the checked values of an outcome go (the fake needs the check only). */
const SCRATCH = new Float64Array(TRAINER_FEATURES.names.length)
const MIN_ROWS = 50
const EVALUATION_SHARE = 0.2

/**
 * The trainer (`ml-matching trainer`): outcomes stored once per id (a resend is a duplicate, other
 * content under a used id a conflict), split for evaluation by a hash of the id as the trainer
 * splits them, `/train` refusing too few rows or one class in its words. A training that may run
 * succeeds at once, with an answer of the trainer's shape (its numbers are made up).
 *
 * The prediction ledger (`POST /predictions`): rows stored once per `predictionId` (a resend is a
 * duplicate, other content a conflict); an outcome sent as `{predictionId, outcome}` joins its row,
 * or waits (`pending`) until the row arrives.
 * trainer.test.js holds these answers to the real trainer's.
 */
export class FakeTrainer extends LocalServer {
  /** @type {Map<string, {features: Record<string, number>, outcome: boolean}>} id → what was stored */
  stored = new Map()
  /** @type {Map<string, any>} predictionId → the ledger row stored */
  predictions = new Map()
  /** @type {Map<string, boolean>} predictionId → an outcome whose row has not arrived */
  pending = new Map()
  /** Answers to drop: the outcomes are stored, the connection cut before the answer. */
  loseAnswers = 0
  /** `POST /predictions` answers to drop: the rows are stored, the connection cut before the answer. */
  loseLedgerAnswers = 0
  /** False: a trainer older than the ledger (`POST /predictions` is no route: 404). */
  ledger = true
  /**
   * What a proxy in front of the trainer answers instead of it (a 503 while it restarts, a 429):
   * called with each request's route and body; a `[status, body]` is answered, undefined passes.
   * @type {(route: string, body: string) => [number, unknown] | undefined}
   */
  intercept = () => undefined
  /** @type {string | null} what ACTIVE names (a promoted training sets it) */
  activeVersion = null
  /** @type {Map<string, any>} id → job view */
  jobs = new Map()
  #untrained = 0

  /** @type {Map<string, import('../lib/validate.js').Schema | null>} version → its features (null: not in the store) */
  #schemas = new Map()

  /** @param {{token?: string, store?: string}} [options] the store whose versions ledger rows name */
  constructor({token = ADMIN_TOKEN, store = STORE} = {}) {
    super()
    this.token = token
    this.store = store
  }

  /**
   * What the trainer says of a ledger row's features: checked against its version's, as the runtime
   * checks a row (the trainer joins outcomes to them and trains on them).
   *
   * @param {any} row
   * @param {number} i
   * @returns {string | null}
   */
  #rowProblem(row, i) {
    if (!this.#schemas.has(row.version)) {
      let schema = null
      try {
        const sidecar = JSON.parse(readFileSync(path.join(this.store, row.version, 'model.json'), 'utf8'))
        schema = compileSchema(sidecar.features)
      } catch {}
      this.#schemas.set(row.version, schema)
    }
    const schema = this.#schemas.get(row.version)
    if (!schema)
      return `version ${row.version} is not in the store (a ledger row names the version that served)`
    try {
      readRow(schema, row.features, new Float64Array(schema.names.length), 0, undefined)
    } catch (error) {
      if (!(error instanceof InvalidInputError)) throw error
      return `rows[${i}] (prediction \`${row.predictionId}\`): features: ${error.message}`
    }
    return null
  }

  /**
   * @param {http.IncomingMessage} request
   * @param {http.ServerResponse} response
   * @param {string} text
   */
  async handle(request, response, text) {
    const url = new URL(request.url ?? '/', 'http://fake')
    const route = `${request.method} ${url.pathname}`
    const instead = this.intercept(route, text)
    if (instead) return send(response, instead[0], instead[1])
    if (route === 'GET /health') {
      const running = [...this.jobs.values()].find((job) => job.state === 'running')
      return send(response, 200, {
        status: 'healthy',
        service: 'ml-matching-trainer',
        timestamp: pythonNow(),
        activeVersion: this.activeVersion,
        outcomes: this.stored.size,
        ...(running ? {runningJob: running.job} : {})
      })
    }
    if (route === 'GET /health/ready') return send(response, 200, {status: 'ready'})
    if (route === 'POST /outcomes') {
      if (!json(request, response)) return
      const body = parse(text)
      if (body === undefined) return fail(response, 400, 'invalid_input', MALFORMED)
      return this.#outcomes(response, body)
    }
    if (route === 'POST /predictions' && this.ledger) {
      if (!json(request, response)) return
      const body = parse(text)
      if (body === undefined) return fail(response, 400, 'invalid_input', MALFORMED)
      return this.#predictions(response, body)
    }
    if (route === 'POST /train') {
      if (!authorized(request, response, this.token)) return
      if (text.trim())
        return fail(response, 501, 'not_implemented', 'this fake trains on stored outcomes only')
      const async =
        url.searchParams.get('wait') === '0' || /respond-async/i.test(String(request.headers.prefer ?? ''))
      return this.#train(response, async)
    }
    const job = /^GET \/train\/([^/]+)$/.exec(route)
    if (job) {
      const view = this.jobs.get(decodeURIComponent(job[1]))
      if (!view)
        return fail(response, 404, 'job_not_found', `no training job \`${decodeURIComponent(job[1])}\``)
      return send(response, 200, view)
    }
    return fail(response, 404, 'not_found', `no route for ${request.method} ${url.pathname}`)
  }

  /**
   * `POST /outcomes`: one `{id?, features, outcome}` or `{outcomes: [...]}`; all stored or none.
   *
   * @param {http.ServerResponse} response
   * @param {any} body
   */
  #outcomes(response, body) {
    const batch = Array.isArray(body?.outcomes)
    // An outcome by prediction may be 1 or 0, as the original write-up's callers send it.
    /** @type {Array<{id: string, features?: Record<string, number>, predictionId?: string, outcome: boolean}>} */
    const items = (batch ? body.outcomes : [body]).map((/** @type {any} */ o) =>
      o?.predictionId === undefined
        ? {id: o.id ?? randomUUID().replaceAll('-', ''), features: o.features, outcome: o.outcome}
        : {
            id: o.predictionId,
            predictionId: o.predictionId,
            outcome: o.outcome === 1 || o.outcome === 0 ? o.outcome === 1 : o.outcome
          }
    )
    // Every outcome is decoded (and refused) before any is compared with what is stored.
    for (const [i, item] of items.entries()) {
      const where = batch ? `outcome ${i}: ` : ''
      if (item.predictionId !== undefined) {
        if (typeof item.outcome !== 'boolean') {
          const detail = `${where}field \`outcome\`: expected true or false (or 1 or 0), got ${kind(item.outcome)}`
          return fail(response, 400, 'invalid_input', detail)
        }
        if (!isPredictionId(item.predictionId)) {
          const detail =
            `${where}field \`predictionId\`: expected a prediction id as the runtime answers it (a UUIDv7), ` +
            `got ${kind(item.predictionId)}`
          return fail(response, 400, 'invalid_input', detail)
        }
        continue
      }
      try {
        readRow(TRAINER_FEATURES, item.features, SCRATCH, 0, undefined)
      } catch (error) {
        return fail(
          response,
          400,
          'invalid_input',
          `${where}features: ${/** @type {Error} */ (error).message}`
        )
      }
    }
    for (const item of items) {
      const known = this.stored.get(item.id)
      const waiting = this.pending.get(item.id)
      if (waiting !== undefined && waiting !== item.outcome) {
        const detail =
          `prediction \`${item.id}\` already has the outcome ${waiting ? 'True' : 'False'}; ` +
          'a retry must send the same, and a prediction has one outcome'
        return fail(response, 409, 'outcome_conflict', detail)
      }
      const other =
        item.predictionId === undefined
          ? known &&
            JSON.stringify(known) !== JSON.stringify({features: item.features, outcome: item.outcome})
          : known !== undefined && known.outcome !== item.outcome
      if (other) {
        const what =
          item.predictionId === undefined ? `outcome \`${item.id}\`` : `prediction \`${item.id}\`'s outcome`
        const detail =
          `${what} is already stored with other features or another outcome; ` +
          'a retry must send the same, a new outcome needs a new id'
        return fail(response, 409, 'outcome_conflict', detail)
      }
    }
    let stored = 0
    let pending = 0
    for (const {id, features, predictionId, outcome} of items) {
      if (this.stored.has(id) || this.pending.has(id)) continue
      if (predictionId !== undefined && !this.predictions.has(predictionId)) {
        this.pending.set(predictionId, outcome)
        pending++
        continue
      }
      const row = predictionId === undefined ? features : this.predictions.get(predictionId).features
      this.stored.set(id, {features: /** @type {Record<string, number>} */ (row), outcome})
      stored++
    }
    this.#untrained += stored
    if (this.loseAnswers > 0) {
      this.loseAnswers--
      return response.destroy() // stored, but the client never hears so
    }
    const ids = items.map((item) => item.id)
    send(response, 200, {
      stored,
      duplicates: items.length - stored - pending,
      total: this.stored.size,
      untrained: this.#untrained,
      ids,
      pending
    })
  }

  /**
   * `POST /predictions`: `{rows: [...]}` of ledger rows; all stored or none; pending outcomes join.
   *
   * @param {http.ServerResponse} response
   * @param {any} body
   */
  #predictions(response, body) {
    // Refused in msgspec's words, as the trainer refuses a LedgerBatch (the cases the tests send).
    const rows = body?.rows
    if (!Array.isArray(rows))
      return fail(response, 400, 'invalid_input', 'Object missing required field `rows`')
    if (rows.length === 0 || rows.length > 10_000) {
      const bound = rows.length === 0 ? '>= 1' : '<= 10000'
      return fail(response, 400, 'invalid_input', `Expected \`array\` of length ${bound} - at \`$.rows\``)
    }
    for (const [i, row] of rows.entries()) {
      const missing = ['predictionId', 'at', 'version', 'probability', 'features'].find((k) => !(k in row))
      if (missing) {
        const detail = `Object missing required field \`${missing}\` - at \`$.rows[${i}]\``
        return fail(response, 400, 'invalid_input', detail)
      }
      if (!isPredictionId(row.predictionId)) {
        const detail = `Expected \`str\` matching regex '${UUID7.source}' - at \`$.rows[${i}].predictionId\``
        return fail(response, 400, 'invalid_input', detail)
      }
    }
    for (const [i, row] of rows.entries()) {
      const problem = this.#rowProblem(row, i)
      if (problem) return fail(response, 400, 'invalid_input', problem)
    }
    for (const row of rows) {
      const known = this.predictions.get(row.predictionId)
      if (known && JSON.stringify(known) !== JSON.stringify(row)) {
        const detail =
          `prediction \`${row.predictionId}\` is already stored with other content; a resend must ` +
          'send the same row (prediction ids are unique: a new prediction needs a new id)'
        return fail(response, 409, 'prediction_conflict', detail)
      }
    }
    let stored = 0
    let joined = 0
    for (const row of rows) {
      if (this.predictions.has(row.predictionId)) continue
      this.predictions.set(row.predictionId, row)
      stored++
      const outcome = this.pending.get(row.predictionId)
      if (outcome === undefined) continue
      this.pending.delete(row.predictionId)
      this.stored.set(row.predictionId, {features: row.features, outcome})
      this.#untrained++
      joined++
    }
    if (this.loseLedgerAnswers > 0) {
      this.loseLedgerAnswers--
      return response.destroy() // stored, but the client never hears so
    }
    send(response, 200, {stored, duplicates: rows.length - stored, joined})
  }

  /**
   * `POST /train` on the stored training outcomes (those not kept for evaluation).
   *
   * @param {http.ServerResponse} response
   * @param {boolean} async
   */
  #train(response, async) {
    const id = randomUUID().replaceAll('-', '').slice(0, 16)
    const createdAt = new Date().toISOString()
    const training = [...this.stored].filter(([id]) => !isEvaluation(id)).map(([, o]) => o)
    const positives = training.filter((o) => o.outcome).length
    const where = 'the stored training outcomes'
    const reason =
      training.length < MIN_ROWS
        ? `${where}: ${training.length} rows; training needs at least ${MIN_ROWS}`
        : positives === 0 || positives === training.length
          ? `${where}: only one class present (every outcome is ${positives ? 'true' : 'false'}); need both`
          : undefined
    const result = reason
      ? {status: 'rejected', job: id, reason}
      : this.#trained(id, training.length, positives)
    const state = reason ? 'rejected' : 'succeeded'
    const view = {
      job: id,
      state,
      kind: 'manual',
      source: 'stored',
      createdAt,
      progress: [],
      startedAt: createdAt
    }
    if (async) {
      this.jobs.set(id, {...view, state: 'running'})
      send(response, 202, this.jobs.get(id), {
        location: `/train/${id}`,
        'preference-applied': 'respond-async'
      })
      // It finishes once answered: a test polls it as it polls the trainer's.
      setImmediate(() => this.jobs.set(id, {...view, finishedAt: new Date().toISOString(), result}))
      return
    }
    this.jobs.set(id, {...view, finishedAt: new Date().toISOString(), result})
    send(response, reason ? 422 : 200, result)
  }

  /**
   * A successful training's answer, in the trainer's shape.
   *
   * @param {string} job
   * @param {number} rows
   * @param {number} positives
   */
  #trained(job, rows, positives) {
    const stamp = new Date().toISOString().slice(0, 19)
    const modelVersion = stamp.replace(/-|:/g, '').replace('T', '_')
    const held = Math.round(rows * 0.2)
    this.activeVersion = modelVersion
    this.#untrained = 0
    return {
      status: 'success',
      job,
      metrics: {accuracy: 0.8, precision: 0.8, recall: 0.75, f1_score: 0.77, cv_score: 0.78, cv_std: 0.05},
      samples: rows,
      modelVersion,
      timestamp: `${stamp}Z`,
      promoted: true,
      decision: {
        promoted: true,
        reason: 'the first version of the store (parity passed, max |dp| 1.4e-07)',
        champion: null,
        candidateRocAuc: 0.84,
        championRocAuc: null,
        baselineRocAuc: 0.8,
        rows: held,
        positives: Math.round((held * positives) / rows),
        rowsSource: 'held-out rows of this training',
        tolerance: 0.01,
        parityMaxAbsDiff: 1.4e-7,
        warnings: []
      }
    }
  }
}

/**
 * Whether the trainer keeps an outcome for evaluation: the first 4 bytes of sha256(id) below
 * EVALUATION_SHARE · 2³² (its `is_evaluation`).
 *
 * @param {string} id
 */
function isEvaluation(id) {
  return createHash('sha256').update(id).digest().readUInt32BE(0) < EVALUATION_SHARE * 2 ** 32
}

// ---------------------------------------------------------------------------------------------
// The real Python services

/** `$ML_MATCHING_PYTHON`: the Python with ml-matching installed; without it the live tests skip. */
export const PYTHON = process.env.ML_MATCHING_PYTHON

/**
 * `python -m ml_matching.runtime` or `ml_matching.trainer`, started in the repository with `env`
 * (over this process's), ready once `readyPath` answers 200; `start()` again after `stop()`
 * restarts it on the same port, as after a crash.
 */
export class PythonService {
  /** @type {ChildProcess | undefined} */
  child
  /** The last lines it printed, for a failure's message. */
  output = ''

  /**
   * @param {'runtime' | 'trainer'} name
   * @param {{port: number, env: Record<string, string>, readyPath: string, readyTimeoutMs?: number}} options
   */
  constructor(name, {port, env, readyPath, readyTimeoutMs = 30_000}) {
    this.name = name
    this.url = `http://127.0.0.1:${port}`
    this.env = env
    this.readyPath = readyPath
    this.readyTimeoutMs = readyTimeoutMs
  }

  /** @throws {Error} it exited, or did not become ready in time; the message ends with its output. */
  async start() {
    const child = spawn(/** @type {string} */ (PYTHON), ['-m', `ml_matching.${this.name}`], {
      cwd: REPO,
      env: {...process.env, LOG_LEVEL: 'WARNING', ...this.env},
      stdio: ['ignore', 'pipe', 'pipe'],
      detached: true // its own process group, which stop() ends whole (see there)
    })
    this.child = child
    /** @param {Buffer} chunk */
    const keep = (chunk) => void (this.output = (this.output + chunk).slice(-2000))
    child.stdout?.on('data', keep)
    child.stderr?.on('data', keep)
    /** @type {string | undefined} */
    let exited
    child.once('exit', (code, signal) => void (exited = `exited (${signal ?? code})`))
    child.once('error', (error) => void (exited = `could not start (${error.message})`))
    const what = `\`${PYTHON} -m ml_matching.${this.name}\` ready`
    try {
      await waitFor(
        async () => {
          if (exited) throw new Error(exited)
          const response = await fetch(this.url + this.readyPath, {signal: AbortSignal.timeout(1000)}).catch(
            () => undefined
          )
          await response?.arrayBuffer()
          return response?.status === 200
        },
        {timeoutMs: this.readyTimeoutMs, intervalMs: 100, what}
      )
    } catch (error) {
      const tail = this.output.trim().split('\n').slice(-5).join(' | ')
      throw new Error(`${what}: ${/** @type {Error} */ (error).message}: ${tail}`)
    }
  }

  /**
   * Stop it, with the processes it started, and wait for it to exit (SIGKILL if it has not within
   * 5 s). The trainer trains in `spawn`ed workers that outlive it: left alone, one goes on writing
   * into a store the test has removed.
   *
   * @param {NodeJS.Signals} [signal]
   */
  async stop(signal = 'SIGTERM') {
    const pid = this.child?.pid
    if (!this.child || pid === undefined) return
    const running = this.child.exitCode === null && this.child.signalCode === null
    const exit = running ? once(this.child, 'exit') : Promise.resolve()
    killGroup(pid, signal)
    const timer = setTimeout(() => killGroup(pid, 'SIGKILL'), 5000)
    await exit
    clearTimeout(timer)
  }
}

/**
 * Signal every process of the group `pid` leads (the service started by PythonService).
 *
 * @param {number} pid
 * @param {NodeJS.Signals} signal
 */
function killGroup(pid, signal) {
  try {
    process.kill(-pid, signal)
  } catch {
    // ESRCH: the group is gone already.
  }
}
