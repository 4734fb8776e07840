/**
 * Shared paths and small helpers of the tests.
 */

import {cp, mkdtemp, readFile, rm, writeFile} from 'node:fs/promises'
import http from 'node:http'
import os from 'node:os'
import path from 'node:path'
import {fileURLToPath} from 'node:url'

const here = path.dirname(fileURLToPath(import.meta.url))

/** The repository's committed fixture store (two small versions). */
export const STORE = path.resolve(here, '../../../tests/fixtures/store')
/** The random forest version, ACTIVE in the store. */
export const RF = '20260101_000000'
/** The gradient boosting version. */
export const GB = '20260102_000000'
/** A random forest on another feature set (5 features, other ranges). */
export const OTHER = '20260103_000000'
/** Where `scripts/node_parity_fixture.py` writes Python's scores. */
export const PARITY_FIXTURES = path.join(here, 'fixtures')

/**
 * @param {string} version
 */
export function versionDir(version) {
  return path.join(STORE, version)
}

/**
 * @param {string} version
 * @returns {Promise<import('../index.js').Sidecar>}
 */
export async function sidecarOf(version) {
  return JSON.parse(await readFile(path.join(versionDir(version), 'model.json'), 'utf8'))
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
 * Copy a version folder into a fresh temporary store; `edit` may change its files first.
 *
 * @param {string} version
 * @param {(dir: string) => Promise<void>} [edit]
 * @returns {Promise<{dir: string, cleanup: () => Promise<void>}>}
 */
export async function copyVersion(version, edit) {
  const root = await mkdtemp(path.join(os.tmpdir(), 'ml-matching-node-'))
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
 * A node:http server on 127.0.0.1 for fakes of the services: `start()` listens (on `port`, or a free
 * one the first time), `stop()` closes it and its connections, and `start()` again reuses the port,
 * as a restarted service would. Subclasses answer in `handle`.
 */
export class LocalServer {
  port = 0
  /** @type {http.Server | undefined} */
  #server

  get baseUrl() {
    return `http://127.0.0.1:${this.port}`
  }

  /** @returns {Promise<void>} */
  start() {
    const server = http.createServer((request, response) => void this.handle(request, response))
    this.#server = server
    return new Promise((resolve, reject) => {
      server.once('error', reject)
      server.listen(this.port, '127.0.0.1', () => {
        this.port = /** @type {import('node:net').AddressInfo} */ (server.address()).port
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
   * @returns {Promise<unknown>}
   */
  async handle(request, response) {
    return response.writeHead(501).end()
  }
}
