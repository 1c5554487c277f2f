#!/usr/bin/env node
import { run } from '../src/cli/main.ts';

run();
