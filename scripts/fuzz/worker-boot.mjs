// Worker entry: worker threads do not inherit tsx's loader from the runner, so register it here,
// then load the TypeScript fuzz loop.
import { register } from 'tsx/esm/api';

register();
await import(new URL('./worker.ts', import.meta.url).href);
