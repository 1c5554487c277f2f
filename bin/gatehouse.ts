#!/usr/bin/env node
import { main } from '../src/cli/main.ts';

main(process.argv.slice(2)).then(
  (code) => {
    if (code !== -1) process.exitCode = code;
  },
  (err) => {
    process.stderr.write(`gatehouse: ${(err as Error).stack ?? err}\n`);
    process.exitCode = 1;
  },
);
