// Root jest: one project per package and example that has tests.
const fs = require('node:fs');
const path = require('node:path');

const dirs = ['packages', 'examples'].flatMap((group) => {
  const base = path.join(__dirname, group);
  if (!fs.existsSync(base)) return [];
  return fs
    .readdirSync(base)
    .map((name) => path.join(base, name))
    .filter((dir) => fs.existsSync(path.join(dir, 'jest.config.js')));
});

module.exports = { projects: dirs };
