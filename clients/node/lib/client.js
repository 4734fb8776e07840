/**
 * HTTP client for the ml-matching runtime, with fallback to a local scorer and recovery.
 *
 * Scoring goes to the service while it answers. A timeout, a failed connection or a 5xx makes the
 * client *degraded*: it scores with `local` (results marked `source: "local"` or `"weighted"`) and
 * asks `GET /health/ready` at most once every `healthIntervalMs`; on a 200 it scores remotely
 * again. A 4xx is the caller's mistake and is thrown, never hidden by the fallback.
 */

import {createHash} from 'node:crypto'
import {mkdir, mkdtemp, rename, rm, stat, writeFile} from 'node:fs/promises'
import path from 'node:path'
import {randomUUID} from 'node:crypto'
import {
  ArtifactCorruptError,
  ExplanationUnavailableError,
  RequestRejectedError,
  ServiceUnavailableError,
  SettingsError
} from './errors.js'
import {FollowingModel} from './follow.js'
import {loadModel, MODEL_FILE} from './model.js'
import {Outbox} from './outbox.js'
import {SIDECAR_FILE, checkSidecar, describe} from './sidecar.js'

/** @import {BatchPrediction, LocalSource, Prediction, RowScore, ScoreOptions} from './scorer.js' */
/** @import {OnnxModel} from './model.js' */
/** @import {FollowOptions} from './follow.js' */
/** @import {Health as HealthAnswer, LoadResult as LoadAnswer, ModelSummary as ModelEntry} from './contract.js' */

/**
 * @typedef {'remote' | LocalSource} Source
 *   Where a result came from.
 *
 * @typedef {Prediction & {source: Source}} SourcedPrediction
 *
 * @typedef {BatchPrediction & {source: Source, predictions: Array<RowScore & {source: Source}>}} SourcedBatchPrediction
 *
 * @typedef LocalScorer
 *   What the client falls back to: a model from `loadModel` or `weightedModel`.
 * @property {LocalSource} source
 * @property {string} version
 * @property {(row: Record<string, number>, options?: ScoreOptions) => Promise<Prediction>} predict
 * @property {(rows: ReadonlyArray<Record<string, number>>, options?: ScoreOptions) => Promise<BatchPrediction>} predictBatch
 *
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
 *   A JSON Lines file keeping the outcomes that wait for the trainer, so a restart loses none.
 * @property {number} [queueLimit=10000]
 *   Most outcomes kept while the trainer is unreachable; past it `recordOutcome` throws.
 * @property {number} [retryMs=5000]
 *   While outcomes wait, how often to try the trainer again.
 * @property {number} [trainTimeoutMs=330000]
 *   How long `train()` waits for the trainer's answer (it waits up to its TRAIN_WAIT_SECONDS, 300 s).
 *
 * @typedef RecordResult
 * @property {string} id
 *   The outcome's id: the one given, or a new one. A resend with it is never stored twice.
 * @property {'stored' | 'duplicate' | 'queued'} state
 *   `queued`: the trainer could not be reached; the outcome waits (and is spooled) to be resent.
 *
 * @typedef Status
 *   What the seed's `ml-status` endpoint showed, and what waits.
 * @property {{reachable: boolean, modelVersion: string | null, activeVersion: string | null, error?: string}} runtime
 * @property {{reachable: boolean, outcomes: number | null, runningJob: string | null, error?: string} | null} trainer
 *   `null` when no `trainerUrl` is configured.
 * @property {boolean} fallback
 *   True while predictions come from the local model.
 * @property {string | null} localVersion
 * @property {number} outcomesWaiting
 *
 * @typedef {HealthAnswer} Health
 *   `GET /health` (its type is generated from the runtime's `schemas/health.response.schema.json`).
 * @typedef {ModelEntry} ModelSummary
 *   An entry of `GET /models`.
 * @typedef {LoadAnswer} LoadResult
 *   `POST /models/{version}/load`.
 *
 * @typedef FetchOptions
 * @property {string} [version]
 *   The version to fetch; by default the one the runtime serves now.
 * @property {string} dir
 *   The local store to keep versions in: `<dir>/<version>/` (created if needed).
 * @property {number} [threads=1]
 *   onnxruntime intra-op threads of the loaded model.
 */

