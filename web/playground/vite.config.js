// Builds the playground into ../../internal/playground/dist, which the Go binary embeds.
import { defineConfig } from 'vite';

export default defineConfig({
  base: './', // served under / by the Go server, with relative asset URLs
  build: {
    outDir: '../../internal/playground/dist',
    emptyOutDir: true,
    sourcemap: false,
    chunkSizeWarningLimit: 6000,
  },
  worker: { format: 'es' },
});
