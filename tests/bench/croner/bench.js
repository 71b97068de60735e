// croner's nextRun on the same expressions, zones and start points as
// tests/bench/bench_cron.c, printed in the same format and as TSV lines
// ("tsv<TAB>expr<TAB>zone<TAB>ns") for bench_croner.sh.
// usage: node bench.js DIR   (DIR holds node_modules/croner)
"use strict";
const path = require("path");
const { Cron } = require(require.resolve("croner", { paths: [path.resolve(process.argv[2] || ".")] }));

const SECONDS = 0.4, BATCH = 4096, START = Date.UTC(2026, 0, 1) / 1000;
const SPREAD = 366 * 86400, STEP = 7919;
const exprs = ["*/5 * * * *", "0 0 2 * * *", "0 30 9 * * 1-5", "0 0 12 L * *"];
const zones = ["UTC", "Europe/Berlin"];

let sink = 0;
console.log(`croner ${require(require.resolve("croner/package.json", { paths: [path.resolve(process.argv[2] || ".")] })).version} nextRun, node ${process.version}, ${SECONDS} s per line:`);
for (const zone of zones) {
  for (const expr of exprs) {
    // UTC through utcOffset, croner's fastest path (timezone: "UTC" goes
    // through Intl and is some 15 times slower): the fair comparison
    const c = new Cron(expr, zone === "UTC" ? { utcOffset: 0 } : { timezone: zone });
    for (let i = 0; i < BATCH; i++) sink += c.nextRun(new Date((START + i) * 1000)).getTime();
    let i = 0, elapsed;
    const t0 = process.hrtime.bigint();
    do {
      for (let j = 0; j < BATCH; j++, i++) {
        sink += c.nextRun(new Date((START + (i * STEP) % SPREAD) * 1000)).getTime();
      }
      elapsed = Number(process.hrtime.bigint() - t0) / 1e9;
    } while (elapsed < SECONDS);
    const per = elapsed * 1e9 / i;
    console.log(`  ${expr.padEnd(18)} ${zone.padEnd(14)} ${(1e9 / per).toFixed(0).padStart(12)} next/s ${per.toFixed(1).padStart(9)} ns/next`);
    console.log(`tsv\t${expr}\t${zone}\t${per.toFixed(1)}`);
  }
}
if (sink === 42) console.log("");
