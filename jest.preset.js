// Shared jest settings: every package runs its TypeScript sources directly through swc
// (decorator metadata on, for Nest), and resolves sibling packages to their sources.
const path = require('node:path');

/** @param {string} dir the package directory */
module.exports = function preset(dir) {
  return {
    displayName: path.basename(dir),
    rootDir: dir,
    testEnvironment: 'node',
    // No test may reach past this machine: a connection to any other host fails at once, naming it.
    setupFiles: [path.join(__dirname, 'jest.no-network.js')],
    testMatch: ['<rootDir>/test/**/*.test.ts', '<rootDir>/test/**/*.e2e-spec.ts'],
    transform: {
      '^.+\\.(t|j|mj)s$': [
        require.resolve('@swc/jest'),
        {
          jsc: {
            target: 'es2022',
            parser: { syntax: 'typescript', decorators: true },
            transform: { legacyDecorator: true, decoratorMetadata: true },
          },
          module: { type: 'commonjs' },
        },
      ],
    },
    moduleNameMapper: {
      '^@metered/(core|express|nestjs|testing|redis)$': path.join(__dirname, 'packages/$1/src/index.ts'),
    },
  };
};
