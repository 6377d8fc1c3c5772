/// <reference types="vitest/config" />
import { defineConfig } from 'vite';
import react from '@vitejs/plugin-react';
import { fileURLToPath } from 'node:url';

// The built UI is embedded into the streamspace binary (rust-embed) and served at `/` with an SPA
// fallback, so assets use root-absolute paths (`base: '/'`) that resolve from any client route.
// The production CSP is `script-src 'self'`: nothing here may emit an inline script.
export default defineConfig({
  base: '/',
  plugins: [react()],
  resolve: {
    alias: { '@': fileURLToPath(new URL('./src', import.meta.url)) },
  },
  build: {
    outDir: 'dist',
    emptyOutDir: true,
    sourcemap: false,
    // The modulepreload polyfill is bundled into the entry chunk (never inlined), which keeps CSP happy.
    modulePreload: { polyfill: true },
    chunkSizeWarningLimit: 900,
    rolldownOptions: {
      output: {
        codeSplitting: {
          groups: [
            { name: 'react', test: /node_modules[\\/](react|react-dom|scheduler|react-router)[\\/]/ },
            { name: 'mui', test: /node_modules[\\/](@mui|@emotion|@popperjs|react-transition-group|stylis)/ },
            { name: 'query', test: /node_modules[\\/]@tanstack[\\/]/ },
          ],
        },
      },
    },
  },
  server: {
    port: 5173,
    proxy: {
      '/api': {
        target: 'http://127.0.0.1:8000',
        changeOrigin: false,
        // Server-Sent Events (/api/v1/events) must stream through unbuffered.
        ws: true,
      },
    },
  },
  test: {
    environment: 'jsdom',
    globals: true,
    setupFiles: ['./src/testing/setup.ts'],
    include: ['src/**/*.test.{ts,tsx}'],
    css: false,
    restoreMocks: true,
    unstubGlobals: true,
    pool: 'threads',
    maxWorkers: 2,
    // A first CI run on a clean machine builds the session images beside these tests on 2 cores: a dialog test
    // took more than 15 s there (8 s on a quiet one), until it was split in two.
    testTimeout: 30000,
  },
});
