// Jest for @metered/nestjs: NestJS 12 and a few of its dependencies ship ESM only, and Jest's module
// system (unlike Node's require(esm)) cannot load them; swc transforms them to CommonJS like our sources.
const preset = require('../../jest.preset.js');

/** ESM-only packages the tests load: Nest itself, and cookie@2 (required by Fastify's light-my-request). */
const ESM_ONLY = ['@nestjs/[^/]+', 'cookie'];

module.exports = {
  ...preset(__dirname),
  // Skips a file only when the innermost package on its path is not ESM-only, so an ESM-only package
  // nested under a CommonJS one (light-my-request/node_modules/cookie) is still transformed.
  transformIgnorePatterns: [`/node_modules/(?!(?:${ESM_ONLY.join('|')})/)(?:@[^/]+/)?[^/]+/(?!.*/node_modules/)`],
};
