#!/usr/bin/env -S node --no-allocation-site-pretenuring
import { run } from '../src/cli/main.ts';

run();