/**
 * Make a client for the runtime at `baseUrl`.
 *
 * @param {ClientOptions} options
 * @returns {Client}
 */
export function createClient(options) {
  return new Client(options)
}

/** A client of one runtime. Made by {@link createClient}. */
export class Client {
  /** @type {string} */
  #base
  /** @type {number} */
  #timeoutMs
  /** @type {string | undefined} */
  #adminToken
  /** @type {LocalScorer | undefined} */
  #local
  /** @type {number} */
  #healthIntervalMs
  /** @type {number} */
  #downloadTimeoutMs
  /** @type {Logger} */
  #logger
  /** @type {() => number} */
  #now
  /** @type {string | undefined} */
  #trainer
  /** @type {Outbox} */
  #outbox
  /** @type {number} */
  #retryMs
  /** @type {number} */
  #trainTimeoutMs
  /** @type {ReturnType<typeof setTimeout> | undefined} */
  #retry
  /** @type {Promise<void> | undefined} */
  #flushing
  #degraded = false
  #nextProbe = 0

  /**
   * @param {ClientOptions} options
   * @throws {SettingsError} an option that cannot be used, named.
   */
  constructor(options) {
    this.#base = baseUrl(options.baseUrl)
    this.#timeoutMs = positive(options.timeoutMs ?? 2000, 'timeoutMs')
    this.#healthIntervalMs = positive(options.healthIntervalMs ?? 5000, 'healthIntervalMs')
    this.#downloadTimeoutMs = positive(options.downloadTimeoutMs ?? 60_000, 'downloadTimeoutMs')
    this.#adminToken = options.adminToken
    this.#local = options.local
    this.#logger = options.logger ?? console
    this.#now = options.now ?? (() => performance.now())
    this.#trainer = options.trainerUrl === undefined ? undefined : baseUrl(options.trainerUrl)
    this.#retryMs = positive(options.retryMs ?? 5000, 'retryMs')
    this.#trainTimeoutMs = positive(options.trainTimeoutMs ?? 330_000, 'trainTimeoutMs')
    const limit = options.queueLimit ?? 10_000
    if (!Number.isSafeInteger(limit) || limit < 1) {
      throw new SettingsError(`queueLimit must be a positive integer, got ${limit}`)
    }
    this.#outbox = new Outbox(limit, options.spoolFile)
    if (this.#outbox.size > 0) this.#scheduleRetry()
  }

  /** True while the service is considered down and scoring is local. */
  get degraded() {
    return this.#degraded
  }

  /**
   * Score one match (`POST /predict`), locally if the service is unreachable.
   *
   * @param {Record<string, number>} row
   * @param {ScoreOptions} [options]
   *   `explain: true` asks for the row's contributions (`?explain=true`; locally, the version's
   *   explainer graph).
   * @returns {Promise<SourcedPrediction>}
   * @throws {RequestRejectedError}
   *   The service answered 4xx (e.g. 400 for a bad row, 409 `explanation_unavailable`); `.detail`
   *   is its message.
   * @throws {ServiceUnavailableError}
   *   The service is unreachable and no `local` scorer is configured.
   * @throws {ExplanationUnavailableError}
   *   With `explain`, scored locally by a scorer that cannot explain (`weightedModel`).
   */
  async predict(row, options = {}) {
    const explain = Boolean(options.explain)
    const path = explain ? '/predict?explain=true' : '/predict'
    /** @type {[Prediction, Source]} */
    const [result, source] = await this.#score(path, row, isPrediction, (local) =>
      local.predict(row, {explain})
    )
    if (explain) this.#requireExplained(result, path)
    return {...result, source}
  }

