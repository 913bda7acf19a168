// Jest for @metered/redis: the shared preset, and one check of Redis for the whole run (global-setup.ts).
const path = require('node:path');
const preset = require('../../jest.preset.js')(__dirname);

module.exports = { ...preset, globalSetup: path.join(__dirname, 'test/global-setup.ts'), testTimeout: 60_000 };
