// Writes src/sgbridge/actions/catalog/<destination>.json from Segment's published action
// definitions (npm @segment/action-destinations, installed by ../shared/tools/segment-oracle),
// so sgbridge's destination, action, setting and field names, defaults, default triggers and
// payload schemas are Segment's own rather than re-typed.
//
// Also writes dotdigital.json and dotdigital-audiences.json (Segment's Dotdigital and Dotdigital
// Audiences destinations). Those two are not registered in catalog.py's SEGMENT_DESTINATIONS
// until sgbridge has code for them.
//
//   bash ../shared/tools/segment-oracle/install.sh          # into /tmp/oracle
//   node tools/generate_action_catalog.js [/tmp/oracle]
const fs = require('fs')
const path = require('path')
const oracle = process.argv[2] || process.env.ORACLE_DIR || '/tmp/oracle'
const modules = path.join(oracle, 'node_modules')
const core = require(path.join(modules, '@segment/actions-core'))
const pkg = require(path.join(modules, '@segment/action-destinations/package.json'))
const outDir = path.join(__dirname, '..', 'src', 'sgbridge', 'actions', 'catalog')

function plainField(field) {
  const copy = JSON.parse(JSON.stringify(field))  // drops functions (dynamic choices)
  delete copy.dynamic
  if (copy.properties) for (const p of Object.values(copy.properties)) delete p.dynamic
  return copy
}

for (const name of ['sendgrid', 'sendgrid-audiences', 'webhook', 'dotdigital', 'dotdigital-audiences']) {
  const definition = require(path.join(modules, '@segment/action-destinations/dist/destinations', name)).default
  const actions = {}
  for (const [key, action] of Object.entries(definition.actions)) {
    const fields = Object.fromEntries(Object.entries(action.fields).map(([k, f]) => [k, plainField(f)]))
    actions[key] = {
      title: action.title,
      description: action.description,
      defaultSubscription: action.defaultSubscription ?? null,
      batch: Boolean(action.performBatch),
      fields,
      defaultMapping: core.defaultValues(action.fields),
      schema: core.fieldsToJsonSchema(action.fields),
    }
  }
  const auth = definition.authentication || {}
  const catalog = {
    generated_from: `@segment/action-destinations@${pkg.version}`,
    name: definition.name,
    slug: definition.slug,
    settings: Object.fromEntries(Object.entries(auth.fields || {}).map(([k, f]) => [k, plainField(f)])),
    audienceFields: definition.audienceFields ? Object.fromEntries(
      Object.entries(definition.audienceFields).map(([k, f]) => [k, plainField(f)])) : null,
    actions,
  }
  fs.writeFileSync(path.join(outDir, `${name}.json`), JSON.stringify(catalog, null, 1) + '\n')
  console.log(`${name}: ${Object.keys(actions).join(', ')}`)
}
