// Keeps the package's copy of the wire API, proto/singleflight/v1/
// singleflight.proto, equal to the repository's (../../proto/...), which is
// the source of truth. The copy is what an installed package loads.
//
// Usage: node tools/proto.js --check   exit 1 if the copy differs
//        node tools/proto.js --sync    overwrite the copy with the repository's
// Outside the repository (no ../../proto), both do nothing.
import { copyFileSync, existsSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

const FILE = 'singleflight/v1/singleflight.proto';
const source = fileURLToPath(new URL(`../../../proto/${FILE}`, import.meta.url));
const copy = fileURLToPath(new URL(`../proto/${FILE}`, import.meta.url));

const mode = process.argv[2];
if (mode !== '--check' && mode !== '--sync') {
  console.error('usage: node tools/proto.js --check | --sync');
  process.exit(2);
}
if (!existsSync(source)) {
  console.log(`no ${source}: not in the repository, nothing to ${mode.slice(2)}`);
} else if (mode === '--sync') {
  copyFileSync(source, copy);
  console.log(`copied ${source} to ${copy}`);
} else if (!existsSync(copy) || !readFileSync(source).equals(readFileSync(copy))) {
  console.error(`${copy} differs from ${source}: run npm run sync-proto in client/node`);
  process.exit(1);
}
