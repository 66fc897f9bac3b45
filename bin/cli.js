#!/usr/bin/env node
// The `patch-pipeline` bin: runs the TypeScript entry through tsx (a runtime dependency), no build step.
require('tsx/cjs');
require('./patch-pipeline-cli.ts');
