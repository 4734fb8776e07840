/**
 * @typedef {import('./lib/assignment.js').Assignment} Assignment
 * @typedef {import('./lib/assignment.js').Experiment} Experiment
 * @typedef {import('./lib/client.js').Client} Client
 * @typedef {import('./lib/download.js').FetchOptions} FetchOptions
 * @typedef {import('./lib/options.js').ClientOptions} ClientOptions
 * @typedef {import('./lib/options.js').Logger} Logger
 * @typedef {import('./lib/follow.js').FollowingModel} FollowingModel
 * @typedef {import('./lib/follow.js').FollowOptions} FollowOptions
 * @typedef {import('./lib/holdout.js').Holdout} Holdout
 * @typedef {import('./lib/ledger.js').LedgerMode} LedgerMode
 * @typedef {import('./lib/ledger.js').LedgerRow} LedgerRow
 * @typedef {import('./lib/runtime-client.js').BatchOptions} BatchOptions
 * @typedef {import('./lib/runtime-client.js').Health} Health
 * @typedef {import('./lib/runtime-client.js').LoadResult} LoadResult
 * @typedef {import('./lib/runtime-client.js').LocalScorer} LocalScorer
 * @typedef {import('./lib/runtime-client.js').ModelSummary} ModelSummary
 * @typedef {import('./lib/runtime-client.js').PredictOptions} PredictOptions
 * @typedef {import('./lib/runtime-client.js').Served} Served
 * @typedef {import('./lib/runtime-client.js').Source} Source
 * @typedef {import('./lib/runtime-client.js').SourcedBatchPrediction} SourcedBatchPrediction
 * @typedef {import('./lib/runtime-client.js').SourcedPrediction} SourcedPrediction
 * @typedef {import('./lib/errors.js').ArtifactCheck} ArtifactCheck
 * @typedef {import('./lib/errors.js').InvalidReason} InvalidReason
 * @typedef {import('./lib/drift.js').DriftOptions} DriftOptions
 * @typedef {import('./lib/drift.js').DriftReport} DriftReport
 * @typedef {import('./lib/model.js').LoadOptions} LoadOptions
 * @typedef {import('./lib/model.js').OnnxModel} OnnxModel
 * @typedef {import('./lib/scorer.js').BatchPrediction} BatchPrediction
 * @typedef {import('./lib/scorer.js').ScoreOptions} ScoreOptions
 * @typedef {import('./lib/scorer.js').LocalSource} LocalSource
 * @typedef {import('./lib/scorer.js').Prediction} Prediction
 * @typedef {import('./lib/scorer.js').RowScore} RowScore
 * @typedef {import('./lib/sidecar.js').Feature} Feature
 * @typedef {import('./lib/sidecar.js').Sidecar} Sidecar
 * @typedef {import('./lib/trainer-client.js').PredictionOutcomeResult} PredictionOutcomeResult
 * @typedef {import('./lib/trainer-client.js').RecordResult} RecordResult
 * @typedef {import('./lib/validate.js').Row} Row
 * @typedef {import('./lib/weighted.js').WeightedModel} WeightedModel
 * @typedef {import('./lib/weighted.js').WeightedOptions} WeightedOptions
 */

export {armOf, bucket} from './lib/assignment.js'
export {createClient} from './lib/client.js'
export {
  ArtifactCorruptError,
  ExplanationUnavailableError,
  InvalidInputError,
  MLMatchingError,
  OutcomeQueueFullError,
  RequestRejectedError,
  ServiceUnavailableError,
  SettingsError
} from './lib/errors.js'
export {loadModel} from './lib/model.js'
export {readSidecar} from './lib/sidecar.js'
export {weightedModel} from './lib/weighted.js'
