// The prepack script of every package: `npm pack` or `npm publish` of a workspace package would ship its
// package.json as this repository uses it, with the `source` export condition naming TypeScript sources.
// scripts/pack.mjs writes the tarballs to publish instead.
const name = process.env.npm_package_name ?? 'this package';
console.error(`${name}: do not pack or publish a workspace package directly; run \`node scripts/pack.mjs <folder>\` at the repository root and publish the tarballs it writes (their package.json leaves out the "source" export condition)`);
process.exit(1);
