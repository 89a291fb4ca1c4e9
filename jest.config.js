/** @type {import('jest').Config} */
module.exports = {
  testEnvironment: "node",
  roots: ["<rootDir>/test"],
  testMatch: ["**/*.test.ts"],
  transform: {
    "^.+\\.ts$": ["@swc/jest", { jsc: { parser: { syntax: "typescript" }, target: "es2022" }, module: { type: "commonjs" } }],
  },
  // Tests exercise the sources; the plan and examples run the compiled packages.
  moduleNameMapper: { "^@mailstack/(core|pulumi|cli)$": "<rootDir>/packages/$1/src" },
  testTimeout: 120000,
};