  /**
   * Score many matches (`POST /predict/batch`), locally if the service is unreachable.
   *
   * @param {ReadonlyArray<Record<string, number>>} rows
   * @param {ScoreOptions} [options]
   *   `explain: true` asks for each row's contributions, as {@link MLMatchingClient.predict}.
   * @returns {Promise<SourcedBatchPrediction>}
   * @throws {RequestRejectedError}
   * @throws {ServiceUnavailableError}
   * @throws {ExplanationUnavailableError}
   */
  async predictBatch(rows, options = {}) {
    const explain = Boolean(options.explain)
    const path = explain ? '/predict/batch?explain=true' : '/predict/batch'
    /** @type {[BatchPrediction, Source]} */
    const [result, source] = await this.#score(path, {instances: rows}, isBatch, (local) =>
      local.predictBatch(rows, {explain})
    )
    if (explain) this.#requireExplained(result, path)
    const predictions = result.predictions.map((item) => ({...item, source}))
    return {...result, predictions, source}
  }

  /**
   * The service's liveness answer (`GET /health`). Never falls back.
   *
   * @returns {Promise<Health>}
   */
  async health() {
    return this.#request('GET', '/health')
  }

  /**
   * The versions in the service's store (`GET /models`).
   *
   * @returns {Promise<Array<ModelSummary>>}
   */
  async models() {
    return this.#request('GET', '/models')
  }

  /**
   * One version's sidecar (`GET /models/{version}`).
   *
   * @param {string} version
   * @returns {Promise<import('./sidecar.js').Sidecar>}
   */
  async model(version) {
    return this.#request('GET', `/models/${encodeURIComponent(version)}`)
  }

  /**
   * Make the service verify and serve `version` (`POST /models/{version}/load`, admin token).
   *
   * @param {string} version
   * @returns {Promise<LoadResult>}
   * @throws {SettingsError} no `adminToken` option.
   */
  async loadVersion(version) {
    if (!this.#adminToken) {
      throw new SettingsError(
        "loadVersion needs the adminToken option: createClient({adminToken}) with the runtime's ML_SERVICE_ADMIN_TOKEN"
      )
    }
    return this.#request('POST', `/models/${encodeURIComponent(version)}/load`, undefined, {
      authorization: `Bearer ${this.#adminToken}`
    })
  }

  /**
   * Record how a collaboration turned out (`POST /outcomes` on the trainer).
   *
   * When the trainer cannot be reached (timeout, connection failure, 5xx) the outcome is queued
   * (and appended to `spoolFile`) and resent, with its id, once the trainer answers again; a 4xx
   * is the caller's mistake and is thrown.
   *
   * @param {Record<string, number>} features
   * @param {boolean} outcome
   * @param {{id?: string}} [options]
   *   `id`: yours, to make retries safe across processes; by default a new UUID.
   * @returns {Promise<RecordResult>}
   * @throws {RequestRejectedError} the trainer refused it (e.g. 400 naming the feature, 409 an id reused).
   * @throws {OutcomeQueueFullError} the trainer is unreachable and `queueLimit` outcomes already wait.
   */
  async recordOutcome(features, outcome, options = {}) {
    const trainer = this.#needTrainer('recordOutcome')
    if (typeof outcome !== 'boolean') {
      throw new TypeError(`recordOutcome: outcome must be true or false, got ${typeof outcome}`)
    }
    const item = {id: options.id ?? randomUUID(), features, outcome}
    if (this.#outbox.size > 0) {
      this.#outbox.add(item) // keep the order: it goes after those already waiting
      await this.flushOutcomes()
      const waiting = this.#outbox.peek().some((queued) => queued.id === item.id)
      return {id: item.id, state: waiting ? 'queued' : 'stored'}
    }
    try {
      const answer = await this.#request('POST', '/outcomes', JSON.stringify(item), {}, trainer)
      return {id: item.id, state: answer.stored === 1 ? 'stored' : 'duplicate'}
    } catch (error) {
      if (!(error instanceof ServiceUnavailableError)) throw error
      this.#outbox.add(item)
      this.#logger.warn(`${error.message}; outcome ${item.id} queued (${this.#outbox.size} waiting)`)
      this.#scheduleRetry()
      return {id: item.id, state: 'queued'}
    }
  }

  /** How many outcomes wait for the trainer. */
  get outcomesWaiting() {
    return this.#outbox.size
  }

  /**
   * Send the outcomes that wait, oldest first, in batches; stops at the first unreachable answer.
   * An outcome the trainer refuses (4xx) is dropped with a warning: resending cannot fix it.
   *
   * @returns {Promise<void>}
   */
  flushOutcomes() {
    this.#flushing ??= this.#flush().finally(() => (this.#flushing = undefined))
    return this.#flushing
  }

  async #flush() {
    const trainer = this.#needTrainer('flushOutcomes')
    while (this.#outbox.size > 0) {
      const batch = this.#outbox.peek().slice(0, 500)
      try {
        await this.#request('POST', '/outcomes', JSON.stringify({outcomes: batch}), {}, trainer)
        this.#outbox.drop(batch.length)
      } catch (error) {
        if (error instanceof RequestRejectedError) {
          await this.#dropRefused(batch, trainer)
          continue
        }
        this.#scheduleRetry()
        return
      }
    }
    this.#logger.info(`ml-matching trainer at ${trainer} has every queued outcome`)
  }

  /**
   * A batch was refused: send its outcomes one by one, dropping (with a warning) each one refused.
   *
   * @param {ReadonlyArray<{id: string}>} batch
   * @param {string} trainer
   */
  async #dropRefused(batch, trainer) {
    for (const item of batch) {
      try {
        await this.#request('POST', '/outcomes', JSON.stringify(item), {}, trainer)
      } catch (error) {
        if (!(error instanceof RequestRejectedError)) throw error
        this.#logger.warn(`ml-matching trainer refused queued outcome ${item.id}: ${error.detail}; dropped`)
      }
      this.#outbox.drop(1)
    }
  }

  #scheduleRetry() {
    if (this.#retry || !this.#trainer) return
    this.#retry = setTimeout(() => {
      this.#retry = undefined
      void this.flushOutcomes().catch((error) =>
        this.#logger.warn(`ml-matching: resending outcomes failed: ${describe(error)}`)
      )
    }, this.#retryMs)
    this.#retry.unref()
  }

  /**
   * Train (`POST /train` on the trainer, admin token): on the stored outcomes, or on `data`.
   *
   * @param {{wait?: boolean, data?: {features: ReadonlyArray<Record<string, number>>, outcomes: ReadonlyArray<boolean>}}} [options]
   *   `wait` (default true): the trainer answers when the job is done (up to its TRAIN_WAIT_SECONDS);
   *   false: at once, with the job to poll (`job(id)`).
   * @returns {Promise<any>}
   *   The seed's answer (`status`, `metrics`, `samples`, `modelVersion`, `timestamp`, plus `promoted`
   *   and `decision`), or, not waiting, the job.
   */
  async train(options = {}) {
    const trainer = this.#needTrainer('train')
    if (!this.#adminToken)
      throw new SettingsError('train needs the adminToken option (the ML_SERVICE_ADMIN_TOKEN)')
    const headers = {
      authorization: `Bearer ${this.#adminToken}`,
      ...(options.wait === false ? {prefer: 'respond-async'} : {})
    }
    const body = options.data === undefined ? undefined : JSON.stringify(options.data)
    const json = {accept: 'application/json', ...headers}
    // 422 (rejected: too few rows, one class) and 500 (failed) answer with the job's result.
    const {bytes} = await this.#send('POST', '/train', body, json, this.#trainTimeoutMs, trainer, [422, 500])
    return JSON.parse(bytes.toString('utf8'))
  }

  /**
   * A training job (`GET /train/{job}` on the trainer).
   *
   * @param {string} id
   * @returns {Promise<any>}
   */
  async job(id) {
    return this.#request('GET', `/train/${encodeURIComponent(id)}`, undefined, {}, this.#needTrainer('job'))
  }

  /**
   * Which services answer, which version serves, and what waits (the seed's `ml-status`).
   *
   * @returns {Promise<Status>}
   */
  async status() {
    /** @type {Status['runtime']} */
    let runtime
    try {
      const health = await this.health()
      runtime = {reachable: true, modelVersion: health.modelVersion, activeVersion: health.activeVersion}
    } catch (error) {
      runtime = {reachable: false, modelVersion: null, activeVersion: null, error: describe(error)}
    }
    /** @type {Status['trainer']} */
    let trainer = null
    if (this.#trainer) {
      try {
        const health = await this.#request('GET', '/health', undefined, {}, this.#trainer)
        trainer = {reachable: true, outcomes: health.outcomes, runningJob: health.runningJob ?? null}
      } catch (error) {
        trainer = {reachable: false, outcomes: null, runningJob: null, error: describe(error)}
      }
    }
    const fallback = this.#degraded || !runtime.reachable
    return {
      runtime,
      trainer,
      fallback,
      localVersion: this.#local?.version ?? null,
      outcomesWaiting: this.#outbox.size
    }
  }

  /**
   * A local model that follows the version the runtime serves (see `FollowingModel`); it becomes
   * this client's fallback when none was given.
   *
   * @param {FollowOptions} options
   * @returns {Promise<FollowingModel>}
   */
  async followModel(options) {
    const model = await this.fetchModel(options)
    const following = new FollowingModel(this, model, options, this.#logger)
    this.#local ??= following
    return following
  }

  /**
   * @param {string} what
   * @returns {string}
   */
  #needTrainer(what) {
    if (!this.#trainer) throw new SettingsError(`${what} needs the trainerUrl option (the trainer's address)`)
    return this.#trainer
  }

  /**
   * Download a version's files from the runtime into `<dir>/<version>/`, each checked against
   * the sha256 the runtime sends (`Repr-Digest`) and the sidecar records. The folder is written
   * under a temporary name and renamed, so it is whole or absent; a version already there is
   * kept (versions never change).
   *
   * @param {string | undefined} version
   *   By default the version the runtime serves now.
   * @param {string} dir
   * @returns {Promise<string>}
   *   The version folder, ready for `loadModel`.
   * @throws {ArtifactCorruptError} (`check: 'sha256'`) a file that does not match its hash.
   */
  async downloadVersion(version, dir) {
    const name = version ?? (await this.#request('GET', '/health/ready')).modelVersion
    const target = path.join(dir, name)
    if (await exists(path.join(target, SIDECAR_FILE))) return target
    await mkdir(dir, {recursive: true})
    const tmp = await mkdtemp(path.join(dir, `.tmp-${name}-`))
    try {
      const sidecarBytes = await this.#download(name, SIDECAR_FILE)
      const sidecar = checkSidecar(JSON.parse(sidecarBytes.toString('utf8')))
      await writeFile(path.join(tmp, SIDECAR_FILE), sidecarBytes)
      for (const file of [MODEL_FILE, ...Object.keys(sidecar.files ?? {})]) {
        const expected = file === MODEL_FILE ? sidecar.onnx.sha256 : sidecar.files?.[file]?.sha256
        await writeFile(path.join(tmp, file), await this.#download(name, file, expected))
      }
      await rename(tmp, target)
    } catch (error) {
      await rm(tmp, {recursive: true, force: true})
      if (await exists(path.join(target, SIDECAR_FILE))) return target // another download won the rename
      throw error
    }
    return target
  }

  /**
   * Download a version from the runtime (`downloadVersion`) and load it for in-process scoring
   * (`loadModel`: sha256, signature and golden rows verified).
   *
   * @param {FetchOptions} options
   * @returns {Promise<OnnxModel>}
   */
  async fetchModel(options) {
    const folder = await this.downloadVersion(options.version, options.dir)
    return loadModel(folder, options.threads === undefined ? {} : {threads: options.threads})
  }

  /**
   * One file of a version, checked against the runtime's `Repr-Digest` and `expected` (hex).
   *
   * @param {string} version
   * @param {string} file
   * @param {string} [expected]
   * @returns {Promise<Buffer>}
   */
  async #download(version, file, expected) {
    const where = `/models/${encodeURIComponent(version)}/files/${encodeURIComponent(file)}`
    const {response, bytes} = await this.#send('GET', where, undefined, {}, this.#downloadTimeoutMs)
    const got = createHash('sha256').update(bytes).digest()
    const header = /sha-256=:([^:]+):/.exec(response.headers.get('repr-digest') ?? '')?.[1]
    const wanted = [header && Buffer.from(header, 'base64').toString('hex'), expected].filter(Boolean)
    if (wanted.length === 0 || wanted.some((hex) => hex !== got.toString('hex'))) {
      throw new ArtifactCorruptError(
        'sha256',
        `${file} of ${version} downloaded from ${this.#base} has sha256 ${got.toString('hex')}, expected ${wanted.join(' and ') || 'a Repr-Digest header'}`
      )
    }
    return bytes
  }

  /**
   * @template T
   * @param {string} path
   * @param {unknown} body
   * @param {(answer: any) => boolean} expected
   *   Whether a 2xx answer has the contract's shape (one that has not counts as a failure).
   * @param {(local: LocalScorer) => Promise<T>} scoreLocally
   * @returns {Promise<[T, Source]>}
   *   The answer, and where it came from.
   */
  async #score(path, body, expected, scoreLocally) {
    const local = this.#local
    if (local && this.#degraded && !(await this.#probe())) {
      return [await scoreLocally(local), local.source]
    }
    const text = JSON.stringify(body) // outside the try: an unserialisable row is the caller's bug
    let result
    try {
      result = await this.#request('POST', path, text)
      if (!expected(result)) {
        throw new ServiceUnavailableError(
          `ml-matching service at ${this.#base} answered POST ${path} with a body outside the contract`
        )
      }
    } catch (error) {
      if (!(error instanceof ServiceUnavailableError)) throw error
      this.#down(error)
      if (!local) throw error
      return [await scoreLocally(local), local.source]
    }
    this.#up()
    return [result, 'remote']
  }

  /**
   * An answer to `explain` without contributions came from a runtime older than explanations: the
   * service is up (no fallback, no outage), it just cannot explain.
   *
   * @param {Prediction | BatchPrediction} result
   * @param {string} path
   */
  #requireExplained(result, path) {
    if (!isExplained(result)) {
      throw new ExplanationUnavailableError(
        `ml-matching service at ${this.#base} answered POST ${path} without contributions ` +
          '(a runtime older than explanations?): update it, or score without explain'
      )
    }
  }

  /** Ask `/health/ready`, unless the last probe was under `healthIntervalMs` ago. */
  async #probe() {
    const now = this.#now()
    if (now < this.#nextProbe) return false
    this.#nextProbe = now + this.#healthIntervalMs
    try {
      await this.#request('GET', '/health/ready')
    } catch {
      return false
    }
    this.#up()
    return true
  }

  /** @param {ServiceUnavailableError} error */
  #down(error) {
    this.#nextProbe = this.#now() + this.#healthIntervalMs
    if (this.#degraded) return
    this.#degraded = true
    const fallback = this.#local
      ? `scoring with the ${this.#local.source} model ${this.#local.version} until it is ready again`
      : 'no local model to fall back to'
    this.#logger.warn(`${error.message}; ${fallback}`)
  }

  #up() {
    if (!this.#degraded) return
    this.#degraded = false
    this.#logger.info(`ml-matching service at ${this.#base} is ready again; scoring remotely`)
  }

  /**
   * One request; the answer's JSON, or a typed error.
   *
   * @param {string} method
   * @param {string} path
   * @param {string} [body]
   * @param {Record<string, string>} [headers]
   * @param {string} [base]
   *   The service: the runtime (default) or the trainer.
   * @returns {Promise<any>}
   */
  async #request(method, path, body, headers = {}, base = this.#base) {
    const json = {accept: 'application/json', ...headers}
    const {bytes} = await this.#send(method, path, body, json, this.#timeoutMs, base)
    const data = parse(bytes.toString('utf8'))
    if (data === undefined) {
      throw new ServiceUnavailableError(
        `ml-matching service at ${base} is unreachable: ${method} ${path} answered with a body that is not JSON`
      )
    }
    return data
  }

  /**
   * One request; the 2xx answer's bytes, or a typed error (4xx: rejected, anything else: unavailable).
   *
   * @param {string} method
   * @param {string} path
   * @param {string | undefined} body
   * @param {Record<string, string>} headers
   * @param {number} timeoutMs
   * @param {string} [base]
   * @param {ReadonlyArray<number>} [answers]
   *   Statuses beyond 2xx whose body is an answer, not an error (a rejected or failed training).
   * @returns {Promise<{response: Response, bytes: Buffer}>}
   */
  async #send(method, path, body, headers, timeoutMs, base = this.#base, answers = []) {
    const what = `${method} ${path}`
    let response
    let bytes
    try {
      response = await fetch(base + path, {
        method,
        headers: {...(body === undefined ? {} : {'content-type': 'application/json'}), ...headers},
        ...(body === undefined ? {} : {body}),
        signal: AbortSignal.timeout(timeoutMs)
      })
      bytes = Buffer.from(await response.arrayBuffer())
    } catch (error) {
      throw new ServiceUnavailableError(
        `ml-matching service at ${base} is unreachable: ${what} ${failure(error, timeoutMs)}`,
        {cause: error}
      )
    }
    if (response.ok || answers.includes(response.status)) return {response, bytes}
    const text = bytes.toString('utf8')
    const data = parse(text)
    const answer = typeof data === 'object' && data !== null ? data : {}
    const code = typeof answer.error === 'string' ? answer.error : `http_${response.status}`
    if (response.status >= 400 && response.status < 500) {
      const detail = typeof answer.detail === 'string' ? answer.detail : text.slice(0, 200)
      throw new RequestRejectedError(what, response.status, code, detail)
    }
    throw new ServiceUnavailableError(
      `ml-matching service at ${base} is unreachable: ${what} answered ${response.status} ${text.slice(0, 200)}`,
      {status: response.status, code: typeof answer.error === 'string' ? answer.error : undefined}
    )
  }
}

