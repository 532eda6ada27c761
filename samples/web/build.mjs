// Bundles @azure/communication-common for the browser with esbuild (one ES module, no dev server).
// Run from anywhere: `node samples/web/build.mjs` (make setup and the browser test run it).
// Why esbuild rather than Vite: the page is plain HTML + ES modules and needs exactly one npm
// package turned into a browser module; esbuild does that in one call (well under a second) with
// no config, dev server or HTML pipeline, and the page's own code stays unbundled and readable.
import { build } from "esbuild";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const here = dirname(fileURLToPath(import.meta.url));
const outfile = join(here, "vendor", "communication-common.js");

await build({
  entryPoints: [join(here, "src", "vendor-entry.js")],
  outfile,
  bundle: true,
  format: "esm",
  platform: "browser", // picks the package's "browser" export (fetch, no Node built-ins)
  target: ["es2022"],
  minify: true,
  legalComments: "eof", // keeps the bundled packages' license notices
  logLevel: "warning",
});
console.log(`built ${outfile}`);
