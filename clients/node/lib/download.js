/**
 * Verified downloads of a version from the runtime (`GET /models/{version}/files/{name}`).
 *
 * Every file is checked against the sha256 the runtime sends (`Repr-Digest`) and, but for the
 * sidecar itself, the one the sidecar records: a file changed in transit or on the server's disk
 * is refused before anything reads it. The version folder is written under a temporary name and
 * renamed, so it is whole or absent, and a version already there is kept: versions never change.
 */

import {createHash} from 'node:crypto'
import {mkdir, mkdtemp, rename, rm, stat, writeFile} from 'node:fs/promises'
import path from 'node:path'
import {ArtifactCorruptError} from './errors.js'
import {loadModel, MODEL_FILE} from './model.js'
import {SIDECAR_FILE, checkSidecar} from './sidecar.js'

/** @import {Service} from './http.js' */
/** @import {OnnxModel} from './model.js' */

/**
 * @typedef FetchOptions
 * @property {string} [version]
 *   The version to fetch; by default the one the runtime serves now.
 * @property {string} dir
 *   The local store to keep versions in: `<dir>/<version>/` (created if needed).
 * @property {number} [threads=1]
 *   onnxruntime intra-op threads of the loaded model.
 */

/** Downloads versions from one runtime. */
export class Downloader {
  /** @type {Service} */
  #service
  /** @type {number} */
  #timeoutMs

  /**
   * @param {Service} service
   *   The runtime.
   * @param {number} timeoutMs
   *   Per file: a model is far larger than a scoring answer, so it gets its own deadline.
   */
  constructor(service, timeoutMs) {
    this.#service = service
    this.#timeoutMs = timeoutMs
  }

  /**
   * @param {string | undefined} version
   *   By default the version the runtime serves now.
   * @param {string} dir
   * @returns {Promise<string>} the version folder, ready for `loadModel`
   * @throws {ArtifactCorruptError} (`check: 'sha256'`) a file that does not match its hash.
   */
  async downloadVersion(version, dir) {
    const name = version ?? (await this.#service.json('GET', '/health/ready')).modelVersion
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
    const {response, bytes} = await this.#service.send('GET', where, {timeoutMs: this.#timeoutMs})
    const got = createHash('sha256').update(bytes).digest()
    const header = /sha-256=:([^:]+):/.exec(response.headers.get('repr-digest') ?? '')?.[1]
    const wanted = [header && Buffer.from(header, 'base64').toString('hex'), expected].filter(Boolean)
    // No hash at all is refused too: an unchecked file must never reach loadModel from here.
    if (wanted.length === 0 || wanted.some((hex) => hex !== got.toString('hex'))) {
      throw new ArtifactCorruptError(
        'sha256',
        `${file} of ${version} downloaded from ${this.#service.base} has sha256 ${got.toString('hex')}, expected ${wanted.join(' and ') || 'a Repr-Digest header'}`
      )
    }
    return bytes
  }
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
