// @ts-check
import js from '@eslint/js';
import globals from 'globals';
import reactHooks from 'eslint-plugin-react-hooks';
import tseslint from 'typescript-eslint';

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
    files: ['*.{js,ts}', 'e2e/**/*.mjs'],
    extends: [js.configs.recommended, ...tseslint.configs.recommended],
    languageOptions: { ecmaVersion: 2023, globals: globals.node },
  },
);
