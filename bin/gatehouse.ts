#!/usr/bin/env -S node --no-allocation-site-pretenuring --heap-growing-percent=300
import { run } from '../src/cli/main.ts';

run();
