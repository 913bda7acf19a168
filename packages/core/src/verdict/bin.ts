#!/usr/bin/env node
// The `metered` executable of @metered/core (`npx metered reconcile …`).
import { runCli } from './cli';

void runCli(process.argv.slice(2), {
  stdout: (text) => process.stdout.write(text),
  stderr: (text) => process.stderr.write(text),
  env: process.env,
}).then((status) => {
  process.exitCode = status;
});
