/**
 * Load a version folder of the artifact store and score with onnxruntime-node, in-process.
 */

import {createHash} from 'node:crypto'
import {readdir, readFile, stat} from 'node:fs/promises'
import path from 'node:path'
import {ArtifactCorruptError, MLMatchingError, SettingsError} from './errors.js'
import {Scorer} from './scorer.js'
import {describe, readSidecar, SIDECAR_FILE, worstGoldenRow} from './sidecar.js'

/** @import {InferenceSession} from 'onnxruntime-node' */
/** @import {Sidecar} from './sidecar.js' */
/** @import {Values} from './validate.js' */

export const MODEL_FILE = 'model.onnx'

/** Largest |p_node − p_golden| a golden row may show before the model is refused. */
export const GOLDEN_TOLERANCE = 1e-5

/** @typedef {typeof import('onnxruntime-node')} Ort */

/** @type {Promise<Ort> | undefined} */
let loading

/**
 * onnxruntime-node, imported on first use: its native binding loads on import, and a platform
 * where it cannot load must still be able to use `weightedModel`.
 *
 * @returns {Promise<Ort>}
 */
function onnxruntime() {
  loading ??= import('onnxruntime-node').then(
    (module) => module.default,
    (error) => {
      loading = undefined
      throw new MLMatchingError(whyNoOnnxruntime(error), {cause: error, code: 'onnxruntime_unavailable'})
    }
  )
  return loading
}

/**
 * What to tell the user when onnxruntime-node does not import: not installed (a folder or link
 * install of this package brings no dependencies), or installed without a binary for this platform.
 *
 * @param {unknown} error
 */
function whyNoOnnxruntime(error) {
  const code = /** @type {{code?: unknown}} */ (error)?.code
  const fallback = 'weightedModel(sidecar) scores with the baseline in pure JavaScript'
  if (code === 'ERR_MODULE_NOT_FOUND' && describe(error).includes("'onnxruntime-node'")) {
    return (
      'onnxruntime-node is not installed beside ml-matching-client: install the client from its ' +
      'tarball (which brings it), or `ONNXRUNTIME_NODE_INSTALL=skip npm install onnxruntime-node`; ' +
      `until then ${fallback}`
    )
  }
  return `onnxruntime-node cannot be loaded on ${process.platform}/${process.arch} (${describe(error)}); ${fallback}`
}

/**
 * @typedef LoadOptions
 * @property {number} [threads=1]
 *   onnxruntime intra-op threads. One thread scores a row fastest and keeps a batch scoring
 *   exactly as its rows one by one; more only pay off for large batches.
 * @property {import('./drift.js').DriftOptions} [drift]
 *   The window `model.drift()` reads (default: the last 10,000 rows, a reading from 500).
 */

/**
 * Load a version folder and run every check before it may score.
 *
 * Checks, in order: `model.json` is complete and names this folder's version; `model.onnx` has
 * the sha256 and byte size the sidecar records; onnxruntime loads it; it has the input and
 * outputs the sidecar names, and as many input columns as features; every golden row scores
 * within 1e-5 of the probability recorded at training time.
 *
 * @param {string} versionDir
 *   e.g. `artifacts/20261126_143000`.
 * @param {LoadOptions} [options]
 * @returns {Promise<OnnxModel>}
 * @throws {ArtifactCorruptError}
 *   (as a rejection) whose `check` names the failed check: sidecar, sha256, onnx, input-width,
 *   outputs or golden-rows.
 */
export async function loadModel(versionDir, options = {}) {
  const threads = options.threads ?? 1
  if (!Number.isSafeInteger(threads) || threads < 1) {
    throw new SettingsError(`loadModel: threads must be a positive integer, got ${threads}`)
  }
  await checkVersionFolder(versionDir)
  const ort = await onnxruntime()
  const sidecar = await readSidecar(versionDir)
  const bytes = await readOnnx(versionDir, sidecar)
  const session = await createSession(ort, bytes, threads)
  /** @type {InferenceSession | null} */
  let explainer = null
  try {
    checkSignature(session, sidecar)
    explainer = await loadExplainer(ort, versionDir, sidecar, threads)
    const model = new OnnxModel(ort, sidecar, session, threads, options.drift, explainer)
    await checkGoldenRows(model)
    await checkGoldenExplanations(model)
    return model
  } catch (error) {
    await explainer?.release()
    await session.release()
    throw error
  }
}

