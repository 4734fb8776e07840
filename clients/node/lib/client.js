/**
 * `createClient`: one object for everything a Node service asks of ml-matching. It composes the
 * parts, each in its own module:
 *
 * - `runtime-client.js`: scoring, with fallback to a local scorer and recovery; health, models.
 * - `trainer-client.js`: outcomes that are never lost, trainings, jobs.
 * - `download.js`: verified downloads of a version.
 * - `follow.js`: a local model that follows the version the runtime serves (and its experiment and
 *   holdout).
 * - `http.js`: the one request helper under all of them; `options.js`: the options, checked.
 */

import {Downloader} from './download.js'
import {FollowingModel} from './follow.js'
import {Service} from './http.js'
import {readOptions} from './options.js'
import {LedgerQueue, Outbox, SpoolFile} from './outbox.js'
import {RuntimeClient} from './runtime-client.js'
import {TrainerClient} from './trainer-client.js'
import {describe} from './sidecar.js'

/** @import {Experiment} from './assignment.js' */
/** @import {Holdout} from './holdout.js' */
/** @import {ArtifactCorruptError, InvalidInputError, OutcomeQueueFullError, RequestRejectedError} from './errors.js' */
/** @import {ExplanationUnavailableError, ServiceUnavailableError, SettingsError} from './errors.js' */
/** @import {FetchOptions} from './download.js' */
/** @import {FollowOptions} from './follow.js' */
/** @import {OnnxModel} from './model.js' */
/** @import {ClientOptions, Logger} from './options.js' */
/** @import {BatchOptions, Health, LoadResult, ModelSummary, PredictOptions, SourcedBatchPrediction, SourcedPrediction} from './runtime-client.js' */
/** @import {Sidecar} from './sidecar.js' */
/** @import {PredictionOutcomeResult, RecordResult, TrainOptions, TrainerStatus} from './trainer-client.js' */
/** @import {LedgerMode} from './ledger.js' */

/**
 * @typedef Status
 *   What the seed's `ml-status` endpoint showed, and what waits.
 * @property {{reachable: boolean, modelVersion: string | null, activeVersion: string | null, error?: string}} runtime
 * @property {TrainerStatus | null} trainer
 *   `null` when no `trainerUrl` is configured.
 * @property {boolean} fallback
 *   True while predictions come from the local model.
 * @property {string | null} localVersion
 * @property {number} outcomesWaiting
 * @property {number} predictionsWaiting
 *   Prediction-ledger rows (of in-process scoring) that wait for the trainer.
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

/** A client of one runtime (and, with `trainerUrl`, its trainer). Made by {@link createClient}. */
export class Client {
  /** @type {RuntimeClient} */
  #runtime
  /** @type {TrainerClient} */
  #trainer
  /** @type {Downloader} */
  #downloads
  /** @type {Logger} */
  #logger
  /** @type {LedgerMode} */
  #ledgerMode

  /**
   * @param {ClientOptions} options
   * @throws {SettingsError} an option that cannot be used, named.
   */
  constructor(options) {
    const settings = readOptions(options)
    const runtime = new Service(settings.runtimeUrl, settings.timeoutMs)
    const trainer = settings.trainerUrl ? new Service(settings.trainerUrl, settings.timeoutMs) : undefined
    this.#logger = settings.logger
    this.#ledgerMode = settings.ledger
    this.#runtime = new RuntimeClient(runtime, settings)
    this.#downloads = new Downloader(runtime, settings.downloadTimeoutMs)
    const spool = new SpoolFile(settings.spoolFile)
    const outbox = new Outbox(settings.queueLimit, spool)
    const ledger = new LedgerQueue(settings.ledgerLimit, spool)
    this.#trainer = new TrainerClient(trainer, outbox, ledger, settings)
  }

  /** True while the service is considered down and scoring is local. */
  get degraded() {
    return this.#runtime.degraded
  }

