// @ts-check
import js from '@eslint/js';
import globals from 'globals';
import reactHooks from 'eslint-plugin-react-hooks';
import tseslint from 'typescript-eslint';
import { readdirSync } from 'node:fs';

const features = readdirSync(new URL('./src/features', import.meta.url), { withFileTypes: true })
  .filter((entry) => entry.isDirectory())
  .map((entry) => entry.name);

/**
 * A feature reaches another one only through its public index (`@/features/<name>`), never into its
 * files, and leaves its own folder only by `@/` (so `../../` cannot sneak into a sibling).
 * @type {import('eslint').Linter.Config[]}
 */
const featureBoundaries = features.map((feature) => ({
  files: [`src/features/${feature}/**/*.{ts,tsx}`],
  rules: {
    'no-restricted-imports': [
      'error',
      {
        patterns: [
          {
            regex: `^@/features/(?!${feature}/)[^/]+/`,
            message: 'Import another feature through its public index (@/features/<name>), not its files.',
          },
          { regex: '^\\.\\./\\.\\./', message: 'Leave the feature by @/ (components, lib, types, app or a feature index).' },
        ],
      },
    ],
  },
}));

export default tseslint.config(
  // src/types/openapi.ts is generated (npm run gen:api): its style is the generator's.
  { ignores: ['dist', 'coverage', 'node_modules', 'e2e-artifacts', 'src/types/openapi.ts'] },
  {
    files: ['src/**/*.{ts,tsx}'],
    extends: [
      js.configs.recommended,
      ...tseslint.configs.recommendedTypeChecked,
      ...tseslint.configs.stylisticTypeChecked,
      reactHooks.configs.flat['recommended-latest'],
    ],
    languageOptions: {
      ecmaVersion: 2023,
      globals: globals.browser,
      parserOptions: {
        projectService: true,
        tsconfigRootDir: import.meta.dirname,
      },
    },
    rules: {
      // Form value shapes must be `type`s: interfaces do not satisfy Record<string, ...> constraints.
      '@typescript-eslint/consistent-type-definitions': 'off',
      '@typescript-eslint/consistent-type-imports': ['error', { fixStyle: 'inline-type-imports' }],
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_' }],
      '@typescript-eslint/no-misused-promises': ['error', { checksVoidReturn: { attributes: false } }],
      'no-restricted-globals': [
        'error',
        { name: 'localStorage', message: 'Tokens live in memory only; use the theme-preference helper for UI prefs.' },
        { name: 'sessionStorage', message: 'Tokens live in memory only.' },
      ],
      'no-restricted-properties': [
        'error',
        { object: 'window', property: 'localStorage', message: 'Tokens live in memory only (theme preference: app/theme.tsx).' },
        { object: 'window', property: 'sessionStorage', message: 'Tokens live in memory only.' },
      ],
    },
  },
  ...featureBoundaries,
  {
    // Shared code is what features build on: it depends on no feature and not on the app shell.
    files: ['src/components/**/*.{ts,tsx}', 'src/lib/**/*.{ts,tsx}', 'src/types/**/*.{ts,tsx}'],
    rules: {
      'no-restricted-imports': [
        'error',
        { patterns: [{ regex: '^@/(features|app)(/|$)', message: 'Shared code may not depend on a feature or on the app shell.' }] },
      ],
    },
  },
  {
    // The one place allowed to use Web Storage: the colour-scheme preference.
    files: ['src/app/theme.tsx', 'src/testing/**', '**/*.test.{ts,tsx}'],
    rules: { 'no-restricted-properties': 'off' },
  },
  {
    files: ['**/*.test.{ts,tsx}', 'src/testing/**'],
    rules: {
      '@typescript-eslint/no-non-null-assertion': 'off',
      '@typescript-eslint/require-await': 'off',
    },
  },
  {
    // Served as it is, before the app: plain script for any browser.
    files: ['public/**/*.js'],
    extends: [js.configs.recommended],
    languageOptions: { ecmaVersion: 2020, sourceType: 'script', globals: globals.browser },
  },
  {
    files: ['*.{js,ts}', 'e2e/**/*.mjs'],
    extends: [js.configs.recommended, ...tseslint.configs.recommended],
    languageOptions: { ecmaVersion: 2023, globals: globals.node },
  },
);