/** A version's folder name, as the store makes it (`YYYYMMDD_HHMMSS`, and `-N` past the first). */
const VERSION_NAME = /^\d{8}_\d{6}(?:-[1-9]\d{0,5})?$/

/**
 * A mistaken path is the caller's, not a damaged version: a missing folder, a file, or a whole store
 * were each reported as a corrupt sidecar.
 *
 * @param {unknown} versionDir
 * @throws {SettingsError}
 */
async function checkVersionFolder(versionDir) {
  const hint = 'give a version folder, e.g. models/20261126_143000'
  if (typeof versionDir !== 'string' || versionDir === '') {
    throw new SettingsError(
      `loadModel: expected a version folder's path, got ${String(versionDir)} (${hint})`
    )
  }
  const found = await stat(versionDir).catch(() => undefined)
  if (!found?.isDirectory()) {
    throw new SettingsError(
      `loadModel: ${versionDir}: ${found ? 'a file, not a folder' : 'no such folder'} (${hint})`
    )
  }
  const inside = await readdir(versionDir)
  if (
    !inside.includes(SIDECAR_FILE) &&
    (inside.includes('ACTIVE') || inside.some((n) => VERSION_NAME.test(n)))
  ) {
    throw new SettingsError(
      `loadModel: ${versionDir} is a store, not a version: give one of its version folders`
    )
  }
}

/**
 * A verified ONNX model scoring in-process. Made by {@link loadModel}.
 */
export class OnnxModel extends Scorer {
  /** @type {Ort} */
  #ort
  /** @type {InferenceSession} */
  #session
  /** @type {string} */
  #input
  /** @type {string} */
  #output
  /** @type {number} */
  #positive
  /** @type {number} */
  #width
  /** @type {InferenceSession | null} */
  #explainer

  /**
   * @param {Ort} ort
   * @param {Sidecar} sidecar
   * @param {InferenceSession} session
   * @param {number} threads
   * @param {import('./drift.js').DriftOptions} [drift]
   * @param {InferenceSession | null} [explainer]
   */
  constructor(ort, sidecar, session, threads, drift, explainer = null) {
    super(sidecar, 'local', Float32Array, drift)
    this.#explainer = explainer
    this.#ort = ort
    this.#session = session
    this.#input = sidecar.onnx.inputName
    this.#output = sidecar.onnx.probabilitiesOutput
    this.#positive = sidecar.onnx.positiveClassIndex
    this.#width = sidecar.features.length
    /**
     * onnxruntime intra-op threads.
     * @readonly
     */
    this.threads = threads
    /**
     * The onnxruntime-node version scoring, e.g. `1.30.0`.
     * @readonly
     */
    this.onnxruntimeVersion = ort.env.versions.node ?? ort.env.versions.common
  }