  /**
   * Score one match (`POST /predict`), locally if the service is unreachable.
   *
   * @param {Record<string, number>} row
   * @param {PredictOptions} [options]
   *   `explain: true` asks for the row's contributions (`?explain=true`; locally, the version's
   *   explainer graph). `unit`: the unit the row is for (a brand id, a pair id), sent as
   *   `ML-Unit-Key`: under an experiment it decides the arm (locally too, with `followModel`).
   * @returns {Promise<SourcedPrediction>}
   *   The runtime's answer (with its `predictionId`, and `experiment` and `arm` when the row is in
   *   one), and where it came from.
   * @throws {InvalidInputError}
   *   A `unit` the runtime refuses (empty, a lone surrogate, over 4096 UTF-8 bytes), before anything is sent.
   * @throws {RequestRejectedError}
   *   The service answered 4xx (e.g. 400 for a bad row, 409 `explanation_unavailable`); `.detail`
   *   is its message.
   * @throws {ServiceUnavailableError}
   *   The service is unreachable and no `local` scorer is configured.
   * @throws {ExplanationUnavailableError}
   *   With `explain`, scored locally by a scorer that cannot explain (`weightedModel`).
   */
  predict(row, options) {
    return this.#runtime.predict(row, options)
  }

  /**
   * Score many matches (`POST /predict/batch`), locally if the service is unreachable.
   *
   * @param {ReadonlyArray<Record<string, number>>} rows
   * @param {BatchOptions} [options]
   *   `explain: true` asks for each row's contributions, as {@link Client.predict}. `units`: one
   *   unit key per row, in order (the runtime's `"units"`).
   * @returns {Promise<SourcedBatchPrediction>}
   * @throws {InvalidInputError} `units` that is not one valid key per row, before anything is sent.
   * @throws {RequestRejectedError}
   * @throws {ServiceUnavailableError}
   * @throws {ExplanationUnavailableError}
   */
  predictBatch(rows, options) {
    return this.#runtime.predictBatch(rows, options)
  }

  /**
   * The service's liveness answer (`GET /health`). Never falls back.
   *
   * @returns {Promise<Health>}
   */
  health() {
    return this.#runtime.health()
  }

  /**
   * The versions in the service's store (`GET /models`).
   *
   * @returns {Promise<Array<ModelSummary>>}
   */
  models() {
    return this.#runtime.models()
  }

  /**
   * One version's sidecar (`GET /models/{version}`).
   *
   * @param {string} version
   * @returns {Promise<Sidecar>}
   */
  model(version) {
    return this.#runtime.model(version)
  }

  /**
   * Make the service verify and serve `version` (`POST /models/{version}/load`, admin token).
   *
   * @param {string} version
   * @returns {Promise<LoadResult>}
   * @throws {SettingsError} no `adminToken` option.
   */
  loadVersion(version) {
    return this.#runtime.loadVersion(version)
  }

  /**
   * Record how a collaboration turned out (`POST /outcomes` on the trainer): of a prediction, by
   * the `predictionId` its answer carried (the trainer takes the features from its prediction
   * ledger), or with the features.
   *
   * When the trainer cannot be reached (timeout, connection failure, 5xx) the outcome is queued
   * (and appended to `spoolFile`) and resent, with its id, once the trainer answers again; a 4xx
   * is the caller's mistake and is thrown.
   *
   * @overload
   * @param {{predictionId: string, outcome: boolean}} judged
   * @returns {Promise<PredictionOutcomeResult>}
   *   `state: 'pending'`: stored, and joined once the prediction's ledger row reaches the trainer.
   * @throws {TypeError} `predictionId` is not a UUIDv7, or `outcome` not a boolean.
   * @throws {RequestRejectedError} the trainer refused it (e.g. 409: another outcome for this prediction).
   * @throws {OutcomeQueueFullError} the trainer is unreachable and `queueLimit` outcomes already wait.
   */
  /**
   * @overload
   * @param {Record<string, number>} features
   * @param {boolean} outcome
   * @param {{id?: string}} [options]
   *   `id`: yours, to make retries safe across processes; by default a new UUID.
   * @returns {Promise<RecordResult>}
   * @throws {RequestRejectedError} the trainer refused it (e.g. 400 naming the feature, 409 an id reused).
   * @throws {OutcomeQueueFullError} the trainer is unreachable and `queueLimit` outcomes already wait.
   */
  /**
   * @param {any} first
   * @param {boolean} [outcome]
   * @param {{id?: string}} [options]
   * @returns {Promise<RecordResult | PredictionOutcomeResult>}
   */
  recordOutcome(first, outcome, options) {
    if (outcome === undefined && typeof first === 'object' && first !== null && 'predictionId' in first) {
      return this.#trainer.recordPredictionOutcome(first)
    }
    return this.#trainer.recordOutcome(first, /** @type {boolean} */ (outcome), options)
  }

