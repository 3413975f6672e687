#!/usr/bin/env node
// Runs the authored cases (tests/mappings/cases_*.json) and every mapping in the shared Segment peer
// fixtures through Segment's own published code, and writes what it produced to
// tests/fixtures/mappings/*.json. The Python tests compare sgbridge's port against those files, so
// node and the npm packages are needed only to regenerate them:
//
//   bash ../shared/tools/segment-oracle/install.sh   # @segment/actions-core etc. into /tmp/oracle
//   node tests/mappings/generate_vectors.js          # ORACLE_DIR=/tmp/oracle, SHARED_DIR=../shared
'use strict'

const fs = require('fs')
const path = require('path')

const ROOT = path.resolve(__dirname, '..', '..')
const ORACLE_DIR = process.env.ORACLE_DIR || '/tmp/oracle'
const SHARED_DIR = process.env.SHARED_DIR || path.resolve(ROOT, '..', 'shared')
const OUT_DIR = path.join(ROOT, 'tests', 'fixtures', 'mappings')
const PEERS_DIR = path.join(SHARED_DIR, 'fixtures', 'peers', 'segment-action-destinations')

const mods = path.join(ORACLE_DIR, 'node_modules')
const mappingKit = require(path.join(mods, '@segment/actions-core/dist/cjs/mapping-kit'))
const validateMapping = require(path.join(mods, '@segment/actions-core/dist/cjs/mapping-kit/validate')).default
const subscriptions = require(path.join(mods, '@segment/destination-subscriptions'))

function versionOf(pkg) {
  return JSON.parse(fs.readFileSync(path.join(mods, pkg, 'package.json'), 'utf8')).version
}

// An error as data: validation errors (a ValidationError, or an AggregateError of them) keep every
// message, because mapping-kit reports all problems at once and the port must find the same ones.
function describeError(e) {
  const isAggregate = e && e.name === 'AggregateError' && typeof e[Symbol.iterator] === 'function'
  if (isAggregate || (e && e.name === 'ValidationError')) {
    const messages = isAggregate ? [...e].map((x) => x.message) : [e.message]
    return { kind: 'validation', messages }
  }
  return { kind: 'runtime', name: e && e.name, messages: [String(e && e.message)] }
}

// JSON.stringify drops undefined and functions; record a top-level undefined explicitly.
function outcome(fn) {
  try {
    const value = fn()
    if (value === undefined) return { ok: true, undefined: true }
    return { ok: true, output: JSON.parse(JSON.stringify(value)) }
  } catch (e) {
    return { ok: false, error: describeError(e) }
  }
}

function runMappingCase(c) {
  const expected = outcome(() => mappingKit.transform(c.mapping, c.payload))
  let validation = null
  try {
    validateMapping(c.mapping)
  } catch (e) {
    validation = describeError(e).messages
  }
  return { ...c, expected, validation }
}

function runSubscriptionCase(c) {
  const ast = subscriptions.parseFql(c.subscription)
  if (ast.error) {
    return { ...c, expected: { ok: false, error: String(ast.error.message) } }
  }
  const results = (c.events || []).map((event) => {
    try {
      return subscriptions.validate(ast, event)
    } catch (e) {
      return { throws: String(e.message) }
    }
  })
  return { ...c, expected: { ok: true, ast: JSON.parse(JSON.stringify(ast)), results } }
}

function walkJson(dir) {
  return fs.readdirSync(dir, { withFileTypes: true }).flatMap((d) => {
    const p = path.join(dir, d.name)
    if (d.isDirectory()) return walkJson(p)
    return d.name.endsWith('.json') ? [p] : []
  })
}

// Every object in the peer fixtures that has a `mapping` and an `input` with event(s).
function peerCases() {
  const cases = []
  for (const file of walkJson(PEERS_DIR).sort()) {
    const rel = path.relative(PEERS_DIR, file)
    const visit = (node, where) => {
      if (Array.isArray(node)) return node.forEach((x, i) => visit(x, `${where}[${i}]`))
      if (!node || typeof node !== 'object') return
      const input = node.input
      if (node.mapping && typeof node.mapping === 'object' && input && typeof input === 'object') {
        const events = input.events || (input.event ? [input.event] : [])
        events.forEach((payload, i) => {
          cases.push({ id: `${rel}${where}#${i}`, source: rel, mapping: node.mapping, payload })
        })
      }
      for (const [k, v] of Object.entries(node)) if (k !== 'input') visit(v, `${where}.${k}`)
    }
    visit(JSON.parse(fs.readFileSync(file, 'utf8')), '')
  }
  return cases
}

// Shared payloads (`payload_ref`) and the shared event list of subscription files are kept once
// at the top of the output, as in the case files; the Python tests resolve them the same way.
function write(name, spec) {
  const kind = spec.kind
  const payloads = spec.payloads || {}
  const run = (c) => {
    if (kind === 'subscription') {
      const out = runSubscriptionCase({ ...c, events: c.events || spec.events })
      if (c.events === undefined) delete out.events
      return out
    }
    const payload = c.payload_ref !== undefined ? payloads[c.payload_ref] : c.payload
    const out = runMappingCase({ ...c, payload })
    if (c.payload_ref !== undefined) delete out.payload
    return out
  }
  const doc = {
    generated_by: 'tests/mappings/generate_vectors.js',
    oracle: {
      '@segment/actions-core': versionOf('@segment/actions-core'),
      '@segment/destination-subscriptions': versionOf('@segment/destination-subscriptions'),
      '@segment/fql-ts': versionOf('@segment/fql-ts'),
      liquidjs: versionOf('liquidjs')
    },
    kind,
    payloads: spec.payloads,
    events: spec.events,
    cases: spec.cases.map(run)
  }
  fs.mkdirSync(OUT_DIR, { recursive: true })
  fs.writeFileSync(path.join(OUT_DIR, name), JSON.stringify(doc, null, 1) + '\n')
  console.log(`${name}: ${doc.cases.length} ${kind} cases`)
}

function main() {
  const casesDir = __dirname
  const files = fs.readdirSync(casesDir).filter((f) => /^cases_.*\.json$/.test(f)).sort()
  for (const f of files) {
    const spec = JSON.parse(fs.readFileSync(path.join(casesDir, f), 'utf8'))
    const ids = new Set()
    for (const c of spec.cases) {
      if (ids.has(c.id)) throw new Error(`${f}: duplicate case id ${c.id}`)
      ids.add(c.id)
    }
    write(f.replace(/^cases_/, ''), spec)
  }
  write('peers.json', { kind: 'mapping', cases: peerCases() })
}

main()