/** @param {any} answer */
function isPrediction(answer) {
  return typeof answer === 'object' && answer !== null && typeof answer.score === 'number'
}

/** @param {any} answer */
function isExplained(answer) {
  return typeof answer.baseValue === 'number' && typeof answer.explanationScale === 'string'
}

/** @param {any} answer */
function isBatch(answer) {
  return typeof answer === 'object' && answer !== null && Array.isArray(answer.predictions)
}

/**
 * @param {string} text
 * @returns {any}
 */
function parse(text) {
  try {
    return JSON.parse(text)
  } catch {
    return undefined
  }
}

/**
 * @param {unknown} error
 * @param {number} timeoutMs
 */
function failure(error, timeoutMs) {
  if (error instanceof Error && error.name === 'TimeoutError') return `timed out after ${timeoutMs} ms`
  const cause =
    error instanceof Error ? /** @type {{code?: string, message?: string}} */ (error.cause) : undefined
  const reason = [cause?.code, cause?.message].filter(Boolean).join(': ')
  return `failed (${reason || (error instanceof Error ? error.message : String(error))})`
}

/**
 * @param {number} value
 * @param {string} name
 */
function positive(value, name) {
  if (typeof value !== 'number' || !(value > 0) || !Number.isFinite(value)) {
    throw new SettingsError(`${name} must be a positive number of milliseconds, got ${value}`)
  }
  return value
}

/**
 * @param {string | URL} value
 * @returns {string} the URL without trailing slashes
 */
function baseUrl(value) {
  let url
  try {
    url = new URL(String(value))
  } catch {
    throw new SettingsError(`baseUrl must be an http(s) URL, got ${JSON.stringify(String(value))}`)
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') {
    throw new SettingsError(`baseUrl must be an http(s) URL, got ${url.href}`)
  }
  return url.href.replace(/\/+$/, '')
}

/** @param {string} file */
async function exists(file) {
  try {
    await stat(file)
    return true
  } catch {
    return false
  }
}
