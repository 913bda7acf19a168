// Jest for the NestJS example: the same ESM-to-CommonJS handling of Nest 12 as @metered/nestjs's tests.
const preset = require('../../jest.preset.js');
const { transformIgnorePatterns } = require('../../packages/nestjs/jest.config.js');

module.exports = { ...preset(__dirname), transformIgnorePatterns };
