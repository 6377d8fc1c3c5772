import '@testing-library/jest-dom/vitest';
import { cleanup, configure } from '@testing-library/react';
import { afterEach } from 'vitest';
import { api } from '@/lib/api';

// `findBy*` waits up to 1 s by default; a first render on a busy 2-core machine can take longer.
configure({ asyncUtilTimeout: 5000 });

// jsdom has no matchMedia: emulate a 1280px-wide light-mode desktop so responsive layouts pick "wide".
const WIDTH = 1280;
function matches(query: string): boolean {
  return query.split(',').some((part) => {
    const min = /min-width:\s*([\d.]+)px/.exec(part);
    const max = /max-width:\s*([\d.]+)px/.exec(part);
    if (/prefers-color-scheme:\s*dark/.test(part)) return false;
    if (min && WIDTH < Number(min[1])) return false;
    if (max && WIDTH > Number(max[1])) return false;
    return Boolean(min ?? max) || /prefers-color-scheme:\s*light/.test(part);
  });
}
Object.defineProperty(window, 'matchMedia', {
  configurable: true,
  value: (query: string): MediaQueryList =>
    ({
      media: query,
      matches: matches(query),
      onchange: null,
      addEventListener: () => undefined,
      removeEventListener: () => undefined,
      addListener: () => undefined,
      removeListener: () => undefined,
      dispatchEvent: () => false,
    }) as MediaQueryList,
});

afterEach(() => {
  cleanup();
  api.reset();
  window.localStorage.clear();
});
