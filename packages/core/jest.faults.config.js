// The fault matrix (`npm run test:faults`): real-time outages of 45 s and more, kept out of the quick `npm test`.
const preset = require('../../jest.preset.js')(__dirname);

module.exports = { ...preset, displayName: 'core-faults', testMatch: ['<rootDir>/test/faults/*.faults.ts'], testTimeout: 180_000 };
