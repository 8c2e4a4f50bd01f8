export * from './query.js';
export * from './engine.js';
export * from './privacy.js';
export * from './sketch.js';
export * from './lexicon.js';
