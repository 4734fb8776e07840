import assert from 'node:assert/strict'
import {readFile} from 'node:fs/promises'
import {test} from 'node:test'
import * as api from '../index.js'

test('the public surface is exactly this', () => {
  assert.deepEqual(Object.keys(api).sort(), [
    'ArtifactCorruptError',
    'ExplanationUnavailableError',
    'InvalidInputError',
    'MLMatchingError',
    'OutcomeQueueFullError',
    'RequestRejectedError',
    'ServiceUnavailableError',
    'SettingsError',
    'armOf',
    'bucket',
    'createClient',
    'loadModel',
    'readSidecar',
    'weightedModel'
  ])
})

test('the package resolves by its name through the exports map', async () => {
  const self = await import('ml-matching-client')
  assert.equal(self.loadModel, api.loadModel)
  const pkg = JSON.parse(await readFile(new URL('../package.json', import.meta.url), 'utf8'))
  assert.equal(pkg.type, 'module')
  assert.deepEqual(Object.keys(pkg.dependencies), ['onnxruntime-node'])
})

test('every error derives from MLMatchingError and Error, and names itself', () => {
  for (const [name, value] of Object.entries(api)) {
    if (!name.endsWith('Error')) continue
    const ErrorClass = /** @type {new (...args: any[]) => Error} */ (value)
    assert.ok(ErrorClass.prototype instanceof Error, name)
    if (name !== 'MLMatchingError') assert.ok(ErrorClass.prototype instanceof api.MLMatchingError, name)
  }
  assert.equal(new api.ServiceUnavailableError('x').name, 'ServiceUnavailableError')
  assert.equal(new api.ArtifactCorruptError('sha256', 'x').name, 'ArtifactCorruptError')
  assert.equal(new api.RequestRejectedError('GET /', 404, 'not_found', 'x').name, 'RequestRejectedError')
  assert.equal(new api.InvalidInputError('x', {reason: 'shape'}).name, 'InvalidInputError')
  assert.equal(new api.MLMatchingError('x').name, 'MLMatchingError')
  assert.equal(new api.SettingsError('x').name, 'SettingsError')
})

test("the error codes are the Python runtime's codes for the same errors", async () => {
  const table = JSON.parse(await readFile(new URL('../../../schemas/errors.json', import.meta.url), 'utf8'))
  const runtime = new Set(table.errors.map((/** @type {{code: string}} */ e) => e.code))
  const codes = {
    InvalidInputError: new api.InvalidInputError('x', {reason: 'shape'}).code,
    ArtifactCorruptError: new api.ArtifactCorruptError('sha256', 'x').code,
    ExplanationUnavailableError: new api.ExplanationUnavailableError('x').code,
    SettingsError: new api.SettingsError('x').code
  }
  assert.deepEqual(codes, {
    InvalidInputError: 'invalid_input',
    ArtifactCorruptError: 'artifact_corrupt',
    ExplanationUnavailableError: 'explanation_unavailable',
    SettingsError: 'invalid_settings'
  })
  for (const [name, code] of Object.entries(codes))
    assert.ok(runtime.has(code), `${name}: ${code} is not a runtime code`)
  assert.equal(new api.RequestRejectedError('GET /', 404, 'version_not_found', 'x').code, 'version_not_found')
  assert.equal(
    new api.ServiceUnavailableError('x', {status: 503, code: 'model_not_ready'}).code,
    'model_not_ready'
  )
})