  /**
   * @protected
   * @param {Values} x
   * @param {number} rows
   * @returns {Promise<Float32Array>}
   */
  async scoreMatrix(x, rows) {
    const input = new this.#ort.Tensor('float32', /** @type {Float32Array} */ (x), [rows, this.#width])
    const result = await this.#session.run({[this.#input]: input}, [this.#output])
    const proba = /** @type {Float32Array} */ (result[this.#output].data)
    const classes = proba.length / rows
    const p = new Float32Array(rows)
    for (let r = 0; r < rows; r++) p[r] = proba[r * classes + this.#positive]
    return p
  }

  /**
   * @protected
   * @param {Values} x
   * @param {number} rows
   * @returns {Promise<ArrayLike<number>>}
   */
  async contributionMatrix(x, rows) {
    const explanation = this.sidecar.explanation
    if (!this.#explainer || !explanation) return super.contributionMatrix(x, rows)
    const input = new this.#ort.Tensor('float32', /** @type {Float32Array} */ (x), [rows, this.#width])
    const result = await this.#explainer.run({[this.#input]: input}, [explanation.output])
    return /** @type {Float32Array} */ (result[explanation.output].data)
  }

  /**
   * Free the onnxruntime sessions; the model cannot score afterwards.
   *
   * @returns {Promise<void>}
   */
  async close() {
    await this.#explainer?.release()
    await this.#session.release()
  }
}

/**
 * The explainer graph of a version that has one, checked like `model.onnx` (check `explain`).
 *
 * @param {Ort} ort
 * @param {string} versionDir
 * @param {Sidecar} sidecar
 * @param {number} threads
 * @returns {Promise<InferenceSession | null>}
 */
async function loadExplainer(ort, versionDir, sidecar, threads) {
  const explanation = sidecar.explanation
  if (!explanation) return null
  const pinned = sidecar.files?.[explanation.file]
  if (!pinned) throw new ArtifactCorruptError('explain', `the sidecar's files do not pin ${explanation.file}`)
  let bytes
  try {
    bytes = await readFile(path.join(versionDir, explanation.file))
  } catch (error) {
    throw new ArtifactCorruptError('explain', `cannot read ${explanation.file}: ${describe(error)}`)
  }
  const digest = createHash('sha256').update(bytes).digest('hex')
  if (digest !== pinned.sha256 || bytes.length !== pinned.bytes) {
    throw new ArtifactCorruptError(
      'explain',
      `${explanation.file} has sha256 ${digest} (${bytes.length} bytes), ` +
        `sidecar expects ${pinned.sha256} (${pinned.bytes} bytes)`
    )
  }
  const session = await createSession(ort, bytes, threads, explanation.file, 'explain')
  const meta = session.outputMetadata.find((m) => m.name === explanation.output)
  const width = meta?.isTensor ? meta.shape.at(-1) : undefined
  if (session.inputNames.join() !== sidecar.onnx.inputName || width !== sidecar.features.length) {
    await session.release()
    throw new ArtifactCorruptError(
      'explain',
      `${explanation.file} takes ${JSON.stringify(session.inputNames)} and gives ` +
        `${JSON.stringify(session.outputNames)}: expected \`${sidecar.onnx.inputName}\` and ` +
        `\`${explanation.output}\` with ${sidecar.features.length} columns`
    )
  }
  return session
}

/**
 * @param {string} versionDir
 * @param {Sidecar} sidecar
 */
async function readOnnx(versionDir, sidecar) {
  let bytes
  try {
    bytes = await readFile(path.join(versionDir, MODEL_FILE))
  } catch (error) {
    throw new ArtifactCorruptError('onnx', `cannot read ${MODEL_FILE}: ${describe(error)}`)
  }
  const digest = createHash('sha256').update(bytes).digest('hex')
  if (digest !== sidecar.onnx.sha256 || bytes.length !== sidecar.onnx.bytes) {
    throw new ArtifactCorruptError(
      'sha256',
      `${MODEL_FILE} has sha256 ${digest} (${bytes.length} bytes), ` +
        `sidecar expects ${sidecar.onnx.sha256} (${sidecar.onnx.bytes} bytes)`
    )
  }
  return bytes
}

/**
 * @param {Ort} ort
 * @param {Uint8Array} bytes
 * @param {number} threads
 * @param {string} [file]
 * @param {'onnx' | 'explain'} [check]
 */
async function createSession(ort, bytes, threads, file = MODEL_FILE, check = 'onnx') {
  try {
    return await ort.InferenceSession.create(bytes, {
      executionProviders: ['cpu'],
      intraOpNumThreads: threads,
      interOpNumThreads: 1,
      executionMode: 'sequential',
      graphOptimizationLevel: 'all',
      logSeverityLevel: 3,
      // Spinning threads burn a core between the requests of a mostly idle service.
      extra: {session: {intra_op: {allow_spinning: '0'}}}
    })
  } catch (error) {
    throw new ArtifactCorruptError(check, `onnxruntime-node cannot load ${file}: ${describe(error)}`)
  }
}

/**
 * @param {InferenceSession} session
 * @param {Sidecar} sidecar
 */
function checkSignature(session, sidecar) {
  const {inputName, labelOutput, probabilitiesOutput} = sidecar.onnx
  if (session.inputNames.length !== 1 || session.inputNames[0] !== inputName) {
    throw new ArtifactCorruptError(
      'input-width',
      `expected one input \`${inputName}\`, got ${JSON.stringify(session.inputNames)}`
    )
  }
  const meta = session.inputMetadata[0]
  const width = meta.isTensor ? meta.shape.at(-1) : undefined
  if (width !== sidecar.features.length) {
    throw new ArtifactCorruptError(
      'input-width',
      `model input has ${width} columns, sidecar lists ${sidecar.features.length} features`
    )
  }
  const lacking = [labelOutput, probabilitiesOutput].filter((name) => !session.outputNames.includes(name))
  if (lacking.length > 0) {
    throw new ArtifactCorruptError(
      'outputs',
      `model outputs ${JSON.stringify(session.outputNames)} lack ${JSON.stringify(lacking)}`
    )
  }
}

/**
 * Re-score the sidecar's golden rows; throw naming the worst row beyond {@link GOLDEN_TOLERANCE}.
 *
 * @param {OnnxModel} model
 * @returns {Promise<number>}
 *   The largest |difference|.
 */
export async function checkGoldenRows(model) {
  const golden = model.sidecar.goldenRows
  let got
  try {
    got = await model.probabilities(golden.map((row) => row.features))
  } catch (error) {
    throw new ArtifactCorruptError(
      'golden-rows',
      `a golden row does not fit the feature set: ${describe(error)}`
    )
  }
  const {row: worst, diff: worstDiff} = worstGoldenRow(
    got,
    golden.map((row) => row.probability)
  )
  if (!(worstDiff <= GOLDEN_TOLERANCE)) {
    throw new ArtifactCorruptError(
      'golden-rows',
      `golden row ${worst}: expected p=${golden[worst].probability.toFixed(8)}, ` +
        `onnxruntime-node ${model.onnxruntimeVersion} gives ${got[worst].toFixed(8)} ` +
        `(|diff| ${worstDiff.toExponential(2)} > ${GOLDEN_TOLERANCE})`
    )
  }
  return worstDiff
}

/**
 * Re-explain the golden rows; throw naming the worst value beyond {@link GOLDEN_TOLERANCE}.
 *
 * @param {OnnxModel} model
 * @returns {Promise<number>}
 *   The largest |difference| (0 for a version without explanations).
 */
export async function checkGoldenExplanations(model) {
  const explanation = model.sidecar.explanation
  if (!explanation) return 0
  const golden = model.sidecar.goldenRows
  const expected = explanation.goldenContributions.flat()
  const n = model.features.length
  if (explanation.goldenContributions.length !== golden.length) {
    throw new ArtifactCorruptError(
      'golden-explanations',
      `${explanation.goldenContributions.length} golden contributions for ${golden.length} golden rows`
    )
  }
  const got = await model.contributions(golden.map((row) => row.features))
  const {row: worst, diff} = worstGoldenRow(got, expected)
  if (!(diff <= GOLDEN_TOLERANCE)) {
    throw new ArtifactCorruptError(
      'golden-explanations',
      `golden row ${Math.floor(worst / n)}, feature \`${model.features[worst % n]}\`: expected contribution ` +
        `${expected[worst].toFixed(8)}, onnxruntime-node gives ${got[worst].toFixed(8)} (tolerance ${GOLDEN_TOLERANCE})`
    )
  }
  return diff
}