  /** How many outcomes wait for the trainer. */
  get outcomesWaiting() {
    return this.#trainer.outcomesWaiting
  }

  /** How many prediction-ledger rows (of in-process scoring) wait for the trainer. */
  get predictionsWaiting() {
    return this.#trainer.predictionsWaiting
  }

  /**
   * How many prediction-ledger rows were dropped: `ledgerLimit` rows already waited, the trainer
   * refused them (4xx), or there is no `trainerUrl`.
   */
  get predictionsDropped() {
    return this.#trainer.predictionsDropped
  }

  /**
   * Send the prediction-ledger rows that wait (`POST /predictions`), in batches. They are sent in
   * the background anyway; await this before a process exits without a `spoolFile`. Never rejects.
   *
   * @returns {Promise<void>}
   */
  flushPredictions() {
    return this.#trainer.flushPredictions()
  }

  /**
   * The experiment the runtime follows (`GET /experiment`), or null when it follows none.
   *
   * @returns {Promise<Experiment | null>}
   */
  experiment() {
    return this.#runtime.experiment()
  }

  /**
   * The long-lived holdout the runtime follows (`GET /holdout`), or null when it follows none.
   *
   * @returns {Promise<Holdout | null>}
   */
  holdout() {
    return this.#runtime.holdout()
  }

  /**
   * Send the outcomes that wait, oldest first, in batches; stops at the first unreachable answer.
   * An outcome the trainer refuses (4xx) is dropped with a warning: resending cannot fix it.
   *
   * @returns {Promise<void>}
   */
  flushOutcomes() {
    return this.#trainer.flushOutcomes()
  }

  /**
   * Train (`POST /train` on the trainer, admin token): on the stored outcomes, or on `data`.
   *
   * @param {TrainOptions} [options]
   *   `wait` (default true): the trainer answers when the job is done (up to its TRAIN_WAIT_SECONDS);
   *   false: at once, with the job to poll (`job(id)`).
   * @returns {Promise<any>}
   *   The seed's answer (`status`, `metrics`, `samples`, `modelVersion`, `timestamp`, plus `promoted`
   *   and `decision`), or, not waiting, the job.
   */
  train(options) {
    return this.#trainer.train(options)
  }

  /**
   * A training job (`GET /train/{job}` on the trainer).
   *
   * @param {string} id
   * @returns {Promise<any>}
   */
  job(id) {
    return this.#trainer.job(id)
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
      const health = await this.#runtime.health()
      runtime = {reachable: true, modelVersion: health.modelVersion, activeVersion: health.activeVersion}
    } catch (error) {
      runtime = {reachable: false, modelVersion: null, activeVersion: null, error: describe(error)}
    }
    const trainer = await this.#trainer.status()
    return {
      runtime,
      trainer,
      fallback: this.#runtime.degraded || !runtime.reachable,
      localVersion: this.#runtime.local?.version ?? null,
      outcomesWaiting: this.#trainer.outcomesWaiting,
      predictionsWaiting: this.#trainer.predictionsWaiting
    }
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
  downloadVersion(version, dir) {
    return this.#downloads.downloadVersion(version, dir)
  }

  /**
   * Download a version from the runtime (`downloadVersion`) and load it for in-process scoring
   * (`loadModel`: sha256, signature and golden rows verified).
   *
   * @param {FetchOptions} options
   * @returns {Promise<OnnxModel>}
   */
  fetchModel(options) {
    return this.#downloads.fetchModel(options)
  }

  /**
   * A local model that follows the version the runtime serves, and the experiment and the holdout
   * it follows (see `FollowingModel`); it becomes this client's fallback when none was given. Its answers carry a
   * `predictionId`; the predictions the `ledger` option names are recorded in the trainer's
   * prediction ledger.
   *
   * @param {FollowOptions} options
   * @returns {Promise<FollowingModel>}
   *   Once the served version, and the experiment's and the holdout's versions, are loaded.
   */
  async followModel(options) {
    const model = await this.fetchModel(options)
    const trainer = this.#trainer
    const following = new FollowingModel(this, model, options, this.#logger, {
      mode: this.#ledgerMode,
      record: (rows, ready) => trainer.recordPredictions(rows, ready),
      complete: (row) => trainer.completePrediction(row)
    })
    await following.check()
    this.#runtime.fallBackTo(following)
    return following
  }
}
